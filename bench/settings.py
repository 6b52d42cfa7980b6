"""The production settings plus what only the benchmark serves.

``bench.urls`` adds a trivial ping route, so production has no such route;
``QueryCountMiddleware`` tells the load generator how many SQL statements
each request ran. Nothing else changes: every other knob comes from the
environment the bench gives the server, exactly as in production.
"""

from config.settings import *  # noqa: F403
from config.settings import MIDDLEWARE

ROOT_URLCONF = "bench.urls"
MIDDLEWARE = ["bench.middleware.QueryCountMiddleware", *MIDDLEWARE]
