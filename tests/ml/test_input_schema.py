"""Prediction bodies are parsed and checked against the model's input schema; each refusal names its place."""

from __future__ import annotations

import pytest

from app.errors import APIError
from app.ml.input_schema import parse_predict_body, validate_rows

SCHEMA = [
    {"name": "tenure", "type": "integer", "categories": None, "nullable": True},
    {"name": "monthly", "type": "float", "categories": None, "nullable": True},
    {"name": "plan", "type": "text", "categories": ["basic", "premium"], "nullable": True},
    {"name": "autopay", "type": "boolean", "categories": [False, True], "nullable": True},
    {"name": "signup", "type": "date", "categories": None, "nullable": True},
    {"name": "last_seen", "type": "timestamp", "categories": None, "nullable": True},
]
GOOD = {
    "tenure": 8,
    "monthly": 20,
    "plan": "basic",
    "autopay": True,
    "signup": "2021-03-04",
    "last_seen": "2024-01-02T03:04:05Z",
}


def _refused(fn, *args, **kwargs) -> tuple[str, str]:
    with pytest.raises(APIError) as exc:
        fn(*args, **kwargs)
    assert exc.value.status == 422
    (field,) = exc.value.details["fields"]
    return field, exc.value.details["fields"][field][0]


def test_features_body_is_one_row():
    assert parse_predict_body({"features": GOOD}) == ([GOOD], True)


def test_rows_body_is_a_batch():
    assert parse_predict_body({"rows": [GOOD, GOOD]}) == ([GOOD, GOOD], False)


def test_dry_flag_from_the_test_route_is_tolerated():
    assert parse_predict_body({"features": GOOD, "dry": True}) == ([GOOD], True)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (None, "features"),
        ([GOOD], "features"),
        ({}, "features"),
        ({"feature": GOOD}, "features"),
        ({"features": [GOOD]}, "features"),
        ({"rows": GOOD}, "rows"),
        ({"features": GOOD, "rows": [GOOD]}, "rows"),
        ({"features": GOOD, "extra": 1}, "extra"),
    ],
)
def test_malformed_bodies_are_refused(body, field):
    assert _refused(parse_predict_body, body)[0] == field


def test_valid_rows_come_back_normalised_in_schema_order():
    row = dict(reversed(list(GOOD.items())))
    (out,) = validate_rows(SCHEMA, [row], max_rows=10)
    assert list(out) == [f["name"] for f in SCHEMA]
    assert out["monthly"] == 20.0 and isinstance(out["monthly"], float)  # an int is a fine float


def test_null_is_accepted_and_left_to_the_imputer():
    row = dict.fromkeys(GOOD)
    assert validate_rows(SCHEMA, [row], max_rows=10) == [row]


def test_integral_float_is_accepted_for_an_integer():
    (out,) = validate_rows(SCHEMA, [{**GOOD, "tenure": 8.0}], max_rows=10)
    assert out["tenure"] == 8 and isinstance(out["tenure"], int)


def test_missing_feature_is_named_for_a_single_row():
    row = {k: v for k, v in GOOD.items() if k != "tenure"}
    assert _refused(validate_rows, SCHEMA, [row], 10, single=True) == ("features.tenure", "missing")


def test_missing_feature_can_be_treated_as_null():
    row = {"tenure": 8}
    (out,) = validate_rows(SCHEMA, [row], 10, allow_missing=True)
    assert out == {**dict.fromkeys(GOOD), "tenure": 8}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("tenure", "8", "expected an integer"),  # numeric strings are not numbers
        ("tenure", 8.5, "expected an integer"),
        ("tenure", True, "expected an integer"),
        ("monthly", "20.5", "expected a number"),
        ("monthly", False, "expected a number"),
        ("monthly", float("nan"), "expected a number"),
        ("plan", 3, "expected text"),
        ("autopay", 1, "expected true or false"),
        ("autopay", "true", "expected true or false"),
        ("signup", "04/03/2021", "expected a date (YYYY-MM-DD)"),
        ("signup", 20210304, "expected a date (YYYY-MM-DD)"),
        ("last_seen", "yesterday", "expected an ISO 8601 timestamp"),
    ],
)
def test_wrong_types_are_named_with_the_row(name, value, message):
    rows = [GOOD, GOOD, GOOD, {**GOOD, name: value}]
    assert _refused(validate_rows, SCHEMA, rows, 10) == (f"rows[3].{name}", message)


def test_unknown_feature_is_named():
    field, message = _refused(validate_rows, SCHEMA, [{**GOOD, "age": 3}], 10, single=True)
    assert field == "features.age"
    assert "unknown feature" in message and "tenure" in message


def test_too_many_rows_is_refused_on_rows():
    field, message = _refused(validate_rows, SCHEMA, [GOOD] * 11, 10)
    assert field == "rows" and "at most 10" in message


def test_empty_rows_are_refused():
    assert _refused(validate_rows, SCHEMA, [], 10)[0] == "rows"


def test_non_object_row_is_refused():
    assert _refused(validate_rows, SCHEMA, [GOOD, [1, 2]], 10)[0] == "rows[1]"


def test_non_nullable_feature_refuses_null():
    schema = [{**SCHEMA[0], "nullable": False}]
    assert _refused(validate_rows, schema, [{"tenure": None}], 10) == ("rows[0].tenure", "must not be null")
