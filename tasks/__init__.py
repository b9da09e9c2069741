"""Celery: the app binding, one module of tasks per queue, and `calls` (send work to a queue and wait for it)."""
