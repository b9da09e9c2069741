"""Serving routes: keyed endpoint calls, the data API, the Test pane dry run and the audit log."""

from __future__ import annotations

from flask import Blueprint, Request, Response, current_app, g, jsonify, request, stream_with_context

from app.auth.permissions import current_user, login_required
from app.auth.throttle import client_address
from app.errors import APIError
from app.keys.auth_failures import key_prefix_of
from app.openapi import SERVING_BODY, SERVING_RESPONSE, TEST_BODY, TEST_RESPONSE, doc, ref
from app.publishing.service import asset_for_logs, get_asset, get_version, payloads_visible
from app.serving import service
from app.serving.audit import export_logs as audit_export
from app.serving.audit import list_logs
from app.serving.compare import compare_versions
from app.serving.dispatch import Call
from app.serving.schemas import (
    CompareQuerySchema,
    CompareSchema,
    LatencyHistogramSchema,
    LogExportQuerySchema,
    LogPageSchema,
    LogQuerySchema,
    ServiceStatsSchema,
    StatsQuerySchema,
)
from app.serving.shadow import queue_shadow
from app.serving.traffic import latency_histogram, service_stats

bp = Blueprint("serving", __name__)

ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE"]
SERVING_ERRORS = {
    401: "no or unknown key",
    403: "key inactive, expired or not allowed this endpoint",
    404: "no such published service or endpoint",
    405: "method does not match the endpoint's kind",
    429: "rate limited (Retry-After)",
    503: "overloaded: the endpoint's pool is full or its queue timeout passed (Retry-After); or no worker on its queue",
}
ROUTING_HEADERS = {
    "X-Dispatch-Key": "hash routing: the same key lands on the same version while the weights hold "
    "(also `dispatch_key` in the query string or JSON body, which is not passed on)",
    "X-Service-Version": "pin the call to this published version (keys minted with can_force_version; 403 "
    "otherwise, 404 for a version the service does not have)",
}
VERSION_HEADERS = {
    "X-Service-Version": "the published version that answered (on errors too, once a version was chosen)",
    "X-Dispatch-Fallback": "`random` when hash routing had no dispatch key and picked by weight",
    "Server-Timing": "where the call's time went, in ms: `auth`, `ratelimit`, `cache`, `query`, `queue`, `score`, "
    "`function` (the parts it went through), `cpu` (the web thread's own CPU time) and `total` (on refusals too)",
}


DISPATCH_FIELD = "dispatch_key"  # the dispatch key as a query parameter or JSON body field (not passed on)


def _pin(req: Request) -> service.Pin:
    """The routing asks of the call: `X-Dispatch-Key` (or `dispatch_key` in the query string or JSON body) and
    `X-Service-Version`."""
    key = req.headers.get("X-Dispatch-Key") or req.args.get(DISPATCH_FIELD)
    if not key and req.method != "GET" and req.is_json:
        body = req.get_json(silent=True)
        if isinstance(body, dict) and isinstance(body.get(DISPATCH_FIELD), str | int):
            key = str(body[DISPATCH_FIELD])
    return service.Pin(key or None, req.headers.get("X-Service-Version"))


def _call(req: Request) -> Call:
    body = None
    if req.method != "GET":
        if not req.get_data():
            body = {}
        elif not req.is_json:
            raise APIError(415, "unsupported_media_type", "send a JSON body with Content-Type: application/json")
        else:
            body = req.get_json(silent=True)
            if body is None and req.get_data().strip() != b"null":
                raise APIError(400, "bad_request", "request body is not valid JSON")
    params = {k: v for k, v in req.args.to_dict().items() if k != DISPATCH_FIELD}
    if isinstance(body, dict) and DISPATCH_FIELD in body:
        body = {k: v for k, v in body.items() if k != DISPATCH_FIELD}
    return Call(req.method, params, body)


def _respond(outcome) -> Response:
    if outcome.raw is not None:  # a result-cache hit: the JSON text as stored, as jsonify would have written it
        response = current_app.response_class(outcome.raw + b"\n", mimetype="application/json")
    else:
        response = jsonify(outcome.body)
    for name, value in outcome.headers.items():
        response.headers[name] = str(value)
    return response


