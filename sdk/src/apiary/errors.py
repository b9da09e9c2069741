"""Typed exceptions for every error the Apiary API answers, picked by HTTP status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ApiaryError(Exception):
    """An error answered by the server: HTTP `status`, snake_case `code`, a human `message` and `details`."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details: dict[str, Any] = dict(details or {})
        self.headers: dict[str, str] = dict(headers or {})

    def __str__(self) -> str:
        prefix = f"{self.status} {self.code}: " if self.status else ""
        return prefix + self.message


class AuthError(ApiaryError):
    """401 or 403: the credentials are missing, wrong, expired, or not allowed to do this."""


class AuthenticationError(AuthError):
    """401: no credentials, or credentials the server does not accept."""


class PermissionDeniedError(AuthError):
    """403: authenticated, but not allowed (role, inactive or expired key, endpoint outside the key's scope)."""


class NotFoundError(ApiaryError):
    """404: the object does not exist or belongs to another organization."""


class ValidationError(ApiaryError):
    """400, 409 or 422: the request was refused as given; `fields` maps each bad field to its messages."""

    @property
    def fields(self) -> dict[str, list[str]]:
        return dict(self.details.get("fields") or {})


class ConflictError(ValidationError):
    """409: the request clashes with what exists (a duplicate slug, asset key or dataset name)."""


class RateLimitError(ApiaryError):
    """429: the key's per-minute budget is spent; `retry_after` says how many seconds to wait."""

    @property
    def retry_after(self) -> float | None:
        return _seconds(self.headers.get("retry-after"))

    @property
    def limit(self) -> int | None:
        value = self.headers.get("ratelimit-limit")
        return int(value) if value and value.isdigit() else None


class ServerError(ApiaryError):
    """5xx: the server or a worker failed, was unavailable (503) or timed out (504)."""


class TrainingError(ApiaryError):
    """A training run finished as failed; `run_id` names it and `message` says why."""

    def __init__(self, message: str, *, run_id: int | None = None):
        super().__init__(message, code="training_failed", details={"run_id": run_id})
        self.run_id = run_id


class TransportError(ApiaryError):
    """The server could not be reached or the connection broke before an answer came back."""


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def error_for(status: int, body: Any, headers: Mapping[str, str]) -> ApiaryError:
    """The typed exception for a non-2xx answer, from the contract's `{"error": {code, message, details}}`."""
    envelope = body.get("error") if isinstance(body, dict) else None
    if isinstance(envelope, dict):
        code = str(envelope.get("code") or "error")
        message = str(envelope.get("message") or f"HTTP {status}")
        details = envelope.get("details") if isinstance(envelope.get("details"), dict) else {}
    else:
        code, message, details = "http_error", f"HTTP {status}", {}
    lowered = {name.lower(): value for name, value in headers.items()}
    kwargs = {"status": status, "code": code, "details": details, "headers": lowered}
    if status == 401:
        return AuthenticationError(message, **kwargs)
    if status == 403:
        return PermissionDeniedError(message, **kwargs)
    if status == 404:
        return NotFoundError(message, **kwargs)
    if status == 409:
        return ConflictError(message, **kwargs)
    if status in (400, 422):
        return ValidationError(message, **kwargs)
    if status == 429:
        return RateLimitError(message, **kwargs)
    if status >= 500:
        return ServerError(message, **kwargs)
    return ApiaryError(message, **kwargs)
