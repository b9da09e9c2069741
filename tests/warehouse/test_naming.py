"""Dataset names and CSV headers become safe identifiers, or a 422 saying why."""

from __future__ import annotations

import pytest

from app.errors import APIError
from app.warehouse.naming import normalise_column_name, normalise_dataset_name


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Sales 2024", ("uploads", "sales_2024")),
        ("  sales-by-region  ", ("uploads", "sales_by_region")),
        ("Marts.Dim Customer", ("marts", "dim_customer")),
        ("a - b", ("uploads", "a_b")),
        ("_staging", ("uploads", "_staging")),
    ],
)
def test_dataset_names_are_lower_cased_with_spaces_and_dashes_as_underscores(typed, expected):
    assert normalise_dataset_name(typed) == expected


def test_a_name_without_schema_goes_to_the_default_schema():
    assert normalise_dataset_name("orders", default_schema="landing") == ("landing", "orders")


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("2024_sales", "must start with a letter"),
        ("marts.1st", "must start with a letter"),
        ("sales$", "'$'"),
        ("café", "'é'"),
        ("a.b.c", "more than one '.'"),
        (".orders", "empty schema"),
        ("marts.", "empty table"),
        ("x" * 64, "longer than 63"),
        ("pg_catalog.orders", "reserved"),
        ("main.orders", "reserved"),
        ("information_schema.tables", "reserved"),
        ("sqlite_master", "reserved"),
    ],
)
def test_bad_dataset_names_are_refused_on_the_name_field_saying_why(typed, why):
    with pytest.raises(APIError) as caught:
        normalise_dataset_name(typed)
    assert caught.value.status == 422
    assert list(caught.value.details["fields"]) == ["name"]
    assert why in caught.value.message


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Customer Name", "customer_name"),
        ("unit-price", "unit_price"),
        ("order.total", "order_total"),
        ("Unit Price (€)", "unit_price"),
        ("Café", "cafe"),
        ("2023 Revenue", "col_2023_revenue"),
        ("_id", "_id"),
        ("  E-mail  ", "e_mail"),
        ("%", ""),
        ("", ""),
        ("x" * 80, "x" * 63),
    ],
)
def test_headers_become_column_names(header, expected):
    assert normalise_column_name(header) == expected
