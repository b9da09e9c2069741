"""Apiary's Python SDK: projects, datasets, models and key-gated API services over the REST API."""

from apiary.client import Client
from apiary.endpoints import (
    enrichment,
    function_endpoint,
    lookup_endpoint,
    model_endpoint,
    predict_body,
    shapley,
    sql_endpoint,
)
from apiary.errors import (
    ApiaryError,
    AuthenticationError,
    AuthError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TrainingError,
    TransportError,
    ValidationError,
)
from apiary.projects import Dataset, Model, Project, TrainResult
from apiary.services import ApiKey, APIService, DataAPI, LogEntry, LogPage, PublishedAsset, Routing, Version

__version__ = "0.1.0"

__all__ = [
    "APIService",
    "ApiKey",
    "ApiaryError",
    "AuthError",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "DataAPI",
    "Dataset",
    "LogEntry",
    "LogPage",
    "Model",
    "NotFoundError",
    "PermissionDeniedError",
    "PublishedAsset",
    "Project",
    "RateLimitError",
    "Routing",
    "ServerError",
    "TrainResult",
    "TrainingError",
    "TransportError",
    "ValidationError",
    "Version",
    "function_endpoint",
    "lookup_endpoint",
    "model_endpoint",
    "sql_endpoint",
    "enrichment",
    "predict_body",
    "shapley",
]
