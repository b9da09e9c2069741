"""Request parsing shared by every blueprint, and the input limits every request is held to."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import FunctionType
from typing import Any

from flask import Flask, current_app, request
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SecureCookieSessionInterface
from marshmallow import Schema

from app.errors import APIError, _flatten

# Only these views take bodies beyond MAX_BODY_BYTES: a CSV upload may be as large as UPLOAD_MAX_BYTES.
UPLOAD_ENDPOINTS = frozenset({"datasets.upload_file", "console.upload_dataset"})


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


def too_deep(max_depth: int) -> APIError:
    message = f"JSON nested deeper than {max_depth} levels"
    return APIError(400, "invalid_json", f"body: {message}", {"fields": {"body": [message]}})


def json_depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether `value` nests lists/objects deeper than `max_depth`; iterative, so any depth is safe to measure."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class DepthLimitedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, except that a body nested past MAX_JSON_DEPTH is a 400 naming the body.

    json.loads itself raises RecursionError near Python's recursion limit (a 500 before), and a body just under it
    would still crash whatever walks it later, so the limit is far below: no real payload nests 100 deep.
    """

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        max_depth = current_app.config.get("MAX_JSON_DEPTH", 100) if current_app else 100
        try:
            value = json.loads(s, **kwargs)
        except RecursionError:
            raise too_deep(max_depth) from None
        if _brackets(s) > max_depth and json_depth_exceeds(value, max_depth):
            raise too_deep(max_depth)
        return value


def _brackets(s: str | bytes) -> int:
    """An upper bound of the nesting depth, cheap enough for every body: the number of opening brackets."""
    if isinstance(s, bytes | bytearray):
        return s.count(b"[") + s.count(b"{")
    return s.count("[") + s.count("{")


class ApiaryFlask(Flask):
    """Flask, remembering which views and hooks are plain functions: Flask asks `inspect.iscoroutinefunction` of the
    view and of every before/after-request hook on every request (about 15 µs of a keyed call's CPU, issue 15)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._sync_functions: set = set()

    def ensure_sync(self, func: Callable) -> Callable:
        if func in self._sync_functions:
            return func
        wrapped = super().ensure_sync(func)
        if wrapped is func and isinstance(func, FunctionType):  # bound methods are new objects on every access
            self._sync_functions.add(func)
        return wrapped


class CookieOnlySessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, except that a request without a session cookie (every API and serving call)
    starts with an empty session without Flask building a cookie signer for it (a keyed call's CPU matters, issue
    15). A request with the cookie is read, verified and saved exactly as Flask does."""

    def open_session(self, app: Flask, request):
        if app.secret_key and (
            "HTTP_COOKIE" not in request.environ or not request.cookies.get(self.get_cookie_name(app))
        ):
            return self.session_class()  # no Cookie header at all (checked first: no cookie parsing), or no session
        return super().open_session(app, request)


def init_input_limits(app: Flask) -> None:
    """MAX_BODY_BYTES for every body (MAX_CONTENT_LENGTH), UPLOAD_MAX_BYTES on the upload views, JSON depth; and
    the session interface above."""
    app.json = DepthLimitedJSONProvider(app)
    app.session_interface = CookieOnlySessionInterface()

    @app.before_request
    def _body_limits():
        if request.endpoint in UPLOAD_ENDPOINTS:
            request.max_content_length = app.config["UPLOAD_MAX_BYTES"] + app.config["MAX_BODY_BYTES"]
        _refuse_oversized_stream()


def _refuse_oversized_stream() -> None:
    """A chunked body (no Content-Length) past the limit: werkzeug stops reading at the limit and hands the view the
    truncated bytes as if they were the whole body. Read it here (at most the limit, the view reads the same cached
    bytes) and try one byte more, which raises 413 once the limit is spent. Multipart uploads are left to stream."""
    if "chunked" not in request.environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return  # most requests: checked first, as it is the cheapest test
    limit = request.max_content_length
    if limit and request.content_length is None and request.mimetype != "multipart/form-data":
        data = request.get_data(cache=True)
        if len(data) >= limit:
            request.stream.read(1)  # the stream is exhausted at the limit: on_exhausted raises RequestEntityTooLarge
