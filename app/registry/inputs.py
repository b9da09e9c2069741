"""A recipe's input table: its columns as the warehouse has them, and which are too sensitive to train on."""

from __future__ import annotations

from app.datasets.catalog import Catalog
from app.db import Project
from app.errors import invalid
from app.extensions import warehouse
from app.ml.training_config import TrainingConfig
from app.query.masking import ColumnMasking, default_masking, effective_masking
from app.warehouse.engine import ColumnInfo, TableNotFound, list_columns


def input_columns(project: Project, input_table: object, field: str = "config.input_table") -> list[ColumnInfo]:
    """The columns of a project's dataset as the warehouse has them now; 422 naming `field` when it is missing."""
    dataset = Catalog.for_scope(project.org_id, project).dataset(input_table, field)
    try:
        return list_columns(warehouse.get(), dataset.schema_name, dataset.table_name)
    except TableNotFound:
        raise invalid(field, f"the table behind dataset {input_table!r} no longer exists in the warehouse") from None


SENSITIVE_LEVELS = ("high", "critical")
# A target's values come back raw to every key as predicted labels and probability keys, so any level above low
# (a `medium` name as much as a `high` e-mail) needs the admin's consent; a feature's values are never served back.
SENSITIVE_TARGET_LEVELS = ("medium", *SENSITIVE_LEVELS)


def input_masking(project: Project, input_table: str | None) -> dict[str, ColumnMasking]:
    """Each column's masking in the input dataset (settings over classification); {} when the dataset is gone."""
    dataset = Catalog.for_scope(project.org_id, project).by_name.get(input_table) if input_table else None
    if dataset is None:
        return {}
    return effective_masking([c["name"] for c in dataset.columns], dataset.masking)


def column_masking(maskings: dict[str, ColumnMasking], name: str) -> ColumnMasking:
    return maskings.get(name) or default_masking(name)


def check_sensitive_columns(project: Project, cfg: TrainingConfig) -> None:
    """422 naming the field when the target is above low, or a named feature is high or critical, and the config
    does not say `allow_sensitive` (a model's metadata and predictions carry the values it was trained on; its
    predicted labels are the target's raw values, served to every key)."""
    if cfg.allow_sensitive:
        return
    maskings = input_masking(project, cfg.input_table)
    named = [("config.target_column", cfg.target_column)]
    named += [(f"config.feature_columns[{i}]", name) for i, name in enumerate(cfg.feature_columns or ())]
    for field, name in named:
        level = column_masking(maskings, name).sensitivity
        if level in (SENSITIVE_TARGET_LEVELS if field == "config.target_column" else SENSITIVE_LEVELS):
            raise invalid(
                field,
                f"column {name!r} is {level}; training on it needs config.allow_sensitive: true "
                "from an organization admin",
            )


def sensitive_columns(project: Project, cfg: TrainingConfig, names: list[str]) -> set[str]:
    """Which of `names` are high or critical (left out of automatic feature selection without allow_sensitive)."""
    if cfg.allow_sensitive:
        return set()
    maskings = input_masking(project, cfg.input_table)
    return {n for n in names if column_masking(maskings, n).sensitivity in SENSITIVE_LEVELS}