def _caller(req: Request, asset_key: str) -> dict:
    """What the audit record and the refused-key record keep of the caller (see `service.audited_call`)."""
    presented = req.headers.get("X-API-Key")
    return {
        "request_id": g.get("request_id"),
        "client_ip": client_address(),
        "user_agent": (req.headers.get("User-Agent") or "")[:256] or None,
        "asset_key": asset_key,
        "route": req.url_rule.rule if req.url_rule is not None else "<unmatched>",
        "key_presented": bool(presented),
        "key_prefix": key_prefix_of(presented),
        "read_request_payload": lambda: _request_payload(req),
    }


def _request_payload(req: Request) -> object:
    """What the caller sent: the JSON body of a POST, else the query params (kept by `log: "payload"` endpoints)."""
    if req.method != "GET":
        body = req.get_json(silent=True)
        if body is not None:
            return body
    return req.args.to_dict()


def _answer(served: service.Served, outcome) -> Response:
    """The response, with where its time went; a call with a shadow version queues its shadow run once the response
    is sent, so the shadow never delays or changes the answer."""
    response = _respond(outcome)
    response.headers["Server-Timing"] = service.server_timing()
    if served.shadow is not None:
        app, shadow = current_app._get_current_object(), served.shadow
        response.call_on_close(lambda: queue_shadow(app, shadow))
    return response


@bp.route("/api/service/<asset_key>/<endpoint_id>", methods=ANY_METHOD)
@doc(
    "Call an endpoint of a published API service (GET for sql/lookup, POST for model/function)",
    auth="api_key",
    tags=["serving"],
    responses=SERVING_ERRORS,
    headers=ROUTING_HEADERS,
    response_headers=VERSION_HEADERS,
    methods={
        "GET": {
            "summary": "Call a sql or lookup endpoint (or a model endpoint for one row)",
            "response": ref("RowsResponse"),
            "description": "sql: the endpoint's filter params plus `limit` (1..max_limit) and `offset` (>= 0); "
            "lookup: the key from the query param named by the endpoint's `key_param` (default "
            "`id`). Any other method on a sql or lookup endpoint is a 405. model: one row's features "
            "as query params (`?tenure=7&plan=basic`), validated as a POST body would be.",
            "query": {"limit": "sql: 1..max_limit", "offset": "sql: >= 0"},
        },
        "POST": {
            "summary": "Call a model or function endpoint",
            "body": SERVING_BODY,
            "response": SERVING_RESPONSE,
            "description": 'model: `{"features": {...}}` or `{"rows": [{...}, ...]}` scored on a worker '
            "(422 naming a bad feature, 504 past PREDICT_TIMEOUT_SECONDS, 503 without a worker); "
            'function: any JSON body, answered as `{"result": ...}`. Any other method on a '
            "function endpoint is a 405; a model endpoint also answers GET with one row's "
            "features as query params (coerced to their types).",
        },
    },
)
def call_endpoint(asset_key: str, endpoint_id: str):
    # The X-API-Key is the only credential here; an Authorization header is ignored.
    req = request._get_current_object()  # one proxy lookup for the whole call
    key = req.headers.get("X-API-Key")
    with service.audited_call(req.method, **_caller(req, asset_key)) as served:
        return _answer(served, service.serve_endpoint(served, asset_key, endpoint_id, key, _call(req), _pin(req)))


@bp.get("/api/data/<asset_key>")
@doc(
    "Query a published data API",
    auth="api_key",
    tags=["serving"],
    headers=ROUTING_HEADERS,
    response_headers=VERSION_HEADERS,
)
def data_api(asset_key: str):
    req = request._get_current_object()
    key = req.headers.get("X-API-Key")
    params = {k: v for k, v in req.args.to_dict().items() if k != DISPATCH_FIELD}
    with service.audited_call(req.method, **_caller(req, asset_key)) as served:
        return _answer(served, service.serve_data_api(served, asset_key, key, params, _pin(req)))


@bp.route("/api/api-services/<int:asset_id>/endpoints/<endpoint_id>/test", methods=["GET", "POST"])
@doc(
    "Test pane dry run of the draft config: no key, masked by the caller's role as previews are "
    "(admins unmasked), same dispatch as serving",
    tags=["serving"],
    response=TEST_RESPONSE,
    methods={
        "GET": {
            "summary": "Dry-run a sql or lookup endpoint of the draft",
            "description": "The query params the serving route takes (a sql endpoint's filter params, `limit`, "
            "`offset`; a lookup's key_param).",
        },
        "POST": {
            "summary": "Dry-run any endpoint of the draft",
            "body": TEST_BODY,
            "description": "sql and lookup: one JSON object holding the query params; model and function: "
            "the body the serving route takes. Answers the serving body plus `dry: true`.",
        },
    },
)
@login_required()
def test_endpoint(asset_id: int, endpoint_id: str):
    user = current_user()
    asset = get_asset(user, asset_id, "project.edit")
    return _respond(service.dry_run(user, asset, endpoint_id, _call(request)))


