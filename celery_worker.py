"""Celery entry point: `celery -A celery_worker worker -Q predict,train,functions,default`."""

from app import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]
