"""Serving: the contract's order of checks for keyed calls, the Test pane dry run, and the audit trail."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from flask import current_app
from sqlalchemy import Row, bindparam, select
from werkzeug.exceptions import HTTPException

from app.datasets.policy import preview_policy
from app.db import AssetVersion, PublishedAsset, User
from app.errors import APIError, not_found
from app.extensions import db, redis_store
from app.keys.auth_failures import failure_reason, record_auth_failure
from app.keys.ratelimit import Decision, Probe, process_rate_limiter
from app.keys.service import authenticate_api_key, key_policy, serving_key_row
from app.ops.metrics import observe_auth_failure, observe_call
from app.ops.timing import current_timing, server_timing_header, start_timing, timed
from app.publishing.endpoint_config import Endpoint, cache_ttl_of, endpoint_of
from app.publishing.routing import stored_routing
from app.serving.audit import AuditBuffer, audit_entry, clipped_json
from app.serving.audit_outbox import BOOKKEEPING, FLUSH_THROTTLE_KEY, audit_outbox, schedule_flush
from app.serving.cache import result_cache
from app.serving.dispatch import Call, Outcome, prepare_query, request_context, run_data_query, run_endpoint
from app.serving.shadow import ShadowCall
from app.serving.shadow_runs import summarize
from app.serving.state import GENERATION_KEY, begin_keyed_call, end_keyed_call, memo, read_under, serving_state

log = logging.getLogger(__name__)


@dataclass
class Served:
    """What a keyed call resolved to, kept for the audit record even when a later check fails."""

    key: Row | None = None  # serving fields of the key (authenticate_api_key)
    asset: Row | None = None  # the published asset (_published)
    endpoint_id: str | None = None
    started: float = field(default_factory=time.perf_counter)
    audited: bool = False  # the serve script already wrote the audit record (a result-cache hit)
    cache_write: tuple | None = None  # (entry key, body, ttl) sent with the audit record's round trip
    probe_template: str | None = None  # the result cache entry the serve script read (`{G}`/`{R}` unfilled)
    context: dict | None = None  # a model call's caller context, recorded with the call
    model_id: int | None = None  # the model that answered (a model endpoint's call)
    call_id: str | None = None  # set when a shadow run is queued: pairs the two audit records
    summary: dict | None = None  # the answer in brief, for the comparison report
    shadow: ShadowCall | None = None  # run on the shadow version after the response is sent
    cache: str | None = None  # the answer's X-Cache (HIT / MISS), for the metrics
    # Who called, as the web layer saw it (services never read the request themselves).
    request_id: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    asset_key: str | None = None  # as named in the URL (a label only once the call reached a published service)
    route: str = ""  # the route template, for refused-key records
    key_presented: bool = False  # whether an X-API-Key was sent at all
    key_prefix: str | None = None  # its public prefix when it has a key's shape (never the secret)
    log_mode: str = "metadata"  # the endpoint's `log`: "payload" keeps the request and the answer
    # What the caller sent, read only for payload-mode records (most calls never need it).
    read_request_payload: Callable[[], object] | None = None
    response_payload: object = None  # what the caller got back, masked as they saw it (payload mode)

    @property
    def version(self) -> int | None:
        return self.asset.published_version if isinstance(self.asset, ServedAsset) else None

    def version_headers(self) -> dict:
        """`X-Service-Version` once a version was chosen (and `X-Dispatch-Fallback` when hash routing had no key)."""
        if not isinstance(self.asset, ServedAsset):
            return {}
        headers = {"X-Service-Version": str(self.asset.published_version)}
        if self.asset.fallback:
            headers["X-Dispatch-Fallback"] = "random"
        return headers


@contextmanager
def audited_call(method: str, **caller) -> Iterator[Served]:
    """Take a keyed call's audit record, whatever its outcome, and time it.

    The block resolves the call into the `Served` it is given (`serve_endpoint`, `serve_data_api` fill it); `caller`
    are the `Served` fields the web layer knows (request_id, client_ip, user_agent, asset_key, route, key_presented,
    key_prefix, read_request_payload). On the way out the record is buffered with the call's status (200, the
    APIError's or HTTPException's own, else 500), latency and timing; a refused API key is recorded (bounded), the
    call counted in the metrics, and an APIError carries the `Server-Timing` header (`server_timing()` gives it
    for an answer). Exceptions go on to the caller."""
    timing = start_timing()
    served = Served(**caller)
    status, code = 500, "internal_error"
    reading = begin_keyed_call()
    try:
        yield served
        status, code = 200, None
    except APIError as err:
        status, code = err.status, err.code
        served.response_payload = err.body()
        # Which version refused the call (once one was chosen), and where the time went.
        err.headers = {
            **served.version_headers(),
            **(err.headers or {}),
            "Server-Timing": server_timing_header(timing.summary()),
        }
        raise
    except HTTPException as err:  # e.g. 413 from the body limit: audited with its own status
        status, code = err.code or 500, "http_error"
        raise
    finally:
        end_keyed_call(reading)
        latency_ms = timing.total_ms()
        parts = timing.summary(latency_ms)
        record_call(served, method, status, latency_ms, served.model_id if status == 200 else None, code, parts)
        record_refusal(served, status, code)
        reached = served.asset is not None
        observe_call(
            (served.asset_key or "") if reached else "",
            (served.endpoint_id or "") if reached else "",
            status,
            latency_ms / 1000,
            served.cache,
            parts,
        )


def server_timing() -> str:
    """The `Server-Timing` value of the call in progress (see `audited_call`)."""
    timing = current_timing()
    return server_timing_header(timing.summary()) if timing is not None else ""


_ASSETS, _VERSIONS = PublishedAsset.__table__, AssetVersion.__table__
# Every keyed call reads its asset and its routing: one statement, built once; the config of the version chosen for
# the call is a second one (both cached per process, see app/serving/state.py).
_PUBLISHED = select(
    _ASSETS.c.id,
    _ASSETS.c.org_id,
    _ASSETS.c.project_id,
    _ASSETS.c.asset_type,
    _ASSETS.c.status,
    _ASSETS.c.published_version,
    _ASSETS.c.routing,
).where(_ASSETS.c.asset_key == bindparam("asset_key"))
_VERSION_CONFIG = select(_VERSIONS.c.config).where(
    (_VERSIONS.c.asset_id == bindparam("asset_id")) & (_VERSIONS.c.version == bindparam("version"))
)
_VERSION_NUMBERS = select(_VERSIONS.c.version).where(_VERSIONS.c.asset_id == bindparam("asset_id"))


@dataclass(frozen=True)
class Pin:
    """What the caller asked of routing: a dispatch key (hash routing) and a forced version (X-Service-Version)."""

    dispatch_key: str | None = None
    forced_version: str | None = None  # the header as sent; checked against the key and the asset's versions


@dataclass(frozen=True)
class ServedAsset:
    """The published asset as this call serves it: `published_version` and `config` are those of the version the
    routing (or a forced version) chose for the call."""

    id: int
    org_id: int
    project_id: int | None
    asset_type: str
    published_version: int
    config: dict
    shadow_version: int | None
    fallback: bool  # a hash routing without a dispatch key answered by weight instead


def _published(asset_key: str, asset_type: str) -> Row:
    """The published asset (id, org_id, project_id, published_version, routing), cached per process; 404 when it
    is not a published asset of `asset_type`."""
    asset = memo("published", asset_key, lambda: db.session.execute(_PUBLISHED, {"asset_key": asset_key}).first())
    if (
        asset is None
        or asset.asset_type != asset_type
        or asset.status != "published"
        or asset.published_version is None
    ):
        raise not_found("published asset")
    return asset


def _version_config(asset_id: int, version: int) -> dict | None:
    return memo(
        "version",
        (asset_id, version),
        lambda: db.session.scalar(_VERSION_CONFIG, {"asset_id": asset_id, "version": version}),
    )


def _route(key: Row, asset: Row, pin: Pin) -> ServedAsset:
    """The version that serves this call: a forced one (keys with can_force_version: 403 otherwise; 404 unless a
    version of this asset), else the routing's pick."""
    routing = stored_routing(asset.routing, asset.published_version)
    fallback = False
    if pin.forced_version is not None:
        version = _forced(key, asset, pin.forced_version)
    else:
        version, fallback = routing.pick(pin.dispatch_key)
    config = _version_config(asset.id, version)
    if config is None:
        raise not_found(f"version {version}")
    shadow = routing.shadow_version if routing.shadow_version != version else None
    return ServedAsset(asset.id, asset.org_id, asset.project_id, asset.asset_type, version, config, shadow, fallback)


