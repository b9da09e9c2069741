"""Test helper: put a table into the warehouse and register it as a dataset of a project."""

from __future__ import annotations

import sqlalchemy as sa

CUSTOMERS = [
    {
        "customer_key": 1,
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "region": "EU",
        "tenure": 12,
        "plan": "premium",
        "ssn": "111-22-3333",
    },
    {
        "customer_key": 2,
        "name": "Alan Turing",
        "email": "alan@example.com",
        "region": "EU",
        "tenure": 3,
        "plan": "basic",
        "ssn": "222-33-4444",
    },
    {
        "customer_key": 3,
        "name": "Grace Hopper",
        "email": "grace@example.com",
        "region": "US",
        "tenure": 30,
        "plan": "premium",
        "ssn": "333-44-5555",
    },
    {
        "customer_key": 4,
        "name": "Edsger Dijkstra",
        "email": "edsger@example.com",
        "region": "EU",
        "tenure": 7,
        "plan": "basic",
        "ssn": "444-55-6666",
    },
    {
        "customer_key": 5,
        "name": "Barbara Liskov",
        "email": "barbara@example.com",
        "region": "US",
        "tenure": 18,
        "plan": "premium",
        "ssn": "555-66-7777",
    },
]

COLUMN_TYPES = {
    "customer_key": "integer",
    "name": "text",
    "email": "text",
    "region": "text",
    "tenure": "integer",
    "plan": "text",
    "ssn": "text",
}


def create_dataset(app, project_id: int, name: str = "marts.dim_customer", rows: list[dict] = CUSTOMERS) -> dict:
    """Create the physical table (dropping an old one) and the Dataset row; returns the dataset's identifiers."""
    from app.db import Dataset
    from app.extensions import db, warehouse
    from app.warehouse.engine import ensure_schema, sa_type_for

    logical_schema, table = name.split(".")
    schema = app.config["WAREHOUSE_SCHEMA_PREFIX"] + logical_schema
    physical = f"p{project_id}__{table}"
    with app.app_context():
        engine = warehouse.get()
        ensure_schema(engine, schema)
        columns = [sa.Column(col, sa_type_for(COLUMN_TYPES.get(col, "text"))) for col in rows[0]]
        tbl = sa.Table(physical, sa.MetaData(), *columns, schema=schema)
        with engine.begin() as conn:
            # A write first, not `drop(checkfirst=True)`'s read then write: on SQLite (WAL) a transaction that read
            # before another connection committed (a worker indexing a table) cannot write, and fails at once with
            # "database is locked" instead of waiting its turn.
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{schema}"."{physical}"')
            tbl.create(conn)
            conn.execute(tbl.insert(), rows)
        dataset = Dataset(
            project_id=project_id,
            name=name,
            schema_name=schema,
            table_name=physical,
            source="upload",
            columns=[{"name": c, "type": COLUMN_TYPES.get(c, "text")} for c in rows[0]],
            row_count=len(rows),
            masking={},
        )
        db.session.add(dataset)
        db.session.commit()
    return {"name": name, "schema": schema, "table": physical}
