"""Celery: the app binding and one module of tasks per queue."""
