"""Datasets: warehouse tables a project can serve, with their masking settings."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db.columns import JSONType, UTCDateTime, utcnow
from app.extensions import db


class Dataset(db.Model):
    """`name` is what users write (`marts.dim_customer`); schema_name/table_name is where the rows really are."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(130))
    schema_name: Mapped[str] = mapped_column(sa.String(63))
    table_name: Mapped[str] = mapped_column(sa.String(63))
    source: Mapped[str] = mapped_column(sa.String(20))  # upload | registered
    friendly_name: Mapped[str] = mapped_column(sa.String(200), default="")
    description: Mapped[str] = mapped_column(sa.Text, default="")
    masking: Mapped[dict] = mapped_column(JSONType, default=dict)
    columns: Mapped[list] = mapped_column(JSONType, default=list)
    row_count: Mapped[int | None] = mapped_column(sa.BigInteger)
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (sa.UniqueConstraint("project_id", "name", name="uq_datasets_project_name"),)


class SchemaGrant(db.Model):
    """An operator's grant: organization `org_id` may register the existing tables of warehouse schema
    `schema_name` (required when REGISTER_REQUIRES_GRANT is on; `flask datasets grant-schema`)."""

    __tablename__ = "schema_grants"
    __table_args__ = (sa.UniqueConstraint("org_id", "schema_name", name="uq_schema_grants_org_schema"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(sa.ForeignKey("organizations.id", ondelete="CASCADE"))
    schema_name: Mapped[str] = mapped_column(sa.String(63))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DatasetIndex(db.Model):
    """An index Apiary built (or tried to build) on a dataset's table for a published service's lookups and
    `eq` filters: which index, its state (`building`, `ready`, `failed`) and the last error."""

    __tablename__ = "dataset_indexes"
    __table_args__ = (sa.UniqueConstraint("dataset_id", "name", name="uq_dataset_indexes_dataset_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(sa.ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(63))
    columns: Mapped[list] = mapped_column(JSONType, default=list)
    status: Mapped[str] = mapped_column(sa.String(20), default="building")
    error: Mapped[str] = mapped_column(sa.Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
