"""The engine's side of issue 12: masked columns take only eq, row scope on every joined table, aliases and
dataset names instead of physical tables (on SQLite and, when set, PostgreSQL)."""

from __future__ import annotations

import pytest

from app.errors import APIError
from app.query import KeyPolicy

MASKED_HIGH = KeyPolicy.from_key_fields(sensitivity_max="high")  # e-mails served as al****@example.com


def _param(column: str, op: str) -> dict:
    return {"filters": [{"column": column, "op": op, "param": "p"}]}


@pytest.mark.parametrize("op, value", [("like", "a%"), ("ilike", "A%"), ("gt", "a"), ("neq", "x"), ("in", "a,b")])
def test_only_eq_on_a_masked_column(warehouse, op, value):
    config = warehouse.config(columns=["customer_key", "email"], **_param("email", op))
    with pytest.raises(APIError) as err:
        warehouse.run(config, {"p": value}, MASKED_HIGH)
    assert err.value.status == 400 and err.value.code == "column_masked" and "p" in err.value.details["fields"]
    # Unmasked with the same ceiling: in clear, so any operator.
    warehouse.run(config, {"p": value}, KeyPolicy.from_key_fields(masking_level="unmasked", sensitivity_max="high"))


def test_eq_on_a_masked_column_matches_a_known_value_and_still_masks_it(warehouse):
    config = warehouse.config(columns=["customer_key", "email"], **_param("email", "eq"))
    rows = warehouse.run(config, {"p": "alice@example.com"}, MASKED_HIGH)["rows"]
    assert rows == [{"customer_key": 1, "email": "al****@example.com"}]


def test_sorting_on_a_masked_column_is_refused_but_fixed_filters_still_apply(warehouse):
    with pytest.raises(APIError) as err:
        warehouse.run(warehouse.config(order_by=[{"column": "name"}]), policy=KeyPolicy.from_key_fields())
    assert err.value.status == 400 and "query.order_by[0].column" in err.value.details["fields"]
    fixed = warehouse.config(columns=["customer_key"], filters=[{"column": "email", "op": "like", "value": "a%"}])
    assert warehouse.run(fixed, policy=MASKED_HIGH)["rows"] == [{"customer_key": 1}]


def test_row_scope_applies_to_the_source_and_every_joined_table(warehouse):
    join = {
        "type": "left",
        "schema": warehouse.schema,
        "table": "customers",
        "alias": "c",
        "on": [{"left": "customer_key", "right": "customer_key"}],
        "columns": ["region"],
    }
    config = warehouse.config("orders", columns=["order_id", "region"], joins=[join], order_by=[{"column": "order_id"}])
    rows = warehouse.run(config, policy=KeyPolicy.from_key_fields(row_scope={"region": ["US"]}))["rows"]
    # Order 105 (US) has no customer: its joined region is NULL, outside the scope, so the row is dropped too.
    assert rows == [{"order_id": 103, "region": "US", "c__region": "US"}]


def test_aliases_qualify_columns_and_name_clashing_outputs(warehouse):
    join = {
        "schema": warehouse.schema,
        "table": "customers",
        "alias": "c",
        "on": [{"left": "customer_key", "right": "c.customer_key"}],
        "columns": ["region", "age"],
    }
    config = warehouse.config(
        "orders",
        columns=["order_id", "region"],
        joins=[join],
        filters=[{"column": "c.age", "op": "gte", "value": 40}],
        order_by=[{"column": "order_id"}],
    )
    assert warehouse.run(config)["rows"] == [{"order_id": 103, "region": "US", "c__region": "US", "age": 45}]
    bad = {**config, "filters": [{"column": "c.nope", "op": "eq", "value": 1}]}
    with pytest.raises(APIError) as err:
        warehouse.run(bad)
    assert "unknown column 'nope' in" in err.value.message


def test_messages_and_outputs_use_the_dataset_name_the_catalog_records(warehouse):
    join = {
        "schema": warehouse.schema,
        "table": "customers",
        "dataset": "marts.people",
        "on": [{"left": "customer_key", "right": "customer_key"}],
        "columns": ["region"],
    }
    source = {"schema": warehouse.schema, "table": "orders", "dataset": "marts.sales"}
    config = {
        "source": source,
        "columns": ["order_id", "region"],
        "joins": [join],
        "order_by": [{"column": "order_id"}],
    }
    assert warehouse.run(config)["rows"][0] == {"order_id": 101, "region": "EU", "people__region": "EU"}
    with pytest.raises(APIError) as err:
        warehouse.run({**config, "filters": [{"column": "people.nope", "op": "eq", "value": 1}]})
    assert "marts.people" in err.value.message and "customers" not in err.value.message
