"""Refused API keys: recorded without the secret (its public prefix only), bounded whatever the attack rate.

A refusal costs one Redis round trip and never a database write. Attempts are aggregated per minute by client
address, key prefix, route and reason: the first of each makes a record, the rest only count in it; at most
AUTH_FAILURE_MAX_RECORDS_PER_MINUTE records are made per minute for the whole installation, attempts beyond that
counted in one `suppressed` record of the minute. A worker moves the records into `auth_failures` and keeps their
counts up to date while their minute is open; org admins read them at `GET /api/auth/audit`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import UTC, datetime

import redis
from sqlalchemy import func, select, update

from app.db import AuthFailure, PublishedAsset
from app.extensions import db, redis_store
from app.secrets import PREFIX_LENGTH, looks_like_api_key

log = logging.getLogger(__name__)

COUNTS_KEY = "apiary:authfail:counts"  # "<minute>:<digest>" -> attempts seen
ROWS_KEY = "apiary:authfail:rows"  # "<minute>:<digest>" -> auth_failures.id once written
PENDING_KEY = "apiary:authfail:pending"  # records waiting for the flush (one per digest and minute)
MADE_KEY = "apiary:authfail:made:{minute}"  # records made this minute (the cap)
REASONS = ("missing_key", "invalid_key", "key_revoked", "key_expired", "wrong_asset")

# KEYS: counts, made (this minute), pending, flush flag. ARGV: slot, record, cap, suppressed slot, suppressed record.
_RECORD = """
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if n == 1 then
  local made = redis.call('INCR', KEYS[2])
  redis.call('EXPIRE', KEYS[2], 180)
  if made > tonumber(ARGV[3]) then
    redis.call('HDEL', KEYS[1], ARGV[1])
    if redis.call('HINCRBY', KEYS[1], ARGV[4], 1) == 1 then
      redis.call('RPUSH', KEYS[3], ARGV[5])
    end
  else
    redis.call('RPUSH', KEYS[3], ARGV[2])
  end
end
if redis.call('SET', KEYS[4], '1', 'NX', 'EX', 2) then
  return 1
