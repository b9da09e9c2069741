"""Flask CLI groups named after domains (`flask users ...`, `flask keys ...`), each defined in its area's cli.py."""

from __future__ import annotations

from flask import Flask

from app.auth.cli import register_users_cli
from app.datasets.cli import register_datasets_cli
from app.demo import register_demo_cli
from app.keys.cli import register_keys_cli
from app.ops.cli import register_ops_cli
from app.projects.cli import register_projects_cli
from app.publishing.cli import register_publishing_cli
from app.registry.cli import register_models_cli
from app.serving.cli import register_serving_cli


def register_cli(app: Flask) -> None:
    register_users_cli(app)
    register_projects_cli(app)
    register_datasets_cli(app)
    register_publishing_cli(app)
    register_keys_cli(app)
    register_ops_cli(app)
    register_models_cli(app)
    register_demo_cli(app)
    register_serving_cli(app)
