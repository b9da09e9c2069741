"""Key policies built from an API key's fields."""

from __future__ import annotations

import pytest

from app.errors import APIError
from app.query import ColumnMasking, KeyPolicy


def test_defaults_are_masked_with_a_medium_ceiling():
    policy = KeyPolicy.from_key_fields()
    assert policy == KeyPolicy(masking_level="masked", allowed_columns=(), sensitivity_max="medium", row_scope=())
    assert policy.is_blocked(ColumnMasking("high", "partial"))
    assert not policy.is_blocked(ColumnMasking("medium", "partial"))


def test_admin_sees_every_sensitivity_unmasked():
    admin = KeyPolicy.admin()
    assert admin.action_for(ColumnMasking("critical", "hash")) == "value"
    assert admin.is_allowed("anything")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"masking_level": "half"}, "masking_level"),
        ({"sensitivity_max": "extreme"}, "sensitivity_max"),
        ({"allowed_columns": "name"}, "allowed_columns"),
        ({"allowed_columns": ["name", 3]}, "allowed_columns[1]"),
        ({"row_scope": ["EU"]}, "row_scope"),
        ({"row_scope": {"region": []}}, "row_scope.region"),
        ({"row_scope": {"region": [{"a": 1}]}}, "row_scope.region"),
    ],
)
def test_bad_key_fields_are_refused_naming_the_field(fields, field):
    with pytest.raises(APIError) as err:
        KeyPolicy.from_key_fields(**fields)
    assert err.value.status == 422
    assert field in err.value.details["fields"]


def test_fingerprint_is_stable_and_tells_policies_apart():
    a = KeyPolicy.from_key_fields(allowed_columns=["a", "b"], row_scope={"region": ["EU", "US"]})
    b = KeyPolicy.from_key_fields(allowed_columns=["b", "a"], row_scope={"region": ["US", "EU"]})
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != KeyPolicy.from_key_fields(row_scope={"region": ["EU"]}).fingerprint()
    assert KeyPolicy().fingerprint() != KeyPolicy.admin().fingerprint()
    assert KeyPolicy.from_key_fields(row_scope={"region": "EU"}).row_scope_map == {"region": ("EU",)}
