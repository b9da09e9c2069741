"""Warehouse fixtures for the query engine: a small customers/orders mart on SQLite and, when set, PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from app.query import KeyPolicy, effective_masking, run_query
from app.warehouse.engine import create_warehouse_engine, ensure_schema, list_columns
from tests.conftest import WAREHOUSE_BACKENDS

CUSTOMERS = [
    # customer_key, name, email, phone, ssn, region, age, balance, signup_date, last_seen, active, notes
    (
        1,
        "Alice Smith",
        "alice@example.com",
        "555-0101",
        "111-22-3333",
        "EU",
        34,
        100.5,
        dt.date(2023, 1, 15),
        dt.datetime(2024, 1, 1, 10, 0),
        True,
        "vip",
    ),
    (
        2,
        "Bob Jones",
        "bob@example.com",
        "555-0102",
        "222-33-4444",
        "US",
        45,
        250.0,
        dt.date(2023, 3, 20),
        dt.datetime(2024, 2, 1, 11, 30),
        False,
        None,
    ),
    (
        3,
        "Carol White",
        "carol@example.org",
        "555-0103",
        "333-44-5555",
        "EU",
        28,
        0.0,
        dt.date(2023, 6, 1),
        dt.datetime(2024, 3, 1, 9, 15),
        True,
        "new",
    ),
    (4, "Dan Brown", None, "555-0104", "444-55-6666", "APAC", 52, 75.25, dt.date(2023, 9, 10), None, True, None),
    (
        5,
        "Eve O'Neil",
        "eve@example.com",
        "555-0105",
        "555-66-7777",
        "US",
        39,
        500.0,
        dt.date(2024, 1, 5),
        dt.datetime(2024, 4, 1, 8, 0),
        False,
        "it's",
    ),
]
ORDERS = [
    (101, 1, 20.0, "paid", "EU"),
    (102, 1, 35.5, "open", "EU"),
    (103, 2, 99.0, "paid", "US"),
    (104, 3, 10.0, "refunded", "EU"),
    (105, 9, 5.0, "paid", "US"),  # customer 9 does not exist: a left join keeps the order with empty customer columns
]


def _tables(schema: str) -> tuple[sa.Table, sa.Table]:
    meta = sa.MetaData()
    customers = sa.Table(
        "customers",
        meta,
        sa.Column("customer_key", sa.BigInteger),
        sa.Column("name", sa.Text),
        sa.Column("email", sa.Text),
        sa.Column("phone", sa.Text),
        sa.Column("ssn", sa.Text),
        sa.Column("region", sa.Text),
        sa.Column("age", sa.BigInteger),
        sa.Column("balance", sa.Float),
        sa.Column("signup_date", sa.Date),
        sa.Column("last_seen", sa.DateTime),
        sa.Column("active", sa.Boolean),
        sa.Column("notes", sa.Text),
        schema=schema,
    )
    orders = sa.Table(
        "orders",
        meta,
        sa.Column("order_id", sa.BigInteger),
        sa.Column("customer_key", sa.BigInteger),
        sa.Column("amount", sa.Float),
        sa.Column("status", sa.Text),
        sa.Column("region", sa.Text),
        schema=schema,
    )
    return customers, orders


@dataclass
class Warehouse:
    engine: sa.Engine
    schema: str
    backend: str

    def config(self, table: str = "customers", **parts) -> dict:
        return {"source": {"schema": self.schema, "table": table}, **parts}

    def masking(self, overrides: dict[str, dict] | None = None):
        """A masking lookup like the app's: per-table settings overrides over classification by name."""
        overrides = overrides or {}

        def lookup(schema: str, table: str):
            names = [c.name for c in list_columns(self.engine, schema, table)]
            return effective_masking(names, overrides.get(table, {}))

        return lookup

    def run(self, config: dict, params: dict | None = None, policy: KeyPolicy | None = None, overrides=None) -> dict:
        policy = policy or KeyPolicy.admin()
        return run_query(self.engine, config, params or {}, policy, self.masking(overrides), timeout_s=10)

    def row_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for name, table in zip(("customers", "orders"), _tables(self.schema), strict=True)
            }


@pytest.fixture(scope="session", params=WAREHOUSE_BACKENDS)
def warehouse(request, tmp_path_factory):
    if request.param == "sqlite":
        data_dir = tmp_path_factory.mktemp("warehouse")
        engine = create_warehouse_engine(f"sqlite:///{data_dir}/main.db", str(data_dir))
        schema = "marts"
    else:
        engine = create_warehouse_engine(os.environ["TEST_DATABASE_URL"])
        schema = f"marts_{uuid.uuid4().hex[:10]}"
    ensure_schema(engine, schema)
    customers, orders = _tables(schema)
    customers.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(customers.insert(), [dict(zip(customers.c.keys(), row, strict=True)) for row in CUSTOMERS])
        conn.execute(orders.insert(), [dict(zip(orders.c.keys(), row, strict=True)) for row in ORDERS])
    yield Warehouse(engine, schema, request.param)
    if request.param == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    engine.dispose()