end
return 0
"""


def failure_reason(status: int, code: str, key_known: bool, presented: bool) -> str | None:
    """Why a keyed call was refused at authentication, or None when it was not an authentication refusal."""
    if code == "key_revoked":
        return "key_revoked"
    if code == "key_expired":
        return "key_expired"
    if status == 401:
        return "missing_key" if not presented else "invalid_key"
    if key_known and status in (404, 429):
        return "wrong_asset"  # a valid key used on an asset that is not its own
    return None


def key_prefix_of(presented: str | None) -> str | None:
    """The public prefix of what was presented when it has the shape of a key; never anything of the secret part."""
    if presented and looks_like_api_key(presented):
        return presented[:PREFIX_LENGTH]
    return None


def record_auth_failure(
    *,
    reason: str,
    key_prefix: str | None,
    client_ip: str | None,
    route: str,
    asset_key: str | None,
    key_asset_id: int | None,
    cap: int,
    flush_flag: str,
) -> bool:
    """Count one refusal; returns whether a flush should be scheduled (the flush flag was free). Never raises."""
    now = time.time()
    minute = int(now // 60)
    prefix = key_prefix
    ip = (client_ip or "")[:64]
    digest = hashlib.sha256(f"{ip}\x00{prefix}\x00{route}\x00{reason}".encode()).hexdigest()[:32]
    slot = f"{minute}:{digest}"
    record = {
        "slot": slot,
        "ts": now,
        "reason": reason,
        "key_prefix": prefix,
        "client_ip": ip or None,
        "route": route[:200],
        "asset_key": (asset_key or "")[:100] or None,
        "key_asset_id": key_asset_id,
    }
    suppressed = {**record, "slot": f"{minute}:suppressed", "reason": "suppressed", "key_prefix": None}
    suppressed.update(client_ip=None, asset_key=None, key_asset_id=None, route="*")
    try:
        client = redis_store.get()
        flag = client.eval(
            _RECORD,
            4,
            COUNTS_KEY,
            MADE_KEY.format(minute=minute),
            PENDING_KEY,
            flush_flag,
            slot,
            json.dumps(record, separators=(",", ":")),
            int(cap),
            f"{minute}:suppressed",
            json.dumps(suppressed, separators=(",", ":")),
        )
    except (redis.RedisError, OSError) as exc:
        log.debug("auth failure not recorded: %s", exc)
        return False
    return bool(flag)


def flush_auth_failures(batch: int = 500) -> int:
    """Write pending records to the database and bring the counts of the recent minutes up to date; returns how many
    records were written. Minutes older than the previous one are final and leave Redis."""
    client = redis_store.get()
    rows: dict[str, int] = {k.decode(): int(v) for k, v in (client.hgetall(ROWS_KEY) or {}).items()}
    written = 0
    while True:
        raw = client.lpop(PENDING_KEY, batch) or []
        if not raw:
            break
        records = []
        for item in raw:
            try:
                records.append(json.loads(item))
            except ValueError:
                log.warning("skipping a malformed auth failure record")
        orgs = _targets(
            {r["asset_key"] for r in records if r.get("asset_key")}, {r.get("key_asset_id") for r in records}
        )
        for record in records:
            target = orgs["keys"].get(record.get("asset_key")) or orgs["ids"].get(record.get("key_asset_id"))
            row_id = db.session.execute(
                AuthFailure.__table__.insert().values(
                    created_at=datetime.fromtimestamp(record["ts"], UTC).replace(tzinfo=None),
                    org_id=target[0] if target else None,
                    asset_id=target[1] if target else None,
                    key_prefix=record.get("key_prefix"),
                    client_ip=record.get("client_ip"),
                    route=record["route"],
                    reason=record["reason"],
                    count=1,
                )
            ).inserted_primary_key[0]
            rows[record["slot"]] = row_id
            client.hset(ROWS_KEY, record["slot"], row_id)
        db.session.commit()
        written += len(records)
    counts = {k.decode(): int(v) for k, v in (client.hgetall(COUNTS_KEY) or {}).items()}
    table = AuthFailure.__table__
    closed_before = int(time.time() // 60) - 1
    final = []
    for slot, count in counts.items():
        if slot in rows:
            db.session.execute(update(table).where(table.c.id == rows[slot]).values(count=count))
        if int(slot.split(":", 1)[0]) < closed_before:
            final.append(slot)
    db.session.commit()
    if final:
        client.hdel(COUNTS_KEY, *final)
        client.hdel(ROWS_KEY, *final)
    stale = [slot for slot in rows if slot not in counts]
    if stale:
        client.hdel(ROWS_KEY, *stale)
    return written


def _targets(asset_keys: set[str], asset_ids: set[int | None]) -> dict[str, dict]:
    """(org id, asset id) of the assets named: by asset key (the one attacked) and by id (the key's own)."""
    assets = PublishedAsset.__table__
    by_key: dict = {}
    if asset_keys:
        for row in db.session.execute(
            select(assets.c.asset_key, assets.c.org_id, assets.c.id).where(assets.c.asset_key.in_(asset_keys))
        ):
            by_key[row.asset_key] = (row.org_id, row.id)
    ids = {i for i in asset_ids if isinstance(i, int)}
    by_id: dict = {}
    if ids:
        for row in db.session.execute(select(assets.c.id, assets.c.org_id).where(assets.c.id.in_(ids))):
            by_id[row.id] = (row.org_id, row.id)
    return {"keys": by_key, "ids": by_id}


def list_auth_failures(org_id: int, filters: dict) -> dict:
    stmt = select(AuthFailure).where(AuthFailure.org_id == org_id)
    if filters.get("reason"):
        stmt = stmt.where(AuthFailure.reason == filters["reason"])
    if filters.get("since") is not None:
        stmt = stmt.where(AuthFailure.created_at >= filters["since"])
    if filters.get("until") is not None:
        stmt = stmt.where(AuthFailure.created_at < filters["until"])
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
    attempts = db.session.scalar(select(func.coalesce(func.sum(stmt.subquery().c.count), 0)))
    rows = db.session.scalars(
        stmt.order_by(AuthFailure.created_at.desc(), AuthFailure.id.desc())
        .limit(filters["limit"])
        .offset(filters["offset"])
    )
    return {
        "items": list(rows),
        "total": total,
        "attempts": int(attempts or 0),
        "limit": filters["limit"],
        "offset": filters["offset"],
    }
