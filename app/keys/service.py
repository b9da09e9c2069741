"""Data-API keys: mint (secret shown once), list without secrets, revoke, and resolve a presented key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Row, bindparam, or_, select, update

from app.auth.permissions import has_permission
from app.datasets.policy import preview_policy
from app.db import ApiKey, PublishedAsset, User
from app.db.columns import utcnow
from app.errors import APIError, invalid, not_found
from app.extensions import db
from app.publishing.endpoint_config import endpoint_dicts
from app.query.masking import sensitivity_rank
from app.query.policy import KeyPolicy
from app.secrets import generate_api_key, hash_api_key, looks_like_api_key
from app.serving.state import bump_serving_generation as bump


def _endpoint_ids(asset: PublishedAsset) -> set[str]:
    return {ep.get("id") for ep in endpoint_dicts(asset.config)}


def check_key_fields(user: User, asset: PublishedAsset, data: dict) -> dict:
    """Check a key's policy fields (those present in `data`) for minting or updating a key; returns them normalised.

    Shared by mint and update, so the rules below hold for both:
    - masking_level, sensitivity_max, allowed_columns and row_scope are validated as serving will read them (422);
    - `allowed_endpoints`: null means every endpoint; an empty list is a 422 (it would read as "none" to a person
      and as "all" to the old serving check), and each id must be an endpoint of the service;
    - a key above the minter's own role ceiling needs org.admin (403 naming the field): `masking_level: unmasked`,
      or a `sensitivity_max` above what the minter's role sees in previews (designer: high, viewer: medium).
    """
    out: dict = {}
    policy = KeyPolicy.from_key_fields(
        data.get("masking_level"), data.get("allowed_columns"), data.get("sensitivity_max"), data.get("row_scope")
    )
    if "masking_level" in data:
        out["masking_level"] = policy.masking_level
    if "sensitivity_max" in data:
        out["sensitivity_max"] = policy.sensitivity_max
    if "allowed_columns" in data:
        out["allowed_columns"] = list(policy.allowed_columns)
    if "row_scope" in data:
        out["row_scope"] = {col: list(values) for col, values in policy.row_scope} or None
    if not has_permission(user, "org.admin"):
        ceiling = preview_policy(user.role)
        if out.get("masking_level") == "unmasked" and ceiling.masking_level != "unmasked":
            raise _above_ceiling("masking_level", "only an organization admin may mint or update an unmasked key")
        if "sensitivity_max" in out and sensitivity_rank(out["sensitivity_max"]) > sensitivity_rank(
            ceiling.sensitivity_max
        ):
            raise _above_ceiling(
                "sensitivity_max",
                f"your role ({user.role}) sees at most {ceiling.sensitivity_max} columns; "
                "only an organization admin may mint or update a key above that",
            )
    if "allowed_endpoints" in data:
        allowed_endpoints = data["allowed_endpoints"]
        if allowed_endpoints is not None:
            if not isinstance(allowed_endpoints, list) or not allowed_endpoints:
                raise invalid(
                    "allowed_endpoints", "must name at least one endpoint; send null for every endpoint of the service"
                )
            if asset.asset_type != "api_service":
                raise invalid("allowed_endpoints", "only an api_service has endpoints")
            known = _endpoint_ids(asset)
            for i, endpoint_id in enumerate(allowed_endpoints):
                if endpoint_id not in known:
                    raise invalid(f"allowed_endpoints[{i}]", f"the service has no endpoint {endpoint_id!r}")
            allowed_endpoints = list(dict.fromkeys(allowed_endpoints))
        out["allowed_endpoints"] = allowed_endpoints
    return out


def _above_ceiling(field: str, message: str) -> APIError:
    return APIError(403, "permission_denied", f"{field}: {message}", {"fields": {field: [message]}})


KEY_POLICY_FIELDS = ("masking_level", "sensitivity_max", "allowed_columns", "allowed_endpoints", "row_scope")


def validated_key_settings(user: User, asset: PublishedAsset, data: dict) -> dict:
    """Every policy field of a key, checked by `check_key_fields` as serving will read them; minting and updating
    both go through here, so a key can never be updated into a shape it could not have been minted with."""
    return check_key_fields(user, asset, {field: data.get(field) for field in KEY_POLICY_FIELDS})


def _expires_at(expires_days: int | None):
    return utcnow() + timedelta(days=expires_days) if expires_days else None


def mint_api_key(user: User, asset: PublishedAsset, data: dict) -> tuple[ApiKey, str]:
    """A new key for `asset`; returns the row and the secret, which is never stored or shown again."""
    settings = validated_key_settings(user, asset, data)
    minted = generate_api_key()
    key = ApiKey(
        asset_id=asset.id,
        org_id=asset.org_id,
        name=data["name"],
        prefix=minted.prefix,
        key_hash=minted.key_hash,
        rate_limit=data["rate_limit"],
        expires_at=_expires_at(data.get("expires_days")),
        created_by=user.id,
        **settings,
    )
    db.session.add(key)
    db.session.commit()
    return key, minted.key


def get_api_key(asset: PublishedAsset, key_id: int) -> ApiKey:
    key = db.session.get(ApiKey, key_id)
    if key is None or key.asset_id != asset.id:
        raise not_found("api key")
    return key


def update_api_key(user: User, asset: PublishedAsset, key_id: int, data: dict) -> ApiKey:
    """Change any mint field of a key (`data` holds only the fields sent, loaded by the mint schema).

    Serving caches keys per process; the serving generation bumped here makes every server drop them, so the
    change holds from the next call on every server; cached results are keyed by the policy's fingerprint, so an answer made under the old policy is never
    served under the new one. `expires_days` counts from now (0 or null: never expires)."""
    key = get_api_key(asset, key_id)
    if not key.is_active:
        raise APIError(409, "conflict", "this API key is revoked; mint a new one")
    merged = {field: getattr(key, field) for field in KEY_POLICY_FIELDS}
    merged.update({field: data[field] for field in KEY_POLICY_FIELDS if field in data})
    if "allowed_endpoints" not in data:
        # Kept as stored: an endpoint since removed from the service must not block renaming the key.
        merged["allowed_endpoints"] = None
    settings = validated_key_settings(user, asset, merged)
    if "allowed_endpoints" not in data:
        del settings["allowed_endpoints"]
    for field, value in settings.items():
        setattr(key, field, value)
    if "name" in data:
        key.name = data["name"]
    if "rate_limit" in data:
        key.rate_limit = data["rate_limit"]
    if "expires_days" in data:
        key.expires_at = _expires_at(data["expires_days"])
    db.session.commit()
    bump_serving_generation()
    return key


MAX_GRACE_SECONDS = 86_400


def rotate_api_key(asset: PublishedAsset, key_id: int, grace_seconds: int = 0) -> tuple[ApiKey, str]:
    """A new secret for the key (returned this once); the old one keeps working `grace_seconds` more (0: stops at
    once). Rotating again during a grace period ends the older secret's grace at once: one previous secret at most."""
    if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
        raise invalid("grace_seconds", f"must be between 0 and {MAX_GRACE_SECONDS}")
    key = get_api_key(asset, key_id)
    if not key.is_active:
        raise APIError(409, "conflict", "this API key is revoked; mint a new one")
    minted = generate_api_key()
    now = utcnow()
    if grace_seconds:
        key.previous_key_hash, key.previous_key_expires_at = key.key_hash, now + timedelta(seconds=grace_seconds)
    else:
        key.previous_key_hash, key.previous_key_expires_at = None, None
    key.key_hash, key.prefix, key.rotated_at = minted.key_hash, minted.prefix, now
    db.session.commit()
    bump_serving_generation()
    return key, minted.key


