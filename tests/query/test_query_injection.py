"""Hostile params and config identifiers never widen a result or touch the warehouse."""

from __future__ import annotations

import pytest

from app.errors import APIError
from app.query import KeyPolicy, validate_query_config

CORPUS = [
    "'",
    '"',
    "EU' OR '1'='1",
    "' OR 1=1 --",
    "1 OR 1=1",
    "EU'; DROP TABLE customers; --",
    "; DROP TABLE orders",
    "' UNION SELECT customer_key, ssn, email FROM customers --",
    "1) UNION SELECT NULL--",
    "EU\x00' OR 1=1",
    "/* */ OR /**/ 1=1",
    "%' OR '%'='",
    "\\",
    "EU" + "x" * 100_000,
    "' OR 1=1 --" * 10_000,
]


@pytest.fixture()
def snapshot(warehouse):
    before = warehouse.row_counts()
    yield
    assert warehouse.row_counts() == before  # both tables still there, same rows


def hostile_config(warehouse) -> dict:
    """Every kind of param filter; a hostile value in any of them must not match more than the scope allows."""
    return warehouse.config(
        filters=[
            {"column": "region", "op": "eq", "param": "region"},
            {"column": "name", "op": "like", "param": "name"},
            {"column": "name", "op": "ilike", "param": "iname"},
            {"column": "region", "op": "in", "param": "regions"},
            {"column": "region", "op": "not_in", "param": "not_regions"},
            {"column": "notes", "op": "between", "param": "notes_range"},
            {"column": "age", "op": "gte", "param": "min_age"},
            {"column": "balance", "op": "lt", "param": "max_balance"},
            {"column": "signup_date", "op": "gte", "param": "since"},
            {"column": "active", "op": "eq", "param": "active"},
        ],
    )


PARAMS = [
    "region",
    "name",
    "iname",
    "regions",
    "not_regions",
    "notes_range",
    "min_age",
    "max_balance",
    "since",
    "active",
]


@pytest.mark.parametrize("param", [*PARAMS, "limit", "offset"])
def test_hostile_param_values_return_no_extra_rows(warehouse, snapshot, param):
    config = hostile_config(warehouse)
    scoped = KeyPolicy.from_key_fields(row_scope={"region": ["US"]})
    for payload in CORPUS:
        try:
            result = warehouse.run(config, {param: payload}, policy=scoped)
        except APIError as err:
            assert err.status == 400
            continue
        if param == "not_regions":
            # not_in with a value nobody has excludes nothing: the key's scope is all it sees
            assert sorted(r["customer_key"] for r in result["rows"]) == [2, 5]
        else:
            assert result["rows"] == [], (param, payload[:40])


def test_hostile_fixed_values_match_nothing(warehouse, snapshot):
    for payload in CORPUS:
        config = warehouse.config(filters=[{"column": "region", "op": "eq", "value": payload}])
        try:
            assert warehouse.run(config)["rows"] == []
        except APIError as err:
            assert err.status == 422


@pytest.mark.parametrize(
    "place",
    ["source.schema", "source.table", "columns", "filter.column", "filter.param", "order_by", "join.table", "join.on"],
)
def test_hostile_identifiers_in_config_are_refused(warehouse, snapshot, place):
    for payload in [*CORPUS, "CUSTOMERS", "region) OR (1=1", "customers.region; --", "main.sqlite_master"]:
        config = warehouse.config()
        join = {
            "schema": warehouse.schema,
            "table": "orders",
            "on": [{"left": "customer_key", "right": "customer_key"}],
        }
        if place == "source.schema":
            config["source"]["schema"] = payload
        elif place == "source.table":
            config["source"]["table"] = payload
        elif place == "columns":
            config["columns"] = ["customer_key", payload]
        elif place == "filter.column":
            config["filters"] = [{"column": payload, "op": "eq", "value": "EU"}]
        elif place == "filter.param":
            # a param name is only ever a lookup key in the request params, so any string is harmless
            config["filters"] = [{"column": "region", "op": "eq", "param": payload}]
            result = warehouse.run(
                config, {payload: "EU"}, policy=KeyPolicy.from_key_fields(row_scope={"region": ["EU"]})
            )
            assert sorted(r["customer_key"] for r in result["rows"]) == [1, 3]
            continue
        elif place == "order_by":
            config["order_by"] = [{"column": payload}]
        elif place == "join.table":
            config["joins"] = [dict(join, table=payload)]
        else:
            config["joins"] = [dict(join, on=[{"left": payload, "right": "customer_key"}])]
        with pytest.raises(APIError) as err:
            validate_query_config(config, warehouse.engine, "query")
        assert err.value.status == 422
        assert len(err.value.message) < 500  # a 100 kB payload is not echoed back
