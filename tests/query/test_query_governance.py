"""What a key sees: masking strategies, [BLOCKED], allowed columns, unmasked keys and row scope."""

from __future__ import annotations

import hashlib

import pytest

from app.errors import APIError
from app.query import KeyPolicy


def one_customer(warehouse, policy, key=1, overrides=None, **parts) -> dict:
    config = warehouse.config(filters=[{"column": "customer_key", "op": "eq", "value": key}], **parts)
    return warehouse.run(config, policy=policy, overrides=overrides)["rows"][0]


def test_default_key_masks_names_and_blocks_contact_details_and_ids(warehouse):
    row = one_customer(warehouse, KeyPolicy.from_key_fields())
    assert row["name"] == "Al****"
    assert row["email"] == "[BLOCKED]"
    assert row["phone"] == "[BLOCKED]"
    assert row["ssn"] == "[BLOCKED]"
    assert row["region"] == "EU"
    assert row["age"] == 34


def test_a_higher_ceiling_serves_each_column_through_its_strategy(warehouse):
    row = one_customer(warehouse, KeyPolicy.from_key_fields(sensitivity_max="critical"))
    assert row["email"] == "al****@example.com"
    assert row["phone"] == "55****"
    assert row["ssn"] == hashlib.sha256(b"111-22-3333").hexdigest()[:12]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("partial", "al****@example.com"),
        ("full", "***"),
        ("hash", hashlib.sha256(b"alice@example.com").hexdigest()[:12]),
        ("redact", None),
        ("none", "alice@example.com"),
    ],
)
def test_every_masking_strategy_from_dataset_settings(warehouse, strategy, expected):
    overrides = {"customers": {"email": {"strategy": strategy}}}
    row = one_customer(warehouse, KeyPolicy.from_key_fields(sensitivity_max="high"), overrides=overrides)
    assert row["email"] == expected


def test_masked_null_stays_null(warehouse):
    row = one_customer(warehouse, KeyPolicy.from_key_fields(sensitivity_max="high"), key=4)
    assert row["email"] is None


def test_unmasked_key_sees_stored_values_but_is_still_blocked_above_its_ceiling(warehouse):
    row = one_customer(warehouse, KeyPolicy.from_key_fields(masking_level="unmasked", sensitivity_max="high"))
    assert row["name"] == "Alice Smith"
    assert row["email"] == "alice@example.com"
    assert row["ssn"] == "[BLOCKED]"


def test_admin_sees_everything_as_stored(warehouse):
    row = one_customer(warehouse, KeyPolicy.admin())
    assert (row["email"], row["ssn"]) == ("alice@example.com", "111-22-3333")


def test_allowed_columns_drop_every_other_column(warehouse):
    row = one_customer(warehouse, KeyPolicy.from_key_fields(allowed_columns=["customer_key", "name", "email"]))
    assert row == {"customer_key": 1, "name": "Al****", "email": "[BLOCKED]"}


def test_allowed_columns_use_output_names_of_joined_columns(warehouse):
    join = {
        "schema": warehouse.schema,
        "table": "customers",
        "on": [{"left": "customer_key", "right": "customer_key"}],
        "columns": ["region", "age"],
    }
    config = warehouse.config("orders", joins=[join], order_by=[{"column": "order_id"}])
    policy = KeyPolicy.from_key_fields(allowed_columns=["order_id", "customer_key", "customers__region"])
    rows = warehouse.run(config, policy=policy)["rows"]
    assert rows[0] == {"order_id": 101, "customer_key": 1, "customers__region": "EU"}
    only_orders_region = KeyPolicy.from_key_fields(allowed_columns=["order_id", "customer_key", "region"])
    assert warehouse.run(config, policy=only_orders_region)["rows"][0] == {
        "order_id": 101,
        "customer_key": 1,
        "region": "EU",
    }