@bp.get("/api/api-services/<int:asset_id>/logs")
@doc(
    "Audit log of a service's calls, newest first",
    response=LogPageSchema,
    query={
        "endpoint_id": "",
        "key_id": "",
        "status": "",
        "errors_only": "",
        "version": "the version that answered (or ran the shadow call)",
        "shadow": "true: only shadow runs; false: only answered calls",
        "since": "ISO 8601",
        "until": "ISO 8601",
        "limit": "1..1000",
        "offset": ">= 0",
    },
    tags=["serving"],
)
@login_required()
def logs(asset_id: int):
    user = current_user()
    asset = asset_for_logs(user, asset_id)
    filters = LogQuerySchema().load(request.args.to_dict())
    return LogPageSchema().dump(list_logs(asset, filters, payloads_visible(user)))


@bp.get("/api/api-services/<int:asset_id>/versions/compare")
@doc(
    "Compare two versions from the audit log: calls, error rate, p50/p99 latency per version, the prediction "
    "distribution of model endpoints per version, and the agreement of shadow runs with the answers they shadowed",
    response=CompareSchema,
    query={"a": "a version", "b": "another version", "since": "ISO 8601", "until": "ISO 8601", "endpoint_id": ""},
    tags=["serving"],
)
@login_required()
def compare(asset_id: int):
    asset = get_asset(current_user(), asset_id, "project.view")
    args = CompareQuerySchema().load(request.args.to_dict())
    for name in ("a", "b"):
        get_version(asset, args[name])  # 404 for a version the asset never had
    report = compare_versions(
        asset, args["a"], args["b"], args.get("since"), args.get("until"), args.get("endpoint_id")
    )
    return CompareSchema().dump(report)


@bp.get("/api/api-services/<int:asset_id>/stats")
@doc(
    "Per-endpoint traffic of a service over the last hour, day or week: calls, errors, error rate and nearest-rank "
    "p50/p99 latency over the window and per bucket (hour: 12 x 5 min, day: 24 x 1 h, week: 28 x 6 h)",
    response=ServiceStatsSchema,
    query={"window": "hour | day | week (default day)", "endpoint_id": ""},
    tags=["serving"],
)
@login_required()
def stats(asset_id: int):
    asset = asset_for_logs(current_user(), asset_id)
    query = StatsQuerySchema().load(request.args.to_dict())
    return ServiceStatsSchema().dump(service_stats(asset, query["window"], query.get("endpoint_id")))


@bp.get("/api/api-services/<int:asset_id>/logs/histogram")
@doc(
    "Latency histogram of the calls matching the log's filters (limit and offset ignored): counts per bin, "
    "`le_ms` the bin's upper bound (null: slower than the last bound)",
    response=LatencyHistogramSchema,
    query={"endpoint_id": "", "key_id": "", "status": "", "errors_only": "", "since": "ISO 8601", "until": "ISO 8601"},
    tags=["serving"],
)
@login_required()
def logs_histogram(asset_id: int):
    asset = asset_for_logs(current_user(), asset_id)
    filters = LogQuerySchema().load(request.args.to_dict())
    return LatencyHistogramSchema().dump(latency_histogram(asset, filters))


@bp.get("/api/api-services/<int:asset_id>/logs/export")
@doc(
    "The service's audit log streamed oldest first, one record per line (JSON lines or CSV with a header), with "
    "the log's fields; same permissions as the log",
    query={"format": "jsonl (default) or csv", "endpoint_id": "", "since": "ISO 8601", "until": "ISO 8601"},
    tags=["serving"],
)
@login_required()
def export_logs(asset_id: int):
    user = current_user()
    asset = asset_for_logs(user, asset_id)
    filters = LogExportQuerySchema().load(request.args.to_dict())
    fmt = filters["format"]
    mimetype = "text/csv" if fmt == "csv" else "application/x-ndjson"
    response = Response(
        stream_with_context(audit_export(asset, filters, fmt, payloads_visible(user))), mimetype=mimetype
    )
    response.headers["Content-Disposition"] = f'attachment; filename="service-{asset.id}-logs.{fmt}"'
    return response