def _forced(key: Row, asset: Row, raw: str) -> int:
    text = raw.strip()
    # The length first: int() of a few thousand digits raises (Python's digit limit) and costs CPU.
    if not (len(text) <= 10 and text.isascii() and text.isdigit()) or not 0 < int(text) <= 2**31 - 1:
        raise APIError(
            400,
            "validation_error",
            "X-Service-Version: expected a version number",
            {"fields": {"X-Service-Version": ["a positive integer"]}},
        )
    if not key.can_force_version:
        raise APIError(403, "version_not_forcible", "this API key may not force a version (can_force_version)")
    version = int(text)
    versions = memo(
        "versions", asset.id, lambda: frozenset(db.session.scalars(_VERSION_NUMBERS, {"asset_id": asset.id}))
    )
    if version not in versions:
        raise not_found(f"version {version}")
    return version


def _spend(key: Row) -> Decision:
    """Count the call against the key's budget; the same round trip reads the serving generation."""
    return process_rate_limiter().hit(f"key:{key.id}", key.rate_limit, GENERATION_KEY)


def _authenticate(api_key: str | None) -> Row:
    return authenticate_api_key(api_key, lambda key_hash: memo("key", key_hash, lambda: serving_key_row(key_hash)))


def _keyed(check: Callable[[], tuple], probe: Callable[[tuple, int | None], Probe]) -> tuple[tuple, Decision, bool]:
    """Run `check()` (the contract's checks up to the rate limit, returning (key, ...)) over this process's cached
    serving data, then spend from the key's budget in the round trip that also reads the serving generation.

    When the generation moved since the cached data was read (anything was published, revoked, changed), or Redis
    cannot say and the cache was last confirmed more than `TRUST_S` ago, the cache is dropped and `check()` runs
    again from the database, so the call is judged on current data; the budget is not spent twice. A call refused
    before the rate limit (401/403/404) confirms the generation with one GET before refusing from cached data.

    `probe(checked, generation)` says what else the same round trip reads and writes (the result cache entry, the
    audit record of a hit). The round trip also carries the audit records of this process's earlier calls
    (app/serving/audit_outbox.py). Returns (checked, decision, whether the probe's answers belong to `checked`).
    """
    state = serving_state()
    start = state.begin()
    read_under(state, start)

    def stale(generation: int | None) -> bool:
        """Whether data read under `start` may be stale, given the generation just read (None: unknown)."""
        if generation is None:
            return not state.trusted() and start is not None
        state.observe(generation)
        return generation != start

    def again() -> tuple:
        read_under(state, state.generation)
        return check()

    try:
        with timed("auth"):
            checked = check()
    except APIError:
        if start is None or not stale(state.read_generation()):
            raise
        with timed("auth"):
            checked = again()
    key = checked[0]
    with timed("cache"):
        probed = probe(checked, start)
    outbox = audit_outbox()
    records = outbox.take()
    with timed("ratelimit"):
        decision = process_rate_limiter().hit_serving(
            f"key:{key.id}", key.rate_limit, replace(probed, bookkeeping=BOOKKEEPING, records=records)
        )
    if records and not decision.known:
        outbox.count_dropped(len(records))  # Redis could not take them
    if decision.flush_due:
        schedule_flush()
    if stale(decision.generation):
        with timed("auth"):
            fresh = again()
        if fresh[0].rate_limit != key.rate_limit or fresh[0].id != key.id:
            # The budget changed with the key: judged under the new one (this call counts against it too).
            with timed("ratelimit"):
                decision = process_rate_limiter().hit_serving(
                    f"key:{fresh[0].id}", fresh[0].rate_limit, Probe(GENERATION_KEY)
                )
        return fresh, decision, False
    return checked, decision, True


