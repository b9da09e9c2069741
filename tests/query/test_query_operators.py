"""Filters, joins, ordering, pagination and param coercion of served queries."""

from __future__ import annotations

import pytest

from app.errors import APIError


def keys(result: dict, column: str = "customer_key") -> list:
    return sorted(row[column] for row in result["rows"])


def param_filter(column: str, op: str, param: str = "p", **extra) -> dict:
    return {"column": column, "op": op, "param": param, **extra}


@pytest.mark.parametrize(
    ("column", "op", "value", "expected"),
    [
        ("region", "eq", "EU", [1, 3]),
        ("region", "neq", "EU", [2, 4, 5]),
        ("age", "gt", "39", [2, 4]),
        ("age", "gte", "39", [2, 4, 5]),
        ("age", "lt", "34", [3]),
        ("age", "lte", "34", [1, 3]),
        ("region", "in", "EU,APAC", [1, 3, 4]),
        ("region", "not_in", "EU,APAC", [2, 5]),
        ("age", "between", "30,40", [1, 5]),
        ("name", "like", "%o%", [2, 3, 4]),
        ("name", "ilike", "%SMITH%", [1]),
        ("name", "like", "%smith%", []),  # like is case-sensitive on both warehouses
        ("name", "like", "%'%", [5]),
        ("name", "like", "_ve%", [5]),
        ("notes", "like", "it\\'s", [5]),  # backslash escapes the next character
        ("balance", "gte", "100.5", [1, 2, 5]),
        ("active", "eq", "true", [1, 3, 4]),
        ("signup_date", "lt", "2023-06-01", [1, 2]),
        ("last_seen", "gte", "2024-02-01T11:30:00", [2, 3, 5]),
        ("signup_date", "between", "2023-03-01,2023-12-31", [2, 3, 4]),
    ],
)
def test_each_operator_with_a_request_param(warehouse, column, op, value, expected):
    config = warehouse.config(filters=[param_filter(column, op)])
    assert keys(warehouse.run(config, {"p": value})) == expected


def test_null_operators_and_fixed_values(warehouse):
    assert keys(warehouse.run(warehouse.config(filters=[{"column": "email", "op": "is_null"}]))) == [4]
    assert keys(warehouse.run(warehouse.config(filters=[{"column": "notes", "op": "is_not_null"}]))) == [1, 3, 5]
    fixed = warehouse.config(filters=[{"column": "region", "op": "in", "value": ["US"]}, param_filter("age", "gt")])
    assert keys(warehouse.run(fixed)) == [2, 5]
    assert keys(warehouse.run(fixed, {"p": "40"})) == [2]


def test_optional_filter_without_its_param_is_not_applied_and_unknown_params_are_ignored(warehouse):
    config = warehouse.config(filters=[param_filter("region", "eq", "region")])
    assert keys(warehouse.run(config, {"colour": "blue"})) == [1, 2, 3, 4, 5]


def test_required_filter_without_its_param_is_refused(warehouse):
    config = warehouse.config(filters=[param_filter("region", "eq", "region", required=True)])
    with pytest.raises(APIError) as err:
        warehouse.run(config, {})
    assert err.value.status == 400
    assert err.value.message == "param 'region': is required"


@pytest.mark.parametrize(
    ("column", "op", "value", "message"),
    [
        ("age", "eq", "forty", "param 'p': expected an integer"),
        ("age", "eq", "4.5", "param 'p': expected an integer"),
        ("balance", "gt", "lots", "param 'p': expected a number"),
        ("active", "eq", "maybe", "param 'p': expected a boolean (true or false)"),
        ("signup_date", "eq", "15/01/2023", "param 'p': expected a date (YYYY-MM-DD)"),
        ("last_seen", "gt", "yesterday", "param 'p': expected an ISO 8601 timestamp"),
        ("age", "between", "30", "param 'p': expected two comma-separated values (low,high)"),
        ("age", "in", "1,x", "param 'p': expected an integer"),
        (
            "name",
            "like",
            "Al\\",
            "param 'p': a pattern must not end with a lone backslash (write \\\\ for a literal one)",
        ),
    ],
)
def test_params_are_coerced_to_the_column_type(warehouse, column, op, value, message):
    with pytest.raises(APIError) as err:
        warehouse.run(warehouse.config(filters=[param_filter(column, op)]), {"p": value})
    assert err.value.status == 400
    assert err.value.message == message
    assert "p" in err.value.details["fields"]


