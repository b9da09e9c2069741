"""SQLAlchemy models, one module per aggregate; importing this package registers them all."""

from app.db.assets import AssetVersion, DeletedAsset, PublishedAsset, RoutingChange
from app.db.audit import AuditLog, AuthFailure
from app.db.datasets import Dataset, DatasetIndex, SchemaGrant
from app.db.keys import ApiKey
from app.db.projects import Project
from app.db.registry import MLModel, Recipe, RecipeRun
from app.db.users import Organization, PersonalAccessToken, User

__all__ = [
    "ApiKey",
    "AssetVersion",
    "AuditLog",
    "AuthFailure",
    "Dataset",
    "DatasetIndex",
    "DeletedAsset",
    "MLModel",
    "Organization",
    "PersonalAccessToken",
    "Project",
    "PublishedAsset",
    "Recipe",
    "RecipeRun",
    "RoutingChange",
    "SchemaGrant",
    "User",
]