def _enforce(key: Row, decision: Decision) -> dict:
    """429 when the key is over its budget; else the `RateLimit-*` headers (none when the budget is unknown)."""
    headers = decision.headers()
    if not decision.allowed:
        raise APIError(
            429,
            "rate_limited",
            f"rate limit of {key.rate_limit} requests per minute exceeded",
            {"retry_after": decision.retry_after_seconds},
            headers,
        )
    return headers


def _admit(served: Served, key: Row, asset_key: str, asset_type: str, pin: Pin) -> ServedAsset:
    """The published asset the key belongs to.

    An asset that does not exist, is not published, or is not the key's own is one 404 (never saying whether another
    organization has it) and is never written to that asset's audit log; such a call spends from the key's budget
    right here, so a key cannot probe other assets unthrottled, and is a 429 once the budget is gone. A call on the
    key's own asset keeps the contract's order (404 endpoint -> 403 endpoint scope -> 429) and, as before, spends
    only when it gets past those checks.
    """
    try:
        asset = _published(asset_key, asset_type)
    except APIError:
        asset = None
    if asset is None or asset.id != key.asset_id:
        _enforce(key, _spend(key))
        raise not_found("published asset")
    served.asset = asset
    served.asset = routed = _route(key, asset, pin)
    return routed


def serve_endpoint(
    served: Served, asset_key: str, endpoint_id: str, api_key: str | None, call: Call, pin: Pin = Pin()
) -> Outcome:
    """401 key -> 403 inactive/expired -> 404 asset (a key's call on an asset not its own spends budget: 429) ->
    404 endpoint -> 403 endpoint scope -> 429 -> 405 -> 400/422 -> run."""

    def check() -> tuple:
        served.key = key = _authenticate(api_key)
        asset = _admit(served, key, asset_key, "api_service", pin)
        endpoint = memo(
            "endpoint",
            (asset.id, asset.published_version, endpoint_id),
            lambda: endpoint_of(asset.config, endpoint_id),
        )
        if endpoint is None:
            raise not_found(f"endpoint {endpoint_id!r}")
        served.endpoint_id = endpoint_id
        served.log_mode = endpoint.get("log") or "metadata"
        # None = every endpoint; a list (never empty since mint refuses [], but an empty one would allow nothing).
        if key.allowed_endpoints is not None and endpoint_id not in key.allowed_endpoints:
            raise APIError(403, "endpoint_not_allowed", f"this API key may not call endpoint {endpoint_id!r}")
        return key, asset, endpoint

    def probe(checked: tuple, generation: int | None) -> Probe:
        key, asset, endpoint = checked
        if not endpoint.answers_with_query or call.method != "GET":
            return Probe(GENERATION_KEY)
        if (endpoint.get("log") or "metadata") == "payload":
            # A payload record needs the answer, which the serve script's record of a hit is written without.
            return Probe(GENERATION_KEY, None, generation)
        return _cache_probe(
            served, key, asset, endpoint_id, endpoint.query, call.params, endpoint.cache_ttl, generation
        )

    (key, asset, endpoint), decision, probed = _keyed(check, probe)
    headers = _enforce(key, decision)
    if endpoint.kind == "model" and call.method == "POST":
        served.context = request_context(call.body)
    scope = (asset.id, asset.published_version)
    policy = memo("policy", key.id, lambda: key_policy(key))
    with timed("cache"):
        found = _probed_entry(served, decision) if probed else None
    if found is not None and found[1] is not None:
        outcome = Outcome.cache_hit(found[1])
    else:
        outcome = run_endpoint(
            endpoint, call, policy, asset.org_id, asset.project_id, scope, probed=found[0] if found else None
        )
    _answered(served, outcome)
    outcome.headers.update(headers)
    outcome.headers.update(served.version_headers())
    if endpoint.kind in ("model", "function"):
        served.summary = summarize(endpoint.kind, outcome.body)
        if asset.shadow_version is not None:
            served.call_id = uuid.uuid4().hex
            body = call.body if call.method == "POST" else {"features": dict(call.params)}
            served.shadow = ShadowCall(
                asset.id,
                asset.org_id,
                asset.project_id,
                asset.shadow_version,
                endpoint_id,
                endpoint.kind,
                body,
                served.call_id,
                key.id,
                from_query=call.method == "GET",
            )
    return outcome


