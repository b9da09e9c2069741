"""The console blueprint `bp` with every page registered on it (each area of the console in its own module)."""

from app.console import (  # noqa: F401 - importing registers the views on bp
    account_pages,
    dataset_pages,
    key_pages,
    lifecycle_pages,
    model_pages,
    project_pages,
    routing_pages,
    security_pages,
    service_pages,
)
from app.console.blueprint import bp

__all__ = ["bp"]
