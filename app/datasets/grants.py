"""Schema grants: which warehouse schemas beyond the upload schemas an organization may register tables of."""

from __future__ import annotations

from sqlalchemy import select

from app.db import SchemaGrant
from app.errors import invalid
from app.extensions import db
from app.warehouse.engine import check_identifier


def refuse_system_schema(schema: str) -> None:
    """The databases' own catalogs are never warehouse data, on any backend (422 on `schema`)."""
    if schema in ("information_schema", "temp") or schema.startswith(("pg_", "sqlite_")):
        raise invalid("schema", f"{schema!r} is the database's own catalog, not warehouse data")


def schema_granted(org_id: int, schema: str) -> bool:
    return (
        db.session.scalar(select(SchemaGrant.id).where(SchemaGrant.org_id == org_id, SchemaGrant.schema_name == schema))
        is not None
    )


def grant_schema(org_id: int, schema: str) -> bool:
    """Let organization `org_id` register tables of `schema`; False when it already could."""
    try:
        check_identifier(schema)
    except ValueError as exc:
        raise invalid("schema", str(exc)) from None
    refuse_system_schema(schema)
    if schema_granted(org_id, schema):
        return False
    db.session.add(SchemaGrant(org_id=org_id, schema_name=schema))
    db.session.commit()
    return True


def revoke_schema(org_id: int, schema: str) -> bool:
    """Take a grant back; datasets already registered stay. False when there was none."""
    grant = db.session.scalar(
        select(SchemaGrant).where(SchemaGrant.org_id == org_id, SchemaGrant.schema_name == schema)
    )
    if grant is None:
        return False
    db.session.delete(grant)
    db.session.commit()
    return True


def schema_grants(org_id: int | None = None) -> list[SchemaGrant]:
    stmt = select(SchemaGrant).order_by(SchemaGrant.org_id, SchemaGrant.schema_name)
    if org_id is not None:
        stmt = stmt.where(SchemaGrant.org_id == org_id)
    return list(db.session.scalars(stmt))