def test_row_scope_cannot_be_widened_by_params(warehouse):
    config = warehouse.config(filters=[{"column": "region", "op": "in", "param": "region"}])
    policy = KeyPolicy.from_key_fields(row_scope={"region": ["EU"]})
    assert sorted(r["customer_key"] for r in warehouse.run(config, policy=policy)["rows"]) == [1, 3]
    assert warehouse.run(config, {"region": "US"}, policy=policy)["rows"] == []
    assert len(warehouse.run(config, {"region": "US,EU,APAC"}, policy=policy)["rows"]) == 2


def test_row_scope_applies_to_a_joined_table_and_fails_closed_without_the_column(warehouse):
    join = {"schema": warehouse.schema, "table": "customers", "on": [{"left": "customer_key", "right": "customer_key"}]}
    scoped = KeyPolicy.from_key_fields(row_scope={"age": [34]})
    rows = warehouse.run(warehouse.config("orders", joins=[join]), policy=scoped)["rows"]
    assert sorted(r["order_id"] for r in rows) == [101, 102]
    with pytest.raises(APIError) as err:
        warehouse.run(warehouse.config("orders"), policy=scoped)
    assert err.value.status == 403


@pytest.mark.parametrize(
    "policy",
    [KeyPolicy.from_key_fields(), KeyPolicy.from_key_fields(allowed_columns=["customer_key", "name"])],
    ids=["blocked", "not-allowed"],
)
def test_filter_or_order_on_a_column_the_key_may_not_see_is_refused(warehouse, policy):
    config = warehouse.config(filters=[{"column": "email", "op": "like", "param": "email"}])
    with pytest.raises(APIError) as err:
        warehouse.run(config, {"email": "a%"}, policy=policy)
    assert err.value.status == 400
    assert "email" in err.value.message
    # a probe with a value of the wrong shape gets the same answer
    config = warehouse.config(filters=[{"column": "ssn", "op": "eq", "param": "ssn"}])
    with pytest.raises(APIError) as err:
        warehouse.run(config, {"ssn": "111-22-3333"}, policy=policy)
    assert err.value.status == 400
    with pytest.raises(APIError) as err:
        warehouse.run(warehouse.config(order_by=[{"column": "phone"}]), policy=policy)
    assert err.value.status == 400
    assert "order_by[0]" in err.value.message


def test_join_on_a_column_the_key_may_not_see_is_refused(warehouse):
    join = {"schema": warehouse.schema, "table": "orders", "on": [{"left": "customer_key", "right": "customer_key"}]}
    policy = KeyPolicy.from_key_fields(allowed_columns=["name", "order_id"])
    with pytest.raises(APIError) as err:
        warehouse.run(warehouse.config(joins=[join]), policy=policy)
    assert err.value.status == 400
    assert "joins[0].on[0]" in err.value.message


def test_an_optional_filter_on_a_hidden_column_is_harmless_when_not_used(warehouse):
    config = warehouse.config(filters=[{"column": "email", "op": "eq", "param": "email"}])
    assert warehouse.run(config, policy=KeyPolicy.from_key_fields())["count"] == 5


def test_every_column_blocked_still_returns_rows(warehouse):
    config = warehouse.config(columns=["email", "ssn"])
    rows = warehouse.run(config, policy=KeyPolicy.from_key_fields())["rows"]
    assert rows == [{"email": "[BLOCKED]", "ssn": "[BLOCKED]"}] * 5


def test_fixed_filters_on_hidden_columns_still_apply(warehouse):
    # A fixed value is part of the endpoint's design; the caller cannot vary it, so nothing can be probed.
    config = warehouse.config(columns=["customer_key"], filters=[{"column": "email", "op": "is_not_null"}])
    rows = warehouse.run(config, policy=KeyPolicy.from_key_fields(allowed_columns=["customer_key"]))["rows"]
    assert sorted(r["customer_key"] for r in rows) == [1, 2, 3, 5]