def test_order_by_both_directions(warehouse):
    asc = warehouse.run(warehouse.config(order_by=[{"column": "age"}]))
    assert [r["age"] for r in asc["rows"]] == [28, 34, 39, 45, 52]
    desc = warehouse.run(warehouse.config(order_by=[{"column": "region", "dir": "desc"}, {"column": "age"}]))
    assert [r["customer_key"] for r in desc["rows"]] == [5, 2, 3, 1, 4]


def test_pagination_defaults_bounds_and_offset(warehouse):
    config = warehouse.config(order_by=[{"column": "customer_key"}], pagination={"default_limit": 2, "max_limit": 3})
    first = warehouse.run(config)
    assert [r["customer_key"] for r in first["rows"]] == [1, 2]
    assert (first["count"], first["limit"], first["offset"]) == (2, 2, 0)
    page = warehouse.run(config, {"limit": "3", "offset": "3"})
    assert [r["customer_key"] for r in page["rows"]] == [4, 5]
    assert (page["limit"], page["offset"]) == (3, 3)
    for bad in ("0", "4", "-1", "two", "1.5", " 2", ""):
        with pytest.raises(APIError) as err:
            warehouse.run(config, {"limit": bad})
        assert (err.value.status, list(err.value.details["fields"])) == (400, ["limit"])
    for bad in ("-1", "x", "1e3", "9" * 30):
        with pytest.raises(APIError) as err:
            warehouse.run(config, {"offset": bad})
        assert (err.value.status, list(err.value.details["fields"])) == (400, ["offset"])


def test_values_come_back_json_friendly(warehouse):
    row = warehouse.run(warehouse.config(filters=[{"column": "customer_key", "op": "eq", "value": 1}]))["rows"][0]
    assert row["signup_date"] == "2023-01-15"
    assert row["last_seen"] == "2024-01-01T10:00:00"
    assert row["balance"] == 100.5
    assert row["active"] is True
    assert row["customer_key"] == 1


def test_inner_join_brings_the_joined_columns_under_their_own_names(warehouse):
    config = warehouse.config(
        "orders",
        columns=["order_id", "amount", "region"],
        joins=[
            {
                "type": "inner",
                "schema": warehouse.schema,
                "table": "customers",
                "on": [{"left": "customer_key", "right": "customer_key"}],
                "columns": ["name", "region"],
            }
        ],
        order_by=[{"column": "order_id"}],
    )
    rows = warehouse.run(config)["rows"]
    assert [r["order_id"] for r in rows] == [101, 102, 103, 104]  # order 105 has no customer
    # `region` clashes with the orders column, so the joined one is prefixed with its table
    assert rows[0] == {
        "order_id": 101,
        "amount": 20.0,
        "region": "EU",
        "name": "Alice Smith",
        "customers__region": "EU",
    }


def test_left_join_keeps_unmatched_rows_and_filters_on_joined_columns(warehouse):
    join = {
        "type": "left",
        "schema": warehouse.schema,
        "table": "customers",
        "on": [{"left": "orders.customer_key", "right": "customer_key"}],
        "columns": ["name"],
    }
    config = warehouse.config("orders", columns=["order_id"], joins=[join], order_by=[{"column": "order_id"}])
    rows = warehouse.run(config)["rows"]
    assert [r["order_id"] for r in rows] == [101, 102, 103, 104, 105]
    assert rows[-1] == {"order_id": 105, "name": None}
    filtered = dict(config, filters=[param_filter("customers.age", "gt")])
    assert [r["order_id"] for r in warehouse.run(filtered, {"p": "40"})["rows"]] == [103]


def test_join_without_columns_brings_all_but_the_join_key(warehouse):
    join = {"schema": warehouse.schema, "table": "orders", "on": [{"left": "customer_key", "right": "customer_key"}]}
    rows = warehouse.run(warehouse.config(columns=["customer_key"], joins=[join], order_by=[{"column": "order_id"}]))
    assert list(rows["rows"][0]) == ["customer_key", "order_id", "amount", "status", "region"]
