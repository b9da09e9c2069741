"""Celery entry point: `celery -A celery_worker worker -Q predict,train,functions,default`."""

import gc

from app import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]
# As in wsgi.py: the start-up objects stay out of every full collection (a pause of every thread of the worker).
gc.freeze()
