"""The audit trail of serving calls: buffered in a capped Redis list so a request never waits on a database write,
flushed into the audit_logs table by a worker, and listed back."""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import redis
from sqlalchemy import Select, func, select, text
from sqlalchemy import null as sa_null
from sqlalchemy.exc import OperationalError

from app.db import AuditLog, DeletedAsset, PublishedAsset
from app.extensions import db, redis_store
from app.keys.auth_failures import flush_auth_failures
from app.keys.service import store_last_used
from app.keys.usage import LAST_USED_KEY, UsageTracker
from app.namespace import run_script
from app.serving.audit_outbox import AUDIT_KEY, AUDIT_MAX_LEN, FLUSH_THROTTLE_KEY, audit_outbox

log = logging.getLogger(__name__)


# A served call's bookkeeping in one round trip (`AuditBuffer.record_call`): its audit record (the list capped at
# ARGV[2]), the key's last use, a result-cache miss's new entry (KEYS[4], ARGV[5..6]) and the flush flag.
_RECORD_CALL = """
local length = redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
if #KEYS > 3 then redis.call('SET', KEYS[4], ARGV[5], 'EX', ARGV[6]) end
local flush = redis.call('SET', KEYS[3], 1, 'NX', 'EX', 2)
return {length, flush and 1 or 0}
"""


def audit_entry(
    *,
    asset_id: int | None,
    endpoint_id: str | None,
    key_id: int | None,
    status: int,
    latency_ms: float,
    method: str,
    org_id: int | None = None,
    project_id: int | None = None,
    model_id: int | None = None,
    error_code: str | None = None,
    ts: datetime | None = None,
    context: dict | None = None,
    version: int | None = None,
    shadow: bool = False,
    call_id: str | None = None,
    summary: dict | None = None,
    request_id: str | None = None,
    client_ip: str | None = None,
    user_agent: str | None = None,
    timing: dict | None = None,
    payload: tuple[str | None, str | None] | None = None,
) -> dict:
    """One audit record with every field the persisting task expects; `ts` defaults to now (ISO 8601 UTC).
    `payload`: (request, answer) as clipped JSON text, for endpoints that log payloads."""
    when = (ts or datetime.now(UTC)).astimezone(UTC)
    entry = {
        "ts": when.isoformat().replace("+00:00", "Z"),
        "asset_id": asset_id,
        "endpoint_id": endpoint_id,
        "key_id": key_id,
        "status": status,
        "latency_ms": round(latency_ms, 3),
        "model_id": model_id,
        "org_id": org_id,
        "project_id": project_id,
        "method": method,
        "error_code": error_code,
    }
    if context is not None:
        entry["context"] = context  # a model call's caller context (at most 4 KB)
    if shadow:
        entry["shadow"] = True
    for name, value in (
        ("version", version),
        ("call_id", call_id),  # pairs a call with its shadow run
        ("summary", summary),
        ("request_id", request_id),
        ("client_ip", client_ip),
        ("user_agent", user_agent),
        ("timing", timing),
    ):
        if value is not None:
            entry[name] = value
    if payload is not None:
        entry["request_payload"], entry["response_payload"] = payload
    return entry


TRUNCATED_MARK = "...[truncated]"


def clipped_json(value: object, max_bytes: int) -> str | None:
    """`value` as compact JSON text, cut to at most `max_bytes` bytes (ending in TRUNCATED_MARK when cut)."""
    if value is None:
        return None
    text = json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False)
    raw = text.encode()
    if len(raw) <= max_bytes:
        return text
    room = max(0, max_bytes - len(TRUNCATED_MARK))
    return raw[:room].decode(errors="ignore") + TRUNCATED_MARK


