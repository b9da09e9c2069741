"""The HTTP ceiling of the serving benchmark: a bare Flask "hello" route, served by the same gunicorn command line.

gunicorn ... "bench.hello_app:create_app()"   then   GET /hello
"""

from __future__ import annotations

from flask import Flask


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/hello")
    def hello():
        return "hello"

    return app
