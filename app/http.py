"""Request parsing shared by every blueprint."""

from collections.abc import Callable
from typing import Any

from flask import request
from marshmallow import Schema

from app.errors import APIError, _flatten


def json_body() -> dict:
    """The request's JSON object; 400 when the body is missing, malformed or not an object."""
    if not request.is_json:
        raise APIError(415, "unsupported_media_type", "send a JSON body with Content-Type: application/json")
    data = request.get_json(silent=True)
    if data is None:
        raise APIError(400, "bad_request", "request body is not valid JSON")
    if not isinstance(data, dict):
        raise APIError(400, "bad_request", "request body must be a JSON object")
    return data


def load_reporting_all(schema: Schema, body: dict, checks: dict[str, Callable[[Any], object]]) -> dict:
    """`schema.load(body)`, except that a body with several mistakes reports every one of them: the schema's field
    errors together with those of `checks` (field -> a callable raising a 400/422 APIError with `details.fields`),
    which run on their field whatever the schema thought of the others. One mistake keeps its own answer."""
    errors = _flatten(schema.validate(body))
    for field, check in checks.items():
        if field not in body or any(name == field or name.startswith((f"{field}.", f"{field}[")) for name in errors):
            continue
        try:
            check(body[field])
        except APIError as err:
            if not errors or err.status not in (400, 422) or not isinstance(err.details.get("fields"), dict):
                raise
            errors.update(err.details["fields"])
    if errors:
        first, messages = next(iter(errors.items()))
        raise APIError(422, "validation_error", f"{first}: {messages[0]}", {"fields": errors})
    return schema.load(body)