class AuditBuffer:
    """`record` appends in one round trip and never raises; a worker `drain`s the oldest records in batches.

    The list is capped at `max_len`: if the worker falls behind, the oldest records are trimmed so Redis memory
    stays bounded. Records lost that way or to an unreachable Redis are counted in `dropped`.
    """

    def __init__(self, redis_client: redis.Redis, key: str = AUDIT_KEY, max_len: int = AUDIT_MAX_LEN):
        if max_len < 1:
            raise ValueError("max_len must be at least 1")
        self.redis = redis_client
        self.key = key
        self.max_len = max_len
        self._dropped = 0
        self._lock = threading.Lock()

    @property
    def dropped(self) -> int:
        """Records this process lost since start: Redis errors plus the oldest ones trimmed by the cap."""
        return self._dropped

    def record(self, entry: dict, with_commands: Callable[[redis.client.Pipeline], None] | None = None) -> list:
        """Append `entry` (see `audit_entry`) at the tail; fills `ts` when missing.

        `with_commands(pipe)` may queue more commands on the same MULTI, so a served call pays one round trip for
        all its bookkeeping; their replies are returned, or [] when Redis could not be reached.
        """
        if "ts" not in entry:
            entry = {**entry, "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
        try:
            # MULTI/EXEC in one round trip: push and trim together, so the cap holds under concurrent writers.
            pipe = self.redis.pipeline(transaction=True)
            pipe.rpush(self.key, json.dumps(entry, default=str, separators=(",", ":")))
            pipe.ltrim(self.key, -self.max_len, -1)
            if with_commands is not None:
                with_commands(pipe)
            length, _, *replies = pipe.execute()
        except (redis.RedisError, OSError, TypeError, ValueError) as exc:
            self._count_drops(1)
            log.debug("audit record dropped: %s", exc)
            return []
        if length > self.max_len:
            self._count_drops(length - self.max_len)
        return replies

    def record_call(self, entry: dict, key_id: int, cache_entry: tuple[str, str, int] | None = None) -> bool:
        """A served call's bookkeeping in one script run: its record (see `record`), the key's last use, a
        result-cache miss's `(name, text, ttl)` entry, and the flush flag; True when the flag was free (schedule a
        flush). Never raises: a record Redis could not take is counted in `dropped`."""
        if "ts" not in entry:
            entry = {**entry, "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
        keys = [self.key, LAST_USED_KEY, FLUSH_THROTTLE_KEY]
        args = [json.dumps(entry, default=str, separators=(",", ":")), self.max_len, str(key_id), f"{time.time():.3f}"]
        if cache_entry is not None:
            keys.append(cache_entry[0])
            args += [cache_entry[1], int(cache_entry[2])]
        try:
            length, flush = run_script(self.redis, self.redis.register_script(_RECORD_CALL), keys, args)
        except (redis.RedisError, OSError, TypeError, ValueError) as exc:
            self._count_drops(1)
            log.debug("audit record dropped: %s", exc)
            return False
        if length > self.max_len:
            self._count_drops(length - self.max_len)
        return bool(flush)

    def drain(self, batch: int = 1000) -> list[dict]:
        """Remove and return up to `batch` of the oldest records, oldest first; raises if Redis is down."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        raw = self.redis.lpop(self.key, batch) or []  # LPOP with a count (Redis >= 6.2) is atomic
        out = []
        for item in raw:
            try:
                out.append(json.loads(item))
            except ValueError:
                log.warning("skipping malformed audit record %r", item[:200])
        return out

    def put_back(self, entries: list[dict]) -> None:
        """Return drained records to the head of the buffer, oldest first, for the next flush (one that could not
        write them to the database must not lose them); raises if Redis is down."""
        if entries:
            self.redis.lpush(self.key, *(json.dumps(e, default=str, separators=(",", ":")) for e in reversed(entries)))

    def _count_drops(self, n: int) -> None:
        with self._lock:
            self._dropped += n


def flush_serving_records(batch: int = 1000) -> int:
    """Move buffered audit records and last-used times into the database; returns how many records. This process's
    own records still on their way to Redis are sent first."""
    audit_outbox().flush()
    client = redis_store.get()
    buffer = AuditBuffer(client)
    written = 0
    while True:
        entries = buffer.drain(batch)
        if not entries:
            break
        rows = [_audit_row(e) for e in entries]
        try:
            _hold_write_lock()
            rows = _not_before_their_asset(rows)
            if rows:
                db.session.execute(AuditLog.__table__.insert(), rows)
            db.session.commit()  # also when the whole batch was left out: it ends the transaction and its lock
        except OperationalError:
            # The database could not take the batch now (locked, restarting, connection lost): the records wait in
            # Redis for the next flush. Any other error is the records' own and would fail every later flush too.
            db.session.rollback()
            buffer.put_back(entries)
            raise
        written += len(rows)
    store_last_used(UsageTracker(client).drain())
    flush_auth_failures()
    return written


def _hold_write_lock() -> None:
    """On SQLite, take the database's write lock before reading which assets the records belong to. Its driver starts
    a transaction only at the first write, so the check would run outside the insert's transaction: an asset deleted
    in between (its rows cleared, its id handed out again) would receive the records the check let through."""
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.execute(text("BEGIN IMMEDIATE"))


def _not_before_their_asset(rows: list[dict]) -> list[dict]:
    """The records that belong to the asset now holding their asset id: a live asset created no later than the
    record, or a deleted asset's tombstone (its log stays readable). Left out: a record of a deleted asset that reaches
    the database after a newer asset took the same id (SQLite hands out the highest id again), and a record whose id
    names no asset at all (its tombstone went with its organization), which the next asset given that id would
    otherwise inherit. Either must never show in another asset's log."""
    ids = {row["asset_id"] for row in rows}
    created = {
        asset_id: when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when
        for asset_id, when in db.session.execute(
            select(PublishedAsset.id, PublishedAsset.created_at).where(PublishedAsset.id.in_(ids))
        )
    }
    unknown = ids - created.keys()
    deleted = set(db.session.scalars(select(DeletedAsset.id).where(DeletedAsset.id.in_(unknown)))) if unknown else set()
    kept = [
        row
        for row in rows
        if row["asset_id"] in deleted or (row["asset_id"] in created and row["created_at"] >= created[row["asset_id"]])
    ]
    if len(kept) < len(rows):
        log.info(
            "%d audit records left out: their asset id names a newer asset, or no asset at all", len(rows) - len(kept)
        )
    return kept


def _audit_row(entry: dict) -> dict:
    ts = datetime.fromisoformat(entry["ts"].replace("Z", "+00:00"))
    return {
        "created_at": ts.replace(tzinfo=None),
        "org_id": entry.get("org_id"),
        "project_id": entry.get("project_id"),
        "asset_id": entry["asset_id"],
        "endpoint_id": entry.get("endpoint_id"),
        "key_id": entry.get("key_id"),
        "method": entry.get("method") or "",
        "status": entry["status"],
        "latency_ms": entry["latency_ms"],
        "model_id": entry.get("model_id"),
        "error_code": entry.get("error_code"),
        "context": entry.get("context"),
        "version": entry.get("version"),
        "shadow": bool(entry.get("shadow")),
        "call_id": entry.get("call_id"),
        "summary": entry.get("summary"),
        "request_id": _clip(entry.get("request_id"), 64),
        "client_ip": _clip(entry.get("client_ip"), 64),
        "user_agent": _clip(entry.get("user_agent"), 256),
        "timing": entry.get("timing"),
        "request_payload": entry.get("request_payload"),
        "response_payload": entry.get("response_payload"),
    }


def _clip(value: object, size: int) -> str | None:
    return None if value is None else str(value)[:size]


def filtered_logs(asset: PublishedAsset, filters: dict) -> Select:
    """The asset's audit records matching the log filters (endpoint, key, status, since, until, errors only)."""
    stmt = select(AuditLog).where(AuditLog.asset_id == asset.id)
    for name in ("endpoint_id", "key_id", "status", "version", "shadow"):
        if filters.get(name) is not None:
            stmt = stmt.where(getattr(AuditLog, name) == filters[name])
    if filters.get("since") is not None:
        stmt = stmt.where(AuditLog.created_at >= filters["since"])
    if filters.get("until") is not None:
        stmt = stmt.where(AuditLog.created_at < filters["until"])
    if filters.get("errors_only"):
        stmt = stmt.where(AuditLog.status >= 400)
    return stmt


PAYLOAD_FIELDS = ("request_payload", "response_payload")


def list_logs(asset: PublishedAsset, filters: dict, payloads: bool = True) -> dict:
    """A page of the log. `payloads=False` leaves out what `log: "payload"` endpoints kept: the answers as their key
    saw them, which may hold values the reader's role sees masked (see `payloads_visible`)."""
    stmt = filtered_logs(asset, filters)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = list(
        db.session.scalars(
            stmt.order_by(AuditLog.created_at.desc(), AuditLog.id.desc())
            .limit(filters["limit"])
            .offset(filters["offset"])
        )
    )
    items = rows if payloads else [_without_payloads(row) for row in rows]
    return {"items": items, "total": total, "limit": filters["limit"], "offset": filters["offset"]}


def _without_payloads(row: AuditLog) -> dict:
    record = {column.key: getattr(row, column.key) for column in AuditLog.__table__.columns}
    return {**record, **dict.fromkeys(PAYLOAD_FIELDS)}


EXPORT_FIELDS = (
    "id",
    "created_at",
    "endpoint_id",
    "key_id",
    "method",
    "status",
    "latency_ms",
    "version",
    "shadow",
    "call_id",
    "model_id",
    "error_code",
    "request_id",
    "client_ip",
    "user_agent",
    "context",
    "timing",
    "request_payload",
    "response_payload",
)
EXPORT_BATCH = 1000


def export_logs(asset: PublishedAsset, filters: dict, fmt: str, payloads: bool = True) -> Iterator[str]:
    """The service's audit log, oldest first, as JSON lines or CSV text chunks; read through the database cursor a
    batch at a time (`yield_per`, a server-side cursor on PostgreSQL), so memory stays flat whatever the size.
    `payloads=False`: the payload fields are empty (see `list_logs`)."""
    table = AuditLog.__table__
    stmt = select(
        *(table.c[name] if payloads or name not in PAYLOAD_FIELDS else sa_null().label(name) for name in EXPORT_FIELDS)
    ).where(table.c.asset_id == asset.id)
    if filters.get("endpoint_id") is not None:
        stmt = stmt.where(table.c.endpoint_id == filters["endpoint_id"])
    if filters.get("since") is not None:
        stmt = stmt.where(table.c.created_at >= filters["since"])
    if filters.get("until") is not None:
        stmt = stmt.where(table.c.created_at < filters["until"])
    stmt = stmt.order_by(table.c.created_at, table.c.id).execution_options(yield_per=EXPORT_BATCH)
    result = db.session.execute(stmt)
    try:
        if fmt == "csv":
            yield _csv_line(EXPORT_FIELDS)
        for partition in result.partitions():
            lines = []
            for row in partition:
                record = {name: _exported(value) for name, value in zip(EXPORT_FIELDS, row, strict=True)}
                if fmt == "csv":
                    lines.append(_csv_line([_csv_cell(record[name]) for name in EXPORT_FIELDS]))
                else:
                    lines.append(json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n")
            yield "".join(lines)
    finally:
        result.close()


def _exported(value):
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat() + "Z"
    return value


# A cell starting with one of these is a formula to a spreadsheet; callers control some cells (user agent, request
# id, context), so such text is exported with a leading apostrophe (OWASP's CSV injection advice).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value) -> object:
    if isinstance(value, dict | list):
        value = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _csv_line(values) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()
