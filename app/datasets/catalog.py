"""The datasets a project may query, and the translation of logical names (`marts.x`) to warehouse tables."""

from __future__ import annotations

import copy
from collections.abc import Callable

from sqlalchemy import select

from app.db import Dataset, Project
from app.errors import invalid
from app.extensions import db
from app.query.masking import ColumnMasking, effective_masking


class Catalog:
    """Datasets visible to one project (or, without a project, to every project of the organization)."""

    def __init__(self, datasets: list[Dataset]):
        self.by_name = {d.name: d for d in datasets}
        self.by_physical = {(d.schema_name, d.table_name): d for d in datasets}

    @classmethod
    def for_scope(cls, org_id: int, project: Project | None) -> Catalog:
        stmt = select(Dataset).join(Project, Project.id == Dataset.project_id).where(Project.org_id == org_id)
        if project is not None:
            stmt = stmt.where(Dataset.project_id == project.id)
        return cls(list(db.session.scalars(stmt.order_by(Dataset.id))))

    def dataset(self, name: str, field: str) -> Dataset:
        found = self.by_name.get(name) if isinstance(name, str) else None
        if found is None:
            raise invalid(field, f"{name!r} is not a dataset of this project")
        return found

    def physical_query(self, query: dict, field: str) -> dict:
        """A copy of a query config whose source and joins name the real warehouse tables."""
        if not isinstance(query, dict):
            raise invalid(field, "expected an object")
        physical = copy.deepcopy(query)
        source = physical.get("source")
        if not isinstance(source, dict):
            raise invalid(f"{field}.source", "expected {schema, table}")
        self._rewrite(source, f"{field}.source")
        joins = physical.get("joins") or []
        if isinstance(joins, list):
            for i, join in enumerate(joins):
                if isinstance(join, dict):
                    self._rewrite(join, f"{field}.joins[{i}]")
        return physical

    def _rewrite(self, ref: dict, field: str) -> None:
        schema, table = ref.get("schema"), ref.get("table")
        if not isinstance(schema, str) or not isinstance(table, str):
            raise invalid(field, "schema and table are required strings")
        if "dataset" in ref:
            raise invalid(f"{field}.dataset", "unknown field; name the dataset with schema and table")
        dataset = self.dataset(f"{schema}.{table}", f"{field}.table")
        # `dataset` keeps the logical name for the query engine's messages and output names (never the physical).
        ref["schema"], ref["table"], ref["dataset"] = dataset.schema_name, dataset.table_name, dataset.name

    def masking(self) -> Callable[[str, str], dict[str, ColumnMasking]]:
        """Per physical table: each column's sensitivity and strategy (settings over automatic classification)."""

        def lookup(schema: str, table: str) -> dict[str, ColumnMasking]:
            dataset = self.by_physical.get((schema, table))
            names = [c["name"] for c in dataset.columns] if dataset else []
            return effective_masking(names, dataset.masking if dataset else None)

        return lookup
