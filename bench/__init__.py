"""The benchmark: ``python -m bench`` (``make bench``) and ``python -m bench --quick``.

It starts the real stack on loopback (the production web server, config/serve.py,
with production settings plus one bench-only ping route, the local fake Stripe server, PostgreSQL and Redis
of this machine, each on a database of its own), seeds data, loads it from
separate generator processes and writes ``bench/results.json``.
"""
