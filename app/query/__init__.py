"""The governed query engine: query config -> SQLAlchemy Core, key policy, masking, row scope and result cache."""

from app.query.cache import ResultCache
from app.query.compiler import CompiledQuery, OutputColumn, compile_query, param_error, query_param_names
from app.query.executor import json_value, run_query, shape_rows
from app.query.masking import (
    BLOCKED,
    DEFAULT_STRATEGY,
    SENSITIVITY_LEVELS,
    STRATEGIES,
    ColumnMasking,
    classify_column,
    default_masking,
    effective_masking,
    mask_value,
    validate_masking_settings,
)
from app.query.policy import KeyPolicy
from app.query.validation import resolve_query_config, validate_query_config

__all__ = [
    "BLOCKED",
    "DEFAULT_STRATEGY",
    "SENSITIVITY_LEVELS",
    "STRATEGIES",
    "ColumnMasking",
    "CompiledQuery",
    "KeyPolicy",
    "OutputColumn",
    "ResultCache",
    "classify_column",
    "compile_query",
    "default_masking",
    "effective_masking",
    "json_value",
    "mask_value",
    "param_error",
    "query_param_names",
    "resolve_query_config",
    "run_query",
    "shape_rows",
    "validate_masking_settings",
    "validate_query_config",
]
