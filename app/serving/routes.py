"""Serving routes: keyed endpoint calls, the data API, the Test pane dry run and the audit log."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from app.auth.permissions import current_user, login_required
from app.errors import APIError
from app.openapi import SERVING_BODY, SERVING_RESPONSE, TEST_BODY, TEST_RESPONSE, doc, ref
from app.publishing.service import asset_for_logs, get_asset
from app.serving import service
from app.serving.audit import list_logs
from app.serving.dispatch import Call
from app.serving.schemas import (
    LatencyHistogramSchema,
    LogPageSchema,
    LogQuerySchema,
    ServiceStatsSchema,
    StatsQuerySchema,
)
from app.serving.traffic import latency_histogram, service_stats

bp = Blueprint("serving", __name__)

ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE"]
SERVING_ERRORS = {
    401: "no or unknown key",
    403: "key inactive, expired or not allowed this endpoint",
    404: "no such published service or endpoint",
    405: "method does not match the endpoint's kind",
    429: "rate limited (Retry-After)",
}


def _call() -> Call:
    body = None
    if request.method != "GET":
        if not request.get_data():
            body = {}
        elif not request.is_json:
            raise APIError(415, "unsupported_media_type", "send a JSON body with Content-Type: application/json")
        else:
            body = request.get_json(silent=True)
            if body is None and request.get_data().strip() != b"null":
                raise APIError(400, "bad_request", "request body is not valid JSON")
    return Call(request.method, request.args.to_dict(), body)


def _respond(outcome) -> Response:
    response = jsonify(outcome.body)
    for name, value in outcome.headers.items():
        response.headers[name] = str(value)
    return response


@bp.route("/api/service/<asset_key>/<endpoint_id>", methods=ANY_METHOD)
@doc(
    "Call an endpoint of a published API service (GET for sql/lookup, POST for model/function)",
    auth="api_key",
    tags=["serving"],
    responses=SERVING_ERRORS,
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
    key = request.headers.get("X-API-Key")
    with service.audited_call(request.method) as served:
        return _respond(service.serve_endpoint(served, asset_key, endpoint_id, key, _call()))


@bp.get("/api/data/<asset_key>")
@doc("Query a published data API", auth="api_key", tags=["serving"])
def data_api(asset_key: str):
    key = request.headers.get("X-API-Key")
    with service.audited_call(request.method) as served:
        return _respond(service.serve_data_api(served, asset_key, key, request.args.to_dict()))


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
    return _respond(service.dry_run(user, asset, endpoint_id, _call()))


@bp.get("/api/api-services/<int:asset_id>/logs")
@doc(
    "Audit log of a service's calls, newest first",
    response=LogPageSchema,
    query={
        "endpoint_id": "",
        "key_id": "",
        "status": "",
        "errors_only": "",
        "since": "ISO 8601",
        "until": "ISO 8601",
        "limit": "1..1000",
        "offset": ">= 0",
    },
    tags=["serving"],
)
@login_required()
def logs(asset_id: int):
    asset = asset_for_logs(current_user(), asset_id)
    filters = LogQuerySchema().load(request.args.to_dict())
    return LogPageSchema().dump(list_logs(asset, filters))


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