def _answered(served: Served, outcome: Outcome) -> None:
    """What the audit record and the metrics keep of an answer."""
    served.cache_write, served.model_id = outcome.cache_write, outcome.model_id
    served.cache = outcome.headers.get("X-Cache")
    if served.log_mode == "payload":
        served.response_payload = outcome.body


def _cache_probe(
    served: Served, key: Row, asset: Row, endpoint_id: str, query: dict, params: dict, ttl: int, generation: int | None
) -> Probe:
    """The serve script's probe for a result-cached query: its entry, and on a hit the call's audit record."""
    if not ttl or ttl <= 0:
        return Probe(GENERATION_KEY)
    try:
        prepared = memo(
            "query",
            ((asset.id, asset.published_version), endpoint_id, asset.org_id, asset.project_id),
            lambda: prepare_query(query, asset.org_id, asset.project_id),
        )
    except APIError:
        return Probe(GENERATION_KEY)  # the call reports it after the rate limit, as before
    policy = memo("policy", key.id, lambda: key_policy(key))
    cache = result_cache()
    cache_keys = cache.probe_keys(
        asset.id, asset.published_version, endpoint_id, params, policy, prepared.param_names, asset.org_id
    )
    served.probe_template = cache_keys[2]
    entry = _entry(served, "GET", 200, (time.perf_counter() - served.started) * 1000, None, None)
    record = (json.dumps(entry, default=str, separators=(",", ":")), str(key.id), f"{time.time():.3f}")
    return Probe(GENERATION_KEY, cache_keys, generation, hit_record=record)


