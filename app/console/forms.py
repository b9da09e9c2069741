"""Form plumbing: posted fields to clean values, and service errors to messages next to the right field."""

from __future__ import annotations

import re

from marshmallow import Schema, ValidationError

from app.errors import APIError, _flatten


class FormErrors(dict):
    """field name -> list of messages; the key "" holds what belongs to the form as a whole."""

    def add(self, field: str, message: str) -> None:
        self.setdefault(field, []).append(message)

    @property
    def general(self) -> list[str]:
        return self.get("", [])


def text(form, name: str) -> str:
    return (form.get(name) or "").strip()


def optional(form, name: str) -> str | None:
    value = text(form, name)
    return value or None


def comma_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def load(schema: Schema, data: dict, errors: FormErrors, rename: dict[str, str] | None = None) -> dict | None:
    """`schema.load(data)`, or None with the messages added to `errors` under the form's field names."""
    try:
        return schema.load(data)
    except ValidationError as err:
        for path, messages in _flatten(err.messages).items():
            field = (rename or {}).get(path, path.split(".")[0].split("[")[0])
            for message in messages:
                errors.add(field, message)
        return None


def from_api_error(
    err: APIError, errors: FormErrors, field_for: dict[str, str] | None = None, prefix: str = ""
) -> None:
    """Put an APIError's `details.fields` next to the form's fields.

    `prefix` is stripped from each path (`config.endpoints[2].`); what remains names the form field by its first
    part (`query.filters[0].column` -> `query`), mapped through `field_for`. A path outside `prefix` and an error
    without fields go to the form as a whole.
    """
    fields = err.details.get("fields") if isinstance(err.details, dict) else None
    if not fields:
        errors.add("", err.message)
        return
    for path, messages in fields.items():
        if prefix and not path.startswith(prefix):
            for message in messages:
                errors.add("", f"{path}: {message}")
            continue
        rest = path[len(prefix) :]
        head = re.split(r"[.\[]", rest, maxsplit=1)[0]
        field = (field_for or {}).get(head, head)
        detail = rest[len(head) :].lstrip(".")
        for message in messages:
            errors.add(field, f"{detail}: {message}" if detail else message)


def row_scope_from_text(value: str) -> dict[str, list[str]] | None:
    """Row scope typed one column per line, `region=EU,US`, as {"region": ["EU", "US"]}; None when empty. A line
    without `=` keeps the column with no values, which the key validation refuses naming it."""
    scope: dict[str, list[str]] = {}
    for line in value.splitlines():
        if not line.strip():
            continue
        column, _, values = line.partition("=")
        scope.setdefault(column.strip(), []).extend(comma_list(values))
    return scope or None


def row_scope_text(scope: dict | None) -> str:
    return "\n".join(f"{column}={','.join(str(v) for v in values)}" for column, values in (scope or {}).items())


def page_links(page: dict, query: dict, size: int) -> dict:
    """The query strings of the newer and older pages of a list shown `size` records at a time (None at an end)."""
    base = {k: v for k, v in query.items() if k != "offset"}
    offset, total = page["offset"], page["total"]
    return {
        "newer": {**base, "offset": max(offset - size, 0)} if offset > 0 else None,
        "older": {**base, "offset": offset + size} if offset + size < total else None,
    }
