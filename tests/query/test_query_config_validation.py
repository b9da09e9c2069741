"""Query and lookup configs are checked against the real tables, and errors name the field."""

from __future__ import annotations

import pytest

from app.errors import APIError
from app.query import KeyPolicy, lookup_query_config, validate_lookup_endpoint, validate_query_config

PREFIX = "endpoints[0].query"


def refused_field(warehouse, config: dict) -> str:
    with pytest.raises(APIError) as err:
        validate_query_config(config, warehouse.engine, PREFIX)
    assert err.value.status == 422
    (field,) = err.value.details["fields"]
    assert err.value.message.startswith(field)
    return field


def test_a_good_config_passes(warehouse):
    config = warehouse.config(
        columns=["customer_key", "name"],
        filters=[{"column": "age", "op": "between", "value": [20, 30]}, {"column": "email", "op": "is_null"}],
        joins=[{"type": "left", "schema": warehouse.schema, "table": "orders", "on": [{"left": "customer_key", "right": "customer_key"}]}],
        order_by=[{"column": "orders.amount", "dir": "DESC"}],
        pagination={"default_limit": 10, "max_limit": 50},
    )  # fmt: skip
    validate_query_config(config, warehouse.engine, PREFIX)


@pytest.mark.parametrize(
    ("parts", "field"),
    [
        ({"source": {"schema": "nowhere", "table": "customers"}}, "source.table"),
        ({"source": {"table": "customers"}}, "source.schema"),
        ({"columns": ["name", "shoe_size"]}, "columns[1]"),
        ({"columns": []}, "columns"),
        ({"filters": [{"column": "age", "op": "eq", "param": "a"}, {"column": "nope", "op": "eq", "param": "b"}]}, "filters[1].column"),
        ({"filters": [{"column": "age", "op": "roughly", "param": "a"}]}, "filters[0].op"),
        ({"filters": [{"column": "age", "op": "eq"}]}, "filters[0]"),
        ({"filters": [{"column": "age", "op": "eq", "param": "a", "value": 3}]}, "filters[0]"),
        ({"filters": [{"column": "age", "op": "is_null", "value": 3}]}, "filters[0].value"),
        ({"filters": [{"column": "age", "op": "in", "value": 3}]}, "filters[0].value"),
        ({"filters": [{"column": "age", "op": "between", "value": [1, 2, 3]}]}, "filters[0].value"),
        ({"filters": [{"column": "age", "op": "eq", "value": "old"}]}, "filters[0].value"),
        ({"filters": [{"column": "age", "op": "like", "param": "a"}]}, "filters[0].op"),
        ({"filters": [{"column": "age", "op": "eq", "param": "limit"}]}, "filters[0].param"),
        ({"filters": [{"column": "age", "op": "eq", "param": "a", "required": "yes"}]}, "filters[0].required"),
        ({"filters": [{"column": "age", "op": "eq", "param": "a", "colour": 1}]}, "filters[0].colour"),
        ({"order_by": [{"column": "age", "dir": "sideways"}]}, "order_by[0].dir"),
        ({"order_by": [{"column": "height"}]}, "order_by[0].column"),
        ({"pagination": {"default_limit": 500, "max_limit": 100}}, "pagination.default_limit"),
        ({"pagination": {"max_limit": 0}}, "pagination.max_limit"),
        ({"joins": [{"type": "outer", "schema": "S", "table": "orders", "on": []}]}, "joins[0].type"),
        ({"joins": [{"schema": "S", "table": "ghosts", "on": [{"left": "customer_key", "right": "id"}]}]}, "joins[0].table"),
        ({"joins": [{"schema": "S", "table": "orders", "on": []}]}, "joins[0].on"),
        ({"joins": [{"schema": "S", "table": "orders", "on": [{"left": "nope", "right": "customer_key"}]}]}, "joins[0].on[0].left"),
        ({"joins": [{"schema": "S", "table": "orders", "on": [{"left": "customer_key", "right": "nope"}]}]}, "joins[0].on[0].right"),
        ({"joins": [{"schema": "S", "table": "orders", "on": [{"left": "customer_key", "right": "customer_key"}], "columns": ["zzz"]}]}, "joins[0].columns[0]"),
    ],
)  # fmt: skip
def test_bad_configs_are_refused_naming_the_field(warehouse, parts, field):
    config = warehouse.config()
    for join in parts.get("joins", []):
        join["schema"] = warehouse.schema
    config.update(parts)
    if "source" in parts and "schema" in parts["source"] and parts["source"]["schema"] != "nowhere":
        config["source"]["schema"] = warehouse.schema
    assert refused_field(warehouse, config) == f"{PREFIX}.{field}"


def test_joined_columns_can_be_named_bare_or_qualified(warehouse):
    config = warehouse.config(
        "orders",
        joins=[
            {
                "schema": warehouse.schema,
                "table": "customers",
                "on": [{"left": "customer_key", "right": "customer_key"}],
            }
        ],
        filters=[{"column": "age", "op": "eq", "value": 3}, {"column": "customers.region", "op": "eq", "value": "EU"}],
    )
    validate_query_config(config, warehouse.engine, PREFIX)


def test_lookup_endpoint_expands_to_one_required_filter(warehouse):
    endpoint = {
        "id": "customer",
        "kind": "lookup",
        "dataset": f"{warehouse.schema}.customers",
        "key_column": "customer_key",
    }
    validate_lookup_endpoint(endpoint, warehouse.engine, "endpoints[1]")
    config = lookup_query_config(endpoint)
    assert config["filters"] == [{"column": "customer_key", "op": "eq", "param": "id", "required": True}]
    assert config["pagination"] == {"default_limit": 100, "max_limit": 100}
    result = warehouse.run(config, {"id": "3"}, policy=KeyPolicy.from_key_fields())
    assert result["rows"][0]["name"] == "Ca****"
    assert result["count"] == 1
    with pytest.raises(APIError) as err:
        warehouse.run(config, {})
    assert (err.value.status, err.value.message) == (400, "param 'id': is required")


def test_lookup_honours_key_param_columns_and_max_results(warehouse):
    endpoint = {
        "dataset": f"{warehouse.schema}.orders",
        "key_column": "status",
        "key_param": "status",
        "columns": ["order_id"],
        "max_results": 2,
    }
    validate_lookup_endpoint(endpoint, warehouse.engine)
    rows = warehouse.run(lookup_query_config(endpoint), {"status": "paid"})["rows"]
    assert len(rows) == 2 and all(list(r) == ["order_id"] for r in rows)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"dataset": "customers"}, "dataset"),
        ({"dataset": "marts.nope"}, "dataset"),
        ({"key_column": "nope"}, "key_column"),
        ({"key_param": "offset"}, "key_param"),
        ({"columns": ["name", "nope"]}, "columns[1]"),
        ({"max_results": 0}, "max_results"),
    ],
)
def test_bad_lookup_endpoints_are_refused_naming_the_field(warehouse, changes, field):
    endpoint = {"dataset": f"{warehouse.schema}.customers", "key_column": "customer_key", **changes}
    with pytest.raises(APIError) as err:
        validate_lookup_endpoint(endpoint, warehouse.engine, "endpoints[2]")
    assert err.value.status == 422
    assert list(err.value.details["fields"]) == [f"endpoints[2].{field}"]
