"""Training on frames read from a real warehouse table (SQLite, and PostgreSQL when TEST_DATABASE_URL is set)."""

from __future__ import annotations

import decimal
import json
from datetime import date, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from app.ml.input_schema import validate_rows
from app.ml.scoring import score_rows
from app.ml.training import train_model
from app.ml.training_config import validate_training_config
from app.warehouse.engine import ensure_schema, list_columns
from tests.ml.conftest import customer_frame


@pytest.fixture()
def warehouse(scratch_warehouse):
    """(engine, schema): the test's own warehouse (tests/conftest.py) with its schema created."""
    engine, schema = scratch_warehouse
    ensure_schema(engine, schema)
    return engine, schema


def _load_customers(engine, schema: str) -> None:
    table = sa.Table(
        "customers",
        sa.MetaData(),
        sa.Column("customer_id", sa.Integer, primary_key=True),
        sa.Column("tenure", sa.Integer),
        sa.Column("monthly", sa.Numeric(10, 2)),  # PostgreSQL hands these back as Decimal
        sa.Column("plan", sa.Text),
        sa.Column("autopay", sa.Boolean),
        sa.Column("signup", sa.Date),
        sa.Column("last_seen", sa.DateTime),
        sa.Column("churned", sa.Boolean),
        sa.Column("spend", sa.Float),
        schema=schema,
    )
    df = customer_frame()
    rows = []
    for i, rec in enumerate(df.to_dict("records")):
        rows.append(
            {
                "customer_id": int(rec["customer_id"]),
                "tenure": None if pd.isna(rec["tenure"]) else int(rec["tenure"]),
                "monthly": decimal.Decimal(str(rec["monthly"])),
                "plan": rec["plan"],
                "autopay": rec["autopay"],
                "signup": date(2021, 1, 1) + timedelta(days=i),
                "last_seen": datetime(2024, 1, 1) + timedelta(hours=i),
                "churned": bool(rec["churned"]),
                "spend": float(rec["spend"]),
            }
        )
    with engine.begin() as conn:
        table.create(conn)
        conn.execute(table.insert(), rows)


def test_train_and_score_from_a_warehouse_table(warehouse):
    engine, schema = warehouse
    _load_customers(engine, schema)
    columns = list_columns(engine, schema, "customers")
    table = sa.Table("customers", sa.MetaData(), schema=schema, autoload_with=engine)
    with engine.connect() as conn:
        frame = pd.read_sql(sa.select(table), conn)

    config = {"target_column": "churned", "task_type": "classification", "algorithm": "logistic_regression"}
    auto = train_model(frame, validate_training_config(config, columns))
    assert set(auto.feature_columns) == {"tenure", "monthly", "plan", "autopay", "spend"}
    assert auto.metrics["accuracy"] > 0.7

    explicit = {**config, "feature_columns": ["tenure", "monthly", "plan", "autopay", "signup", "last_seen"]}
    trained = train_model(frame, validate_training_config(explicit, columns))
    types = {f["name"]: f["type"] for f in trained.input_schema}
    assert types == {
        "tenure": "integer",
        "monthly": "float",
        "plan": "text",
        "autopay": "boolean",
        "signup": "date",
        "last_seen": "timestamp",
    }
    body = {"tenure": 3, "monthly": 25, "plan": "basic", "autopay": False, "signup": "2021-05-01"}
    rows = validate_rows(trained.input_schema, [{**body, "last_seen": "2024-02-01T10:00:00Z"}], max_rows=10)
    out = score_rows(trained.pipeline, rows, trained.input_schema)
    assert out["predictions"] == [True]
    json.dumps({"schema": trained.input_schema, "out": out, "metrics": trained.metrics})

    regression = {"target_column": "monthly", "task_type": "regression", "algorithm": "random_forest"}
    fitted = train_model(
        frame, validate_training_config({**regression, "feature_columns": ["spend", "tenure"]}, columns)
    )
    assert fitted.metrics["r2"] is not None
