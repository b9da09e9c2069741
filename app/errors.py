"""The one JSON error envelope: APIError and every handler that turns a failure into it."""

from __future__ import annotations

import logging
import uuid

from flask import Flask, current_app, g, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge

log = logging.getLogger(__name__)


class APIError(Exception):
    """An error a client should see: HTTP status, snake_case code, a human sentence and details."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    def to_dict(self) -> dict:
        """Plain JSON that crosses a process boundary (a worker's answer): {status, code, message, details}."""
        return {"status": self.status, "code": self.code, "message": self.message, "details": self.details}

    @classmethod
    def from_dict(cls, data: dict) -> APIError:
        """The error `to_dict` wrote, raised again on this side."""
        return cls(data["status"], data["code"], data["message"], data.get("details"))

    def body(self) -> dict:
        """The envelope's body: {"error": {code, message, details}}."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def not_found(what: str) -> APIError:
    return APIError(404, "not_found", f"{what} not found")


def conflict(message: str, details: dict | None = None, headers: dict | None = None) -> APIError:
    return APIError(409, "conflict", message, details, headers)


def forbidden(message: str, details: dict | None = None, headers: dict | None = None) -> APIError:
    return APIError(403, "permission_denied", message, details, headers)


def unauthorized(message: str, details: dict | None = None, headers: dict | None = None) -> APIError:
    return APIError(401, "unauthorized", message, details, headers)


def unavailable(code: str, message: str, details: dict | None = None, headers: dict | None = None) -> APIError:
    """503: a part Apiary needs (a worker, the broker, the sandbox) is not there now; `code` says which."""
    return APIError(503, code, message, details, headers)


def overloaded(message: str, reason: str, retry_after_s: int = 1) -> APIError:
    """503 `overloaded`, at once: the capacity a call needs is taken (`reason`: `full` for an endpoint's pool,
    `queue_timeout` for a call that waited its pool's queue_timeout_ms, `fair_share` for an organization's share)."""
    return unavailable("overloaded", message, {"reason": reason}, {"Retry-After": retry_after_s})


def invalid(field: str, message: str, status: int = 422) -> APIError:
    """A bad input on one field; `field` is a dotted path such as `config.endpoints[1].model_id`."""
    return APIError(status, "validation_error", f"{field}: {message}", {"fields": {field: [message]}})


def envelope(status: int, code: str, message: str, details: dict | None = None, headers: dict | None = None):
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = str(value)
    return response


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _flatten(messages, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages -> {"a.b[0].c": [..]} so clients get one flat field path each."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            if isinstance(key, int):
                path = f"{prefix}[{key}]"
            elif key == "_schema":
                path = prefix or "body"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            out.update(_flatten(value, path))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out[prefix or "body"] = list(messages)
    else:
        out[prefix or "body"] = [str(messages)]
    return out


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(APIError)
    def _api_error(err: APIError):
        return envelope(err.status, err.code, err.message, err.details, err.headers)

    @app.errorhandler(ValidationError)
    def _validation_error(err: ValidationError):
        fields = _flatten(err.messages)
        first = next(iter(fields.items()))
        return envelope(422, "validation_error", f"{first[0]}: {first[1][0]}", {"fields": fields})

    @app.errorhandler(BadRequest)
    def _bad_request(err: BadRequest):
        # Flask raises BadRequest for malformed JSON bodies.
        message = "request body is not valid JSON" if request.is_json else (err.description or "bad request")
        return envelope(400, "bad_request", message)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(err: RequestEntityTooLarge):
        limit = request.max_content_length
        message = f"request body is larger than the limit of {limit} bytes" if limit else "request body is too large"
        return envelope(413, "payload_too_large", message, {"limit_bytes": limit} if limit else None)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        status = err.code or 500
        headers = {}
        if status == 405 and err.valid_methods:
            headers["Allow"] = ", ".join(err.valid_methods)
        return envelope(status, _HTTP_CODES.get(status, "http_error"), err.description or err.name, None, headers)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        request_id = getattr(g, "request_id", None) or uuid.uuid4().hex
        log.exception("unhandled error (request_id=%s) on %s %s", request_id, request.method, request.path)
        try:
            # Through the app's registry, not app.extensions: the extensions import the warehouse engine,
            # which raises APIError, so errors.py stays below both.
            current_app.extensions["sqlalchemy"].session.rollback()
        except Exception:  # the original error is what matters here
            log.exception("rollback after unhandled error failed")
        return envelope(500, "internal_error", "an internal error occurred", {"request_id": request_id})
