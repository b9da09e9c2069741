"""Validation of a train_model recipe config against the input table's columns (pure Python, no scikit-learn)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from app.errors import invalid
from app.warehouse.engine import ColumnInfo

TASK_TYPES = ("classification", "regression")

ALGORITHMS: dict[str, tuple[str, ...]] = {
    "classification": ("logistic_regression", "random_forest", "gradient_boosting"),
    "regression": ("linear_regression", "ridge", "random_forest", "gradient_boosting"),
}

DEFAULT_TEST_SIZE = 0.2
DEFAULT_MAX_ROWS = 1_000_000
NUMERIC_TYPES = ("integer", "float")
CONFIG_KEYS = (
    "input_table",
    "target_column",
    "task_type",
    "algorithm",
    "model_name",
    "feature_columns",
    "hyperparams",
    "test_size",
    "max_rows",
    "allow_sensitive",
)


@dataclass(frozen=True)
class Param:
    """One allowed hyperparameter: its kind, inclusive bounds, allowed choices and whether null is allowed."""

    kind: str  # "int" | "float" | "bool" | "choice"
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True when `low` itself is not allowed (e.g. C > 0)
    choices: tuple = ()
    nullable: bool = False
    # A "choice" parameter may also take a number in (0, 1] (max_features as a fraction of features).
    fraction: bool = False


_TREE_COMMON = {
    "n_estimators": Param("int", 1, 1000),
    "max_depth": Param("int", 1, 100, nullable=True),
    "min_samples_split": Param("int", 2, 10_000),
    "min_samples_leaf": Param("int", 1, 10_000),
}

# Per (task_type, algorithm): the hyperparameters a user may set. Anything else is refused, so a typo is never
# silently ignored and no parameter can make a worker run unbounded (n_jobs, warm_start ...).
HYPERPARAMS: dict[tuple[str, str], dict[str, Param]] = {
    ("classification", "logistic_regression"): {
        "C": Param("float", 0, 1e6, low_open=True),
        "max_iter": Param("int", 10, 10_000),
        "fit_intercept": Param("bool"),
        "class_weight": Param("choice", choices=("balanced",), nullable=True),
    },
    ("regression", "linear_regression"): {
        "fit_intercept": Param("bool"),
    },
    ("regression", "ridge"): {
        "alpha": Param("float", 0, 1e6),
        "fit_intercept": Param("bool"),
    },
    ("classification", "random_forest"): {
        **_TREE_COMMON,
        "max_features": Param("choice", choices=("sqrt", "log2"), nullable=True, fraction=True),
        "bootstrap": Param("bool"),
        "class_weight": Param("choice", choices=("balanced", "balanced_subsample"), nullable=True),
    },
    ("regression", "random_forest"): {
        **_TREE_COMMON,
        "max_features": Param("choice", choices=("sqrt", "log2"), nullable=True, fraction=True),
        "bootstrap": Param("bool"),
    },
    ("classification", "gradient_boosting"): {
        **_TREE_COMMON,
        "max_depth": Param("int", 1, 32, nullable=True),
        "learning_rate": Param("float", 0, 10, low_open=True),
        "subsample": Param("float", 0, 1, low_open=True),
    },
    ("regression", "gradient_boosting"): {
        **_TREE_COMMON,
        "max_depth": Param("int", 1, 32, nullable=True),
        "learning_rate": Param("float", 0, 10, low_open=True),
        "subsample": Param("float", 0, 1, low_open=True),
    },
}


@dataclass(frozen=True)
class TrainingConfig:
    """A validated train_model config. `feature_columns` is None when features are chosen from the data."""

    target_column: str
    task_type: str
    algorithm: str
    feature_columns: tuple[str, ...] | None
    hyperparams: dict[str, Any]
    test_size: float
    max_rows: int
    # Logical warehouse type of every column of the input table, so training and the input schema agree with it.
    column_types: dict[str, str] = field(default_factory=dict)
    input_table: str | None = None
    model_name: str | None = None
    # An org admin's explicit consent to train on sensitive columns: a target above low, a high/critical feature.
    allow_sensitive: bool = False

    def to_json(self) -> dict:
        """The config as stored with a run (`run_config`), JSON-safe."""
        return {
            "input_table": self.input_table,
            "target_column": self.target_column,
            "task_type": self.task_type,
            "algorithm": self.algorithm,
            "model_name": self.model_name,
            "feature_columns": list(self.feature_columns) if self.feature_columns is not None else None,
            "hyperparams": dict(self.hyperparams),
            "test_size": self.test_size,
            "max_rows": self.max_rows,
            **({"allow_sensitive": True} if self.allow_sensitive else {}),
        }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _check_param(path: str, name: str, spec: Param, value: Any) -> Any:
    if value is None:
        if spec.nullable:
            return None
        raise invalid(path, "must not be null")
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise invalid(path, "must be true or false")
        return value
    if spec.kind == "choice":
        if spec.fraction and _is_number(value) and 0 < value <= 1:
            return float(value)
        if value in spec.choices and isinstance(value, str):
            return value
        allowed = [
            *spec.choices,
            *(["null"] if spec.nullable else []),
            *(["a number in (0, 1]"] if spec.fraction else []),
        ]
        raise invalid(path, f"must be one of {', '.join(map(str, allowed))}")
    if spec.kind == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON clients often send 100.0 for 100
        if not _is_int(value):
            raise invalid(path, "must be an integer")
    elif not _is_number(value):
        raise invalid(path, "must be a number")
    low_ok = spec.low is None or (value > spec.low if spec.low_open else value >= spec.low)
    high_ok = spec.high is None or value <= spec.high
    if not (low_ok and high_ok):
        low = f"greater than {spec.low:g}" if spec.low_open else f"at least {spec.low:g}"
        raise invalid(path, f"must be {low} and at most {spec.high:g}")
    return float(value) if spec.kind == "float" else value


def _required_str(config: dict, key: str, prefix: str) -> str:
    value = config.get(key)
    if value is None or value == "":
        raise invalid(f"{prefix}.{key}", "is required")
    if not isinstance(value, str):
        raise invalid(f"{prefix}.{key}", "must be a string")
    return value


def _optional_str(config: dict, key: str, prefix: str, max_len: int = 200) -> str | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise invalid(f"{prefix}.{key}", f"must be a non-empty string of at most {max_len} characters")
    return value


def validate_training_config(
    config: Any,
    columns: list[ColumnInfo],
    *,
    prefix: str = "config",
    max_rows_limit: int = DEFAULT_MAX_ROWS,
) -> TrainingConfig:
    """Check a train_model config against the input table's columns; APIError 422 naming the first bad field.

    `columns` are the input table's columns (`list_columns`). `max_rows_limit` is the largest `max_rows` allowed
    and also its default.
    """
    if not isinstance(config, dict):
        raise invalid(prefix, "must be an object")
    for key in config:
        if key not in CONFIG_KEYS:
            raise invalid(f"{prefix}.{key}", f"unknown field; allowed: {', '.join(CONFIG_KEYS)}")
    types = {c.name: c.type for c in columns}

    target = _required_str(config, "target_column", prefix)
    if target not in types:
        raise invalid(f"{prefix}.target_column", f"column {target!r} is not in the input table")

    task_type = _required_str(config, "task_type", prefix)
    if task_type not in TASK_TYPES:
        raise invalid(f"{prefix}.task_type", f"must be one of {', '.join(TASK_TYPES)}")
    algorithm = _required_str(config, "algorithm", prefix)
    if algorithm not in ALGORITHMS[task_type]:
        raise invalid(f"{prefix}.algorithm", f"must be one of {', '.join(ALGORITHMS[task_type])} for {task_type}")
    if task_type == "regression" and types[target] not in NUMERIC_TYPES:
        raise invalid(
            f"{prefix}.target_column",
            f"regression needs a numeric target; {target!r} is {types[target]} (use classification)",
        )

    feature_columns = _feature_columns(config.get("feature_columns"), types, target, prefix)
    hyperparams = _hyperparams(config.get("hyperparams"), task_type, algorithm, prefix)

    test_size = config.get("test_size", DEFAULT_TEST_SIZE)
    if test_size is None:
        test_size = DEFAULT_TEST_SIZE
    if not _is_number(test_size) or not 0 < test_size < 0.9:
        raise invalid(f"{prefix}.test_size", "must be a number greater than 0 and less than 0.9")

    max_rows = config.get("max_rows", max_rows_limit)
    if max_rows is None:
        max_rows = max_rows_limit
    if isinstance(max_rows, float) and max_rows.is_integer():
        max_rows = int(max_rows)
    if not _is_int(max_rows) or not 10 <= max_rows <= max_rows_limit:
        raise invalid(f"{prefix}.max_rows", f"must be an integer from 10 to {max_rows_limit}")

    allow_sensitive = config.get("allow_sensitive", False)
    if allow_sensitive is None:
        allow_sensitive = False
    if not isinstance(allow_sensitive, bool):
        raise invalid(f"{prefix}.allow_sensitive", "must be true or false")

    return TrainingConfig(
        allow_sensitive=allow_sensitive,
        target_column=target,
        task_type=task_type,
        algorithm=algorithm,
        feature_columns=feature_columns,
        hyperparams=hyperparams,
        test_size=float(test_size),
        max_rows=max_rows,
        column_types=types,
        input_table=_optional_str(config, "input_table", prefix),
        model_name=_optional_str(config, "model_name", prefix),
    )


def _feature_columns(value: Any, types: dict[str, str], target: str, prefix: str) -> tuple[str, ...] | None:
    path = f"{prefix}.feature_columns"
    if value is None:
        return None
    if not isinstance(value, list):
        raise invalid(path, "must be a list of column names")
    if not value:
        raise invalid(path, "must name at least one column (or be left out to choose them from the data)")
    seen: set[str] = set()
    for i, name in enumerate(value):
        item = f"{path}[{i}]"
        if not isinstance(name, str):
            raise invalid(item, "must be a column name")
        if name not in types:
            raise invalid(item, f"column {name!r} is not in the input table")
        if name == target:
            raise invalid(item, f"{name!r} is the target column and cannot also be a feature")
        if name in seen:
            raise invalid(item, f"column {name!r} is listed twice")
        seen.add(name)
    return tuple(value)


def _hyperparams(value: Any, task_type: str, algorithm: str, prefix: str) -> dict[str, Any]:
    path = f"{prefix}.hyperparams"
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(path, "must be an object")
    allowed = HYPERPARAMS[(task_type, algorithm)]
    out: dict[str, Any] = {}
    for name, raw in value.items():
        spec = allowed.get(name)
        if spec is None:
            names = ", ".join(sorted(allowed)) or "none"
            raise invalid(f"{path}.{name}", f"unknown hyperparameter for {algorithm}; allowed: {names}")
        out[name] = _check_param(f"{path}.{name}", name, spec, raw)
    return out
