"""Column classification, masking strategies and the settings overrides that change them."""

from __future__ import annotations

import hashlib

import pytest

from app.errors import APIError
from app.query import ColumnMasking, classify_column, effective_masking, mask_value, validate_masking_settings


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("email", "high"),
        ("contact_email", "high"),
        ("phone_number", "high"),
        ("billing_address", "high"),
        ("name", "medium"),
        ("first_name", "medium"),
        ("last_name", "medium"),
        ("full_name", "medium"),
        ("customer_name", "medium"),
        ("ssn", "critical"),
        ("national_id", "critical"),
        ("passport_number", "critical"),
        ("medical_record_number", "critical"),
        ("mrn", "critical"),
        ("product_name", "low"),
        ("username", "low"),
        ("region", "low"),
        ("amount", "low"),
    ],
)
def test_columns_are_classified_by_name(name, expected):
    assert classify_column(name) == expected


def test_partial_keeps_two_characters_and_the_mail_domain():
    assert mask_value("john@example.com", "partial") == "jo****@example.com"
    assert mask_value("Alice Smith", "partial") == "Al****"
    assert mask_value("Al", "partial") == "A****"  # never the whole value


def test_full_hash_redact_and_none():
    assert mask_value("secret", "full") == "***"
    assert mask_value("111-22-3333", "hash") == hashlib.sha256(b"111-22-3333").hexdigest()[:12]
    assert mask_value(42, "hash") == mask_value("42", "hash")  # same value, same hash: joins still work
    assert mask_value("secret", "redact") is None
    assert mask_value("secret", "none") == "secret"


@pytest.mark.parametrize("strategy", ["partial", "full", "hash", "redact", "none"])
def test_null_stays_null_whatever_the_strategy(strategy):
    assert mask_value(None, strategy) is None


def test_effective_masking_merges_overrides_over_classification():
    result = effective_masking(
        ["email", "name", "ssn", "region", "amount", "city"],
        {
            "email": {"strategy": "full"},
            "name": {"sensitivity": "critical"},
            "region": {"sensitivity": "high", "strategy": "redact"},
            "amount": {"strategy": "hash"},
            "gone": {"strategy": "full"},
        },
    )
    assert result["email"] == ColumnMasking("high", "full")
    assert result["name"] == ColumnMasking("critical", "hash")
    assert result["ssn"] == ColumnMasking("critical", "hash")
    assert result["region"] == ColumnMasking("high", "redact")
    # a strategy picked for a low column lifts it to medium so masked keys use it
    assert result["amount"] == ColumnMasking("medium", "hash")
    assert result["city"] == ColumnMasking("low", "none")
    assert "gone" not in result


def test_masking_settings_validation_names_the_field():
    assert validate_masking_settings({"email": {"strategy": "hash"}}, ["email"]) == {"email": {"strategy": "hash"}}
    with pytest.raises(APIError) as err:
        validate_masking_settings({"email": {"strategy": "scramble"}}, ["email"])
    assert err.value.status == 422
    assert "masking.email.strategy" in err.value.details["fields"]
    with pytest.raises(APIError) as err:
        validate_masking_settings({"email": {"sensitivity": "secret"}})
    assert "masking.email.sensitivity" in err.value.details["fields"]
    with pytest.raises(APIError) as err:
        validate_masking_settings({"nope": {"strategy": "full"}}, ["email"])
    assert "masking.nope" in err.value.details["fields"]
    with pytest.raises(APIError):
        validate_masking_settings({"email": {"colour": "red"}}, ["email"])