def _probed_entry(served: Served, decision: Decision) -> tuple[str, bytes | None] | None:
    """(the entry's key, the cached answer's JSON text or None) when the serve script read the result cache."""
    if decision.cache_generations is None or served.asset is None:
        return None
    cache = result_cache()
    template = served.probe_template
    if template is None:
        return None
    served.audited = decision.audited
    return cache.filled(template, decision.cache_generations), cache.served_text(decision.cached)


def serve_data_api(served: Served, asset_key: str, api_key: str | None, params: dict, pin: Pin = Pin()) -> Outcome:
    def check() -> tuple:
        served.key = key = _authenticate(api_key)
        return key, _admit(served, key, asset_key, "data_api", pin)

    def probe(checked: tuple, generation: int | None) -> Probe:
        key, asset = checked
        return _cache_probe(served, key, asset, "_data", asset.config, params, cache_ttl_of(asset.config), generation)

    (key, asset), decision, probed = _keyed(check, probe)
    headers = _enforce(key, decision)
    ttl = cache_ttl_of(asset.config)
    scope = (asset.id, asset.published_version)
    policy = memo("policy", key.id, lambda: key_policy(key))
    with timed("cache"):
        found = _probed_entry(served, decision) if probed else None
    if found is not None and found[1] is not None:
        outcome = Outcome.cache_hit(found[1])
    else:
        outcome = run_data_query(
            asset.config,
            params,
            policy,
            asset.org_id,
            asset.project_id,
            scope,
            "_data",
            ttl,
            probed=found[0] if found else None,
        )
    _answered(served, outcome)
    outcome.headers.update(headers)
    outcome.headers.update(served.version_headers())
    return outcome


def pane_call(endpoint: Endpoint, call: Call) -> Call:
    """The Test pane sends one JSON body: for a sql or lookup endpoint it holds the query params (an object, merged
    over those of the URL) and runs as the GET the serving route takes; for a model or function endpoint it is the
    body (none: `{}`). A GET is run as it came."""
    if call.method != "POST":
        return call
    body = {} if call.body is None else call.body
    if not endpoint.answers_with_query:
        return Call("POST", call.params, body)
    if not isinstance(body, dict):
        raise APIError(400, "bad_request", 'send the query parameters as a JSON object, e.g. {"id": 42}')
    return Call("GET", {**call.params, **{k: v if isinstance(v, str) else str(v) for k, v in body.items()}}, None)


