"""The production static files storage: hashed, compressed names from collectstatic's manifest.

Non-strict: without the manifest (or a file missing from it) a page links the plain name instead of failing with 500.
"""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class LenientManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Whitenoise's manifest storage that never turns a missing manifest entry into an error on a page.

    The missing collectstatic is told at start instead: ``manage.py check`` (config.E010), the WSGI start's log and
    /readyz name it and the command that fixes it.
    """

    manifest_strict = False

    def stored_name(self, name: str) -> str:
        try:
            return str(super().stored_name(name))
        except ValueError:
            # Neither in the manifest nor collected: the unhashed name (served once collectstatic has run).
            return name
