"""WSGI entry point: `gunicorn wsgi:app`."""

import gc

from app import create_app

app = create_app()
# Everything the app built at start-up lives as long as the process: out of the collector's sight, a full collection
# no longer walks those ~165,000 objects (about 100 ms, during which no thread of the process answers).
gc.freeze()