def end_rotation_grace(key: ApiKey) -> None:
    """Stop the previous secret now (what an expired grace period does; operators and tests use it)."""
    key.previous_key_hash, key.previous_key_expires_at = None, None
    db.session.commit()
    bump_serving_generation()


def list_api_keys(asset: PublishedAsset) -> list[ApiKey]:
    return list(db.session.scalars(select(ApiKey).where(ApiKey.asset_id == asset.id).order_by(ApiKey.id)))


def revoke_api_key(asset: PublishedAsset, key_id: int) -> None:
    key = get_api_key(asset, key_id)
    key.is_active = False
    key.revoked_at = key.revoked_at or utcnow()
    db.session.commit()
    bump_serving_generation()


def bump_serving_generation() -> None:
    """Every server drops its cached keys, configs and queries on its next keyed call (see app/serving/state.py).
    Call it after committing any change to a key's serving fields (revoke, update, rotate)."""
    bump()


_KEYS = ApiKey.__table__
# Serving reads a key on every call: one statement built once, the fields serving needs, no ORM entity to load.
_SERVING_KEY = select(
    _KEYS.c.id,
    _KEYS.c.asset_id,
    _KEYS.c.is_active,
    _KEYS.c.expires_at,
    _KEYS.c.rate_limit,
    _KEYS.c.allowed_endpoints,
    _KEYS.c.masking_level,
    _KEYS.c.allowed_columns,
    _KEYS.c.sensitivity_max,
    _KEYS.c.row_scope,
    _KEYS.c.key_hash,
    _KEYS.c.previous_key_expires_at,
).where(or_(_KEYS.c.key_hash == bindparam("key_hash"), _KEYS.c.previous_key_hash == bindparam("key_hash")))


def serving_key_row(key_hash: str) -> Row | None:
    """The serving fields of the key with this hash, from the database."""
    return db.session.execute(_SERVING_KEY, {"key_hash": key_hash}).first()


def authenticate_api_key(presented: str | None, lookup: Callable[[str], Row | None] = serving_key_row) -> Row:
    """The key named by an X-API-Key value (a row of its serving fields): 401 when unknown, 403 when revoked or
    expired.

    `lookup(key_hash)` reads the row: serving passes its per-process cache, whose entries are dropped on every
    server once the serving generation moves (a revocation bumps it), so a revocation is effective on the next
    request everywhere.
    """
    if not presented:
        raise APIError(401, "unauthorized", "missing X-API-Key header")
    if not looks_like_api_key(presented):
        raise APIError(401, "unauthorized", "invalid API key")
    presented_hash = hash_api_key(presented)
    key = lookup(presented_hash)
    if key is None:
        raise APIError(401, "unauthorized", "invalid API key")
    if key.key_hash != presented_hash and (
        key.previous_key_expires_at is None or key.previous_key_expires_at <= utcnow()
    ):
        # The secret a rotation replaced, past its grace period.
        raise APIError(401, "unauthorized", "invalid API key")
    if not key.is_active:
        raise APIError(403, "key_revoked", "this API key has been revoked")
    if key.expires_at is not None and key.expires_at <= utcnow():
        raise APIError(403, "key_expired", "this API key has expired")
    return key


def key_policy(key: ApiKey | Row) -> KeyPolicy:
    return KeyPolicy.from_key_fields(key.masking_level, key.allowed_columns, key.sensitivity_max, key.row_scope)


def store_last_used(times: dict[int, object]) -> int:
    """Write drained last-used times in one batch; returns how many keys were updated."""
    if not times:
        return 0
    table = ApiKey.__table__
    db.session.execute(
        update(table).where(table.c.id == bindparam("key_id")).values(last_used_at=bindparam("ts")),
        [{"key_id": key_id, "ts": ts} for key_id, ts in times.items()],
    )
    db.session.commit()
    return len(times)
