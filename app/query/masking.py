"""Column sensitivity, masking strategies and the per-column masking that settings overrides produce."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from app.errors import invalid

SENSITIVITY_LEVELS = ("low", "medium", "high", "critical")
STRATEGIES = ("none", "partial", "full", "hash", "redact")

# The strategy a column gets when its settings name none. Person names and contact details stay recognisable
# (`jo****`), identifiers that must never leak come out hashed so joins and lookups by hash still work.
DEFAULT_STRATEGY = {"low": "none", "medium": "partial", "high": "partial", "critical": "hash"}

BLOCKED = "[BLOCKED]"

# Names are matched as whole `_`-separated words so `username` or `product_name` are not taken for person names.
_CRITICAL = re.compile(
    r"(^|_)(ssn|social_security(_number|_no)?|national_id(_number|_no)?|national_insurance(_number|_no)?|nino"
    r"|passport(_number|_no|_id)?|mrn|medical_record(_number|_no)?|record_number|record_no|patient_number"
    r"|tax_id|taxpayer_id|tin|driver_licen[cs]e(_number|_no)?|credit_card(_number|_no)?|card_number|iban)(_|$)"
)
_HIGH = re.compile(
    r"(^|_)(e_?mail(_address)?|phone(_number|_no)?|mobile(_number|_no)?|telephone|cell_phone|fax"
    r"|address(_line_?\d)?|street(_address)?|postcode|postal_code|zip_?code|ip_address)(_|$)"
)
_PERSON_NAMES = {
    "name",
    "first_name",
    "firstname",
    "last_name",
    "lastname",
    "full_name",
    "fullname",
    "middle_name",
    "surname",
    "given_name",
    "family_name",
    "maiden_name",
    "display_name",
}
_PERSON_NAME = re.compile(
    r"(^|_)(customer|client|contact|person|patient|employee|user|member|owner|holder|manager|buyer|seller|guest"
    r"|student|applicant|recipient|sender|beneficiary)_name$"
)


@dataclass(frozen=True)
class ColumnMasking:
    sensitivity: str  # one of SENSITIVITY_LEVELS
    strategy: str  # one of STRATEGIES


def sensitivity_rank(level: str) -> int:
    """Position of `level` in low < medium < high < critical."""
    return SENSITIVITY_LEVELS.index(level)


def classify_column(name: str) -> str:
    """Sensitivity guessed from a column's name: contact details high, person names medium, national ids critical."""
    lowered = str(name).lower()
    if _CRITICAL.search(lowered):
        return "critical"
    if _HIGH.search(lowered):
        return "high"
    if lowered in _PERSON_NAMES or _PERSON_NAME.search(lowered):
        return "medium"
    return "low"


def default_masking(name: str) -> ColumnMasking:
    """The masking a column gets with no settings override."""
    sensitivity = classify_column(name)
    return ColumnMasking(sensitivity, DEFAULT_STRATEGY[sensitivity])


def mask_value(value: Any, strategy: str) -> Any:
    """`value` served through `strategy`; None stays None whatever the strategy."""
    if value is None or strategy == "none":
        return value
    if strategy == "redact":
        return None
    if strategy == "full":
        return "***"
    if strategy == "hash":
        return hashlib.sha256(str(value).encode("utf-8")).hexdigest()[:12]
    if strategy == "partial":
        return _partial(str(value))
    raise ValueError(f"unknown masking strategy {strategy!r}")


def _keep_prefix(text: str) -> str:
    # Two characters, but never the whole value: a 2-character value keeps one, a 1-character value none.
    return text[: max(0, min(2, len(text) - 1))] + "****"


def _partial(text: str) -> str:
    local, at, domain = text.rpartition("@")
    if at and local and domain:
        return _keep_prefix(local) + "@" + domain
    return _keep_prefix(text)


def effective_masking(column_names: Iterable[str], overrides: Mapping[str, Mapping] | None) -> dict[str, ColumnMasking]:
    """Each column's masking: the settings override where one exists (either key optional), else classification.

    An override naming only a strategy keeps the classified sensitivity, except that a real strategy on a `low`
    column lifts it to `medium`: masked keys only mask columns of medium or above, and an admin who picked a
    strategy expects it to be used. An override naming only a sensitivity gets that level's default strategy.
    Overrides for columns the table no longer has are ignored.
    """
    overrides = overrides or {}
    result: dict[str, ColumnMasking] = {}
    for name in column_names:
        auto = default_masking(name)
        override = overrides.get(name) or {}
        sensitivity = override.get("sensitivity")
        strategy = override.get("strategy")
        if sensitivity is None and strategy is None:
            result[name] = auto
            continue
        if sensitivity is None:
            sensitivity = auto.sensitivity
            if sensitivity == "low" and strategy != "none":
                sensitivity = "medium"
        if strategy is None:
            strategy = DEFAULT_STRATEGY[sensitivity]
        result[name] = ColumnMasking(sensitivity, strategy)
    return result


def validate_masking_settings(
    masking: Any, column_names: Iterable[str] | None = None, field_prefix: str = "masking"
) -> dict[str, dict[str, str]]:
    """Check a settings body's `masking` object; returns it normalised, or raises 422 naming `masking.<col>.<key>`."""
    if not isinstance(masking, dict):
        raise invalid(field_prefix, "expected an object of column -> {sensitivity, strategy}")
    known = set(column_names) if column_names is not None else None
    cleaned: dict[str, dict[str, str]] = {}
    for column, entry in masking.items():
        field = f"{field_prefix}.{column}"
        if known is not None and column not in known:
            raise invalid(field, "the dataset has no such column")
        if not isinstance(entry, dict):
            raise invalid(field, "expected an object with sensitivity and/or strategy")
        for key in entry:
            if key not in ("sensitivity", "strategy"):
                raise invalid(f"{field}.{key}", "unknown field; expected sensitivity or strategy")
        out: dict[str, str] = {}
        if entry.get("sensitivity") is not None:
            if entry["sensitivity"] not in SENSITIVITY_LEVELS:
                raise invalid(f"{field}.sensitivity", f"must be one of {', '.join(SENSITIVITY_LEVELS)}")
            out["sensitivity"] = entry["sensitivity"]
        if entry.get("strategy") is not None:
            if entry["strategy"] not in STRATEGIES:
                raise invalid(f"{field}.strategy", f"must be one of {', '.join(STRATEGIES)}")
            out["strategy"] = entry["strategy"]
        cleaned[column] = out
    return cleaned
