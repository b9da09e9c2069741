"""Query and lookup configs are checked against the real tables, and errors name the field."""

from __future__ import annotations

import pytest

from app.errors import APIError
from app.query import validate_query_config

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
        joins=[
            {
                "type": "left",
                "schema": warehouse.schema,
                "table": "orders",
                "on": [{"left": "customer_key", "right": "customer_key"}],
            }
        ],
        order_by=[{"column": "orders.amount", "dir": "DESC"}],
        pagination={"default_limit": 10, "max_limit": 50},
    )
    validate_query_config(config, warehouse.engine, PREFIX)


@pytest.mark.parametrize(
    ("parts", "field"),
    [
        ({"source": {"schema": "nowhere", "table": "customers"}}, "source.table"),
        ({"source": {"table": "customers"}}, "source.schema"),
        ({"columns": ["name", "shoe_size"]}, "columns[1]"),
        ({"columns": []}, "columns"),
        (
            {"filters": [{"column": "age", "op": "eq", "param": "a"}, {"column": "nope", "op": "eq", "param": "b"}]},
            "filters[1].column",
        ),
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
        (
            {"joins": [{"schema": "S", "table": "ghosts", "on": [{"left": "customer_key", "right": "id"}]}]},
            "joins[0].table",
        ),
        ({"joins": [{"schema": "S", "table": "orders", "on": []}]}, "joins[0].on"),
        (
            {"joins": [{"schema": "S", "table": "orders", "on": [{"left": "nope", "right": "customer_key"}]}]},
            "joins[0].on[0].left",
        ),
        (
            {"joins": [{"schema": "S", "table": "orders", "on": [{"left": "customer_key", "right": "nope"}]}]},
            "joins[0].on[0].right",
        ),
        (
            {
                "joins": [
                    {
                        "schema": "S",
                        "table": "orders",
                        "on": [{"left": "customer_key", "right": "customer_key"}],
                        "columns": ["zzz"],
                    }
                ]
            },
            "joins[0].columns[0]",
        ),
    ],
)
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
