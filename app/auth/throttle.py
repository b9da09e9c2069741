"""Login and sign-up throttling: per client address and per account, on the shared Redis GCRA limiter.

Each attempt counts, successful or not, before any password hash is computed: a flood costs the attacker a 429,
not the server 64 MiB and ~0.2 s of Argon2 per try. When Redis is down the limiter fails open (logins keep working).
"""

from __future__ import annotations

import hashlib

from flask import current_app, request

from app.errors import APIError
from app.keys.ratelimit import process_rate_limiter


def client_address() -> str:
    """The caller's address: the socket peer, or X-Forwarded-For's as far as TRUSTED_PROXY_COUNT proxies vouch."""
    return request.remote_addr or "unknown"


def _hit(bucket: str, limit: int, what: str) -> None:
    decision = process_rate_limiter().hit(bucket, limit)
    if not decision.allowed:
        wait = decision.retry_after_seconds
        raise APIError(
            429,
            "rate_limited",
            f"too many {what}; try again in {wait} s",
            {"retry_after": wait},
            {**decision.headers(), "Retry-After": str(wait)},
        )


def throttle_login_address() -> None:
    _hit(f"login:ip:{client_address()}", current_app.config["LOGIN_RATE_LIMIT_PER_IP"], "login attempts from here")


def throttle_login_account(account: str) -> None:
    """`account` is a stable name of the account tried (authenticate_user's), hashed so no e-mail sits in Redis."""
    digest = hashlib.sha256(account.encode("utf-8")).hexdigest()[:32]
    _hit(
        f"login:account:{digest}", current_app.config["LOGIN_RATE_LIMIT_PER_ACCOUNT"], "login attempts for this account"
    )


def throttle_signup_address() -> None:
    _hit(f"signup:ip:{client_address()}", current_app.config["SIGNUP_RATE_LIMIT_PER_IP"], "sign-ups from here")