def dry_run(user: User, asset: PublishedAsset, endpoint_id: str, call: Call) -> Outcome:
    """The Test pane: the draft config, never cached, no key, seen as the caller's role sees previews (admins
    unmasked; designers masked with critical columns blocked), so it is no way around role masking. `call` is what
    the pane sent (see `pane_call`)."""
    if asset.asset_type != "api_service":
        raise not_found("api service")
    endpoint = endpoint_of(asset.config, endpoint_id)
    if endpoint is None:
        raise not_found(f"endpoint {endpoint_id!r}")
    call = pane_call(endpoint, call)
    outcome = run_endpoint(endpoint, call, preview_policy(user.role), asset.org_id, asset.project_id, None)
    outcome.body = {**outcome.body, "dry": True}
    context = request_context(call.body) if endpoint.kind == "model" else None
    if context is not None:
        outcome.body["context"] = context
    return outcome


def record_call(
    served: Served,
    method: str,
    status: int,
    latency_ms: float,
    model_id: int | None,
    error_code: str | None,
    parts: dict | None = None,
) -> None:
    """Buffer the audit record and the key's last use in Redis; a worker writes them to the database, and at most
    one flush task is scheduled every 2 s whatever the request rate. The call does not wait for them: they go out
    with the next keyed call's round trip (app/serving/audit_outbox.py), except a result-cache miss's, which go in
    the round trip that stores its new entry."""
    if served.asset is None or served.key is None or served.key.asset_id != served.asset.id:
        return  # nothing to attribute the call to (bad key, unknown asset), or a key of another asset: never logged
    if served.audited and status == 200:
        return  # a result-cache hit: the serve script wrote the record in the call's one round trip
    entry = _entry(served, method, status, latency_ms, model_id, error_code, parts)
    cache_write = served.cache_write if status == 200 else None
    if cache_write is None:
        # Sent with the next keyed call's round trip (or the outbox's own, when none comes): none of its own here.
        audit_outbox().put(json.dumps(entry, default=str, separators=(",", ":")), served.key.id)
        return
    # A result-cache miss writes its new entry now, so the next call can hit it; its record goes along.
    if AuditBuffer(redis_store.get()).record_call(entry, served.key.id, result_cache().entry_write(*cache_write)):
        schedule_flush()


def record_refusal(served: Served, status: int, code: str | None) -> None:
    """A keyed call refused at authentication (no, unknown, revoked or expired key, or another asset's key) is
    counted in metrics and recorded, bounded, for the targeted organization's admins (app/keys/auth_failures.py)."""
    if status < 400 or code is None:
        return
    reason = failure_reason(status, code, served.key is not None and served.asset is None, served.key_presented)
    if reason is None:
        return
    observe_auth_failure(reason)
    flush_due = record_auth_failure(
        reason=reason,
        key_prefix=served.key_prefix,
        client_ip=served.client_ip,
        route=served.route,
        asset_key=served.asset_key,
        key_asset_id=served.key.asset_id if served.key is not None else None,
        cap=int(current_app.config["AUTH_FAILURE_MAX_RECORDS_PER_MINUTE"]),
        flush_flag=FLUSH_THROTTLE_KEY,
    )
    if flush_due:
        schedule_flush()


def _entry(
    served: Served, method: str, status: int, latency_ms: float, model_id, error_code, parts: dict | None = None
) -> dict:
    """The call's audit record; `parts`: its timing summary when the caller has it (else taken now)."""
    if parts is None:
        timing = current_timing()
        parts = timing.summary(latency_ms) if timing is not None else None
    payload = None
    if served.log_mode == "payload":
        limit = int(current_app.config["AUDIT_PAYLOAD_MAX_BYTES"])
        sent = served.read_request_payload() if served.read_request_payload is not None else None
        payload = (clipped_json(sent, limit), clipped_json(served.response_payload, limit))
    return audit_entry(
        asset_id=served.asset.id,
        endpoint_id=served.endpoint_id,
        key_id=served.key.id if served.key else None,
        status=status,
        latency_ms=latency_ms,
        method=method,
        org_id=served.asset.org_id,
        project_id=served.asset.project_id,
        model_id=model_id,
        error_code=error_code,
        context=served.context,
        version=served.version,
        call_id=served.call_id,
        summary=served.summary if status == 200 else None,
        request_id=served.request_id,
        client_ip=served.client_ip,
        user_agent=served.user_agent,
        timing=parts,
        payload=payload,
    )
