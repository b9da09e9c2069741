"""A freshly minted key's secret kept in Redis for one read by the service page the mint redirects to."""

from __future__ import annotations

import json
import logging
import secrets

import redis

from app.extensions import redis_store

log = logging.getLogger(__name__)

REVEAL_KEY = "apiary:console_reveal:{user_id}:{token}"  # per user: another user's look cannot burn it
REVEAL_TTL_S = 120


def stash_reveal(user_id: int, asset_id: int, name: str, secret: str) -> str | None:
    """Keep a freshly minted secret for one read by the page the mint redirects to; the token, or None."""
    token = secrets.token_urlsafe(24)
    value = json.dumps({"user_id": user_id, "asset_id": asset_id, "name": name, "secret": secret})
    try:
        redis_store.get().set(REVEAL_KEY.format(user_id=user_id, token=token), value, ex=REVEAL_TTL_S)
    except redis.RedisError:
        log.warning("Redis unavailable: showing the new key in the mint response")
        return None
    return token


def take_reveal(token: str, user_id: int, asset_id: int) -> dict | None:
    """The stashed secret, at most once, and only to the user who minted it on this service's page."""
    if not token or len(token) > 64:
        return None
    try:
        name = REVEAL_KEY.format(user_id=user_id, token=token)
        with redis_store.get().pipeline(transaction=True) as pipe:  # GET and DEL at once (GETDEL needs Redis 6.2)
            raw, _deleted = pipe.get(name).delete(name).execute()
    except redis.RedisError:
        return None
    stashed = json.loads(raw) if raw else None
    if not stashed or stashed.get("user_id") != user_id or stashed.get("asset_id") != asset_id:
        return None
    return {"name": stashed["name"], "secret": stashed["secret"]}
