"""A per-session CSRF token, sent back by every form post (field) and console fetch() call (header)."""

from __future__ import annotations

import hmac
import secrets

from flask import request, session

SESSION_KEY = "csrf"
FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"


def csrf_token() -> str:
    """The session's token, made on first use; rotated at login so a token seen before login is worthless."""
    token = session.get(SESSION_KEY)
    if not token:
        token = session[SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def csrf_ok() -> bool:
    """Whether the current request carries the session's token."""
    expected = session.get(SESSION_KEY)
    sent = request.headers.get(HEADER) or request.form.get(FORM_FIELD) or ""
    return bool(expected) and hmac.compare_digest(str(expected), str(sent))
