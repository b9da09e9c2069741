"""Run one endpoint of a service: the same code for live serving (with a key) and the Test pane (dry run)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import Row, bindparam, select

from app.datasets.catalog import Catalog
from app.db import MLModel, Project
from app.errors import APIError, invalid, not_found
from app.extensions import db, warehouse
from app.ml.input_schema import (
    EXPLAIN_METHODS,
    MAX_EXACT_FEATURES,
    check_batch,
    parse_predict_body,
    validate_rows,
)
from app.ml.percentiles import percentile_of
from app.ops.timing import record_worker_parts, timed
from app.publishing.endpoint_config import Endpoint
from app.query.coercion import CoercionError, coerce_text
from app.query.compiler import plan_tables, query_param_names
from app.query.executor import run_query
from app.query.plan import ResolvedQuery
from app.query.policy import KeyPolicy
from app.query.template import TemplateCache
from app.query.validation import resolve_query_config
from app.serving.admission import WorkRoute, admitted
from app.serving.batching import group_scorer
from app.serving.cache import result_cache
from app.serving.enrichment import enrich_rows
from app.serving.state import memo
from tasks.calls import call_worker
from tasks.functions import run_function


@dataclass
class Outcome:
    body: dict | None  # None when `raw` is the answer
    headers: dict = field(default_factory=dict)
    model_id: int | None = None
    cache_write: tuple | None = None  # (entry key, body, ttl): a result-cache miss to store with the audit record
    raw: bytes | None = None  # a result-cache hit: the answer's JSON text, sent as stored

    @classmethod
    def cache_hit(cls, text: bytes) -> Outcome:
        return cls(None, {"X-Cache": "HIT"}, raw=text)

    def answer(self) -> dict:
        """The answer as a dict (a cache hit's text decoded), for callers other than the serving route."""
        return json.loads(self.raw) if self.raw is not None else self.body


@dataclass(frozen=True)
class Call:
    """What arrived: the method, query params and JSON body (None for GET)."""

    method: str
    params: dict
    body: object


# A model endpoint also answers GET for one row (features as query params), for clients that can only do GET.
EXTRA_METHODS = {"model": ("GET",)}


def check_method(endpoint: Endpoint, method: str) -> None:
    allowed = (endpoint.method, *EXTRA_METHODS.get(endpoint.kind, ()))
    if method not in allowed:
        raise APIError(
            405,
            "method_not_allowed",
            f"endpoint {endpoint.id!r} ({endpoint.kind}) is called with {endpoint.method}",
            headers={"Allow": ", ".join(allowed)},
        )


def run_endpoint(
    endpoint: Endpoint,
    call: Call,
    policy: KeyPolicy,
    org_id: int,
    project_id: int | None,
    cache_scope: tuple[int, int] | None,
    probed: str | None = None,
) -> Outcome:
    """`cache_scope` is (asset id, published version) for live calls, None for dry runs (never cached); `probed`:
    the result cache entry the call's serve script found empty (see run_data_query)."""
    check_method(endpoint, call.method)
    kind = endpoint.kind
    if endpoint.answers_with_query:
        ttl = endpoint.cache_ttl if cache_scope else 0
        return run_data_query(
            endpoint.query,
            call.params,
            policy,
            org_id,
            project_id,
            cache_scope,
            endpoint.id,
            ttl,
            probed=probed,
            paged=kind != "lookup",  # a lookup answers {rows, count}: paging belongs to sql endpoints
        )
    if kind == "model":
        body = call.body if call.method == "POST" else {"features": dict(call.params)}
        return _run_model(endpoint, body, project_id, policy, org_id, cache_scope, from_query=call.method == "GET")
    return _run_function(endpoint, call.body, org_id, cache_scope)


@dataclass(frozen=True)
class PreparedQuery:
    """What a query config resolves to before any request: warehouse names, reflected columns, masking."""

    physical: dict
    plan: ResolvedQuery
    maskings: dict  # (schema, table) -> {column: ColumnMasking}
    param_names: frozenset
    tables: dict  # the plan's SQLAlchemy Tables, reused so the statement's compiled SQL is cached
    # The query's templates per key policy and shape: built and compiled once, dropped with this prepared query.
    templates: TemplateCache = field(default_factory=TemplateCache, compare=False, repr=False)

    def masking(self, schema: str, table: str) -> dict:
        return self.maskings.get((schema, table), {})


def prepare_query(query: dict, org_id: int, project_id: int | None) -> PreparedQuery:
    """Resolve `query` against the catalog and the warehouse (SQL and reflection): once per process and serving
    generation for live calls (see app/serving/state.py), every time for dry runs."""
    project = db.session.get(Project, project_id) if project_id else None
    catalog = Catalog.for_scope(org_id, project)
    physical = catalog.physical_query(query, "query")
    plan = resolve_query_config(physical, warehouse.get(), "query")
    lookup = catalog.masking()
    maskings = {(t.schema, t.table): dict(lookup(t.schema, t.table) or {}) for t in plan.tables}
    return PreparedQuery(physical, plan, maskings, query_param_names(query), plan_tables(plan))


def run_data_query(
    query: dict,
    params: dict,
    policy: KeyPolicy,
    org_id: int,
    project_id: int | None,
    cache_scope: tuple[int, int] | None,
    endpoint_id: str,
    ttl: int,
    probed: str | None = None,
    paged: bool = True,
) -> Outcome:
    """A governed query with the key's policy, through the result cache when `ttl` > 0: `{rows, count, limit,
    offset}`, without `limit` and `offset` unless `paged`. The cache holds the answer as served.

    `probed`: the entry's key, already read (and empty) in the call's serve script: no second read, and the answer
    is returned as `cache_write` for the audit record's round trip instead of a SET of its own."""
    # Keyed by the config itself (its identity within a published version) and the scope it reads from.
    memo_key = (cache_scope, endpoint_id, org_id, project_id) if cache_scope else None
    if memo_key is not None:
        prepared = memo("query", memo_key, lambda: prepare_query(query, org_id, project_id))
    else:
        prepared = prepare_query(query, org_id, project_id)
    cache = result_cache() if ttl > 0 and cache_scope else None
    cache_key = None
    if cache is not None and probed is not None:
        body = _run_prepared(prepared, params, policy, paged)
        return Outcome(body, {"X-Cache": "MISS"}, cache_write=(probed, body, ttl))
    if cache is not None:
        cache_key = cache.make_key(
            cache_scope[0], cache_scope[1], endpoint_id, params, policy, prepared.param_names, org_id
        )
        with timed("cache"):
            hit = cache.get(cache_key)
        if hit is not None:
            return Outcome(hit, {"X-Cache": "HIT"})
    body = _run_prepared(prepared, params, policy, paged)
    if cache is not None:
        with timed("cache"):
            cache.set(cache_key, body, ttl)
        return Outcome(body, {"X-Cache": "MISS"})
    return Outcome(body)


def _run_prepared(prepared: PreparedQuery, params: dict, policy: KeyPolicy, paged: bool = True) -> dict:
    """Run a prepared query for one call, timed as the call's `query` part."""
    with timed("query"):
        body = run_query(
            warehouse.get(),
            prepared.physical,
            params,
            policy,
            prepared.masking,
            current_app.config["STATEMENT_TIMEOUT_SECONDS"],
            plan=prepared.plan,
            tables=prepared.tables,
            templates=prepared.templates,
        )
    if not paged:
        del body["limit"], body["offset"]
    return body


_MODELS = MLModel.__table__
# Read on every model call: the fields scoring needs, one statement built once, no ORM entity to load.
_SCORING_MODEL = select(
    _MODELS.c.id,
    _MODELS.c.project_id,
    _MODELS.c.artifact_path,
    _MODELS.c.artifact_sha256,
    _MODELS.c.sklearn_version,
    _MODELS.c.input_schema,
    _MODELS.c.score_quantiles,
).where(_MODELS.c.id == bindparam("model_id"))


def model_for_endpoint(model_id: int, project_id: int | None) -> Row:
    """The scoring fields of the model; only a model of the service's own project is scored, anything else is a
    404."""
    model = db.session.execute(_SCORING_MODEL, {"model_id": model_id}).first()
    if model is None or project_id is None or model.project_id != project_id:
        raise not_found(f"model {model_id}")
    return model


def score_with_worker(model: Row, rows: list[dict], route: WorkRoute) -> dict:
    from tasks.predict import score  # lazy: tasks.predict loads scikit-learn, which the web process never needs

    payload = {
        "id": model.id,
        "artifact_path": model.artifact_path,
        "artifact_sha256": model.artifact_sha256,
        "sklearn_version": model.sklearn_version,
        "input_schema": model.input_schema,
    }
    timeout = float(current_app.config["PREDICT_TIMEOUT_SECONDS"])

    def send(batch: list[dict], seconds: float) -> dict:
        summary = f"(model {model.id}, {len(batch)} rows)"
        return call_worker(
            score, [payload, batch], route.queue, seconds, summary, route.org_id, route.deadline, timed=True
        )

    scorer = group_scorer()
    scorer.max_rows = int(current_app.config["PREDICT_MAX_ROWS"])
    # PREDICT_TIMEOUT_SECONDS from now, waiting behind a call in flight for the same model included. A batch is sent
    # with its leader's route: only calls of one organization (its fair share) and one pool (or none) are grouped.
    group = (model.id, model.artifact_sha256, route.queue, route.org_id, route.pool)
    scored = scorer.score(group, rows, send, timeout)
    record_worker_parts(scored.get("timing"))
    return scored


def _run_model(
    endpoint: Endpoint,
    body: object,
    project_id: int | None,
    policy: KeyPolicy,
    org_id: int,
    scope: tuple[int, int] | None,
    from_query: bool = False,
) -> Outcome:
    model = memo("model", (endpoint.model_id, project_id), lambda: model_for_endpoint(endpoint.model_id, project_id))
    rows, single = parse_predict_body(body, ("context", "explanations"))
    if from_query:
        rows = [query_features(model.input_schema, rows[0])]
    max_rows = current_app.config["PREDICT_MAX_ROWS"]
    check_batch(rows, max_rows)
    explain = explanation_request(body, endpoint, model, len(rows))
    enrichments, ignore_bad = endpoint.get("enrichments"), endpoint.get("on_bad_row") == "ignore"
    if not enrichments and not ignore_bad:
        rows = validate_rows(model.input_schema, rows, max_rows, single=single)
        # Admitted once the input is valid: a bad call is its 400/422, never a 503, and holds no slot.
        with admitted(endpoint, org_id, scope) as route:
            scored = score_with_worker(model, rows, route)
            if explain:
                scored["explanations"] = explain_with_worker(model, rows, explain["top_n"], route)
        return _model_outcome(model, scored, None)
    ignored: dict[int, str] = {}
    shown = None
    if enrichments:
        project = db.session.get(Project, project_id) if project_id else None
        features = {f["name"] for f in model.input_schema}
        enriched = enrich_rows(enrichments, rows, policy, org_id, project, single, features)
        rows, ignored, shown = enriched.rows, enriched.ignored, enriched.shown
    clean: dict[int, dict] = {}
    for i, row in enumerate(rows):
        if i in ignored:
            continue
        try:
            [clean[i]] = validate_rows(model.input_schema, [row], max_rows, single=single, start=i)
        except APIError as err:
            if not ignore_bad or err.status != 422:
                raise
            ignored[i] = err.message
    live = sorted(clean)
    scored, explained = {"predictions": [], "probabilities": None}, None
    if live:
        with admitted(endpoint, org_id, scope) as route:
            scored = score_with_worker(model, [clean[i] for i in live], route)
            if explain:
                explained = explain_with_worker(model, [clean[i] for i in live], explain["top_n"], route)
    per_row: dict[int, tuple] = {}
    probabilities = scored.get("probabilities")
    for n, i in enumerate(live):
        per_row[i] = (
            scored["predictions"][n],
            probabilities[n] if probabilities is not None else None,
            explained[n] if explained else None,
        )
    predictions, probs, echo, explanations = [], [], [], []
    for i in range(len(rows)):
        if i in ignored:
            predictions.append({"ignored": True, "reason": ignored[i]})
            probs.append(None)
            echo.append(None)
            explanations.append(None)
        else:
            predictions.append(per_row[i][0])
            probs.append(per_row[i][1])
            explanations.append(per_row[i][2])
            echo.append({**clean[i], **(shown[i] if shown else {})})
    # When every row is ignored no probabilities were computed; the field is then left out.
    merged = {"predictions": predictions, "probabilities": probs if probabilities is not None else None}
    if explain:
        merged["explanations"] = explanations
    return _model_outcome(model, merged, echo if endpoint.get("return_enriched") else None)


def _model_outcome(model: Row, scored: dict, enriched: list | None) -> Outcome:
    result = {"predictions": scored["predictions"], "model_id": model.id, "count": len(scored["predictions"])}
    if scored.get("probabilities") is not None:
        result["probabilities"] = scored["probabilities"]
        if model.score_quantiles:
            # Where each probability falls among the held-out test scores (models trained before: left out).
            result["probability_percentiles"] = [
                None
                if row is None
                else {
                    cls: percentile_of(model.score_quantiles[cls], p)
                    for cls, p in row.items()
                    if cls in model.score_quantiles
                }
                for row in scored["probabilities"]
            ]
    if "explanations" in scored:
        result["explanations"] = scored["explanations"]
    if enriched is not None:
        result["enriched"] = enriched
    return Outcome(result, model_id=model.id)


def _run_function(endpoint: Endpoint, body: object, org_id: int, scope: tuple[int, int] | None) -> Outcome:
    """`scope` (asset id, published version) names the endpoint version whose warm jail may serve a live call; dry
    runs of a draft (None) always get a fresh jail."""
    identity = None
    if scope is not None:
        identity = {"org_id": org_id, "asset_id": scope[0], "version": scope[1], "endpoint_id": endpoint.id}
    # Wait past the handler's own deadline and the sandbox's kill grace: the worker reports the 504 itself.
    wait = float(current_app.config["FUNCTION_TIMEOUT_SECONDS"]) + 5
    args = [endpoint.handler, body, identity]
    with admitted(endpoint, org_id, scope) as route:
        summary = f"(endpoint {endpoint.id!r})"
        answer = call_worker(run_function, args, route.queue, wait, summary, route.org_id, route.deadline, timed=True)
    record_worker_parts(answer.get("timing"))
    return Outcome({"result": answer["result"]})


MAX_CONTEXT_BYTES = 4096


def request_context(body: object) -> dict | None:
    """A model call's `context`: any JSON object of at most 4 KB, never scored, kept in the audit log."""
    if not isinstance(body, dict) or body.get("context") is None:
        return None
    context = body["context"]
    if not isinstance(context, dict):
        raise invalid("context", "must be a JSON object")
    if len(json.dumps(context, separators=(",", ":"), ensure_ascii=False).encode()) > MAX_CONTEXT_BYTES:
        raise invalid("context", f"at most {MAX_CONTEXT_BYTES} bytes of JSON")
    return context


def query_features(schema: list[dict], params: dict) -> dict:
    """One row from query-string values: each model feature's string coerced to its type (an empty value is
    null), a 422 naming `features.<name>` when it does not fit. Other params (an enrichment key) stay strings."""
    types = {f["name"]: f["type"] for f in schema}
    row: dict = {}
    for name, raw in params.items():
        ftype = types.get(name)
        if ftype in (None, "text", "date", "timestamp"):
            row[name] = raw
        elif raw == "":
            row[name] = None
        else:
            try:
                row[name] = coerce_text(raw, ftype)
            except CoercionError as exc:
                raise invalid(f"features.{name}", str(exc)) from None
    return row


def explanation_request(body: object, endpoint: Endpoint, model: Row, n_rows: int) -> dict | None:
    """The request's `explanations` (or the endpoint's default): `{method: "shapley", top_n}`; None for none.

    422 naming `explanations.method` for an unknown method or a model exact Shapley values cannot be computed
    for (too many input features), and naming `explanations` past the rows-per-call cap (EXPLAIN_MAX_ROWS)."""
    asked = body.get("explanations") if isinstance(body, dict) else None
    if asked is None:
        asked = endpoint.get("explanations")
    if asked is None or asked is False:
        return None
    if not isinstance(asked, dict):
        raise invalid("explanations", 'expected {"method": "shapley", "top_n": 3}')
    unknown = sorted(set(asked) - {"method", "top_n"})
    if unknown:
        raise invalid(f"explanations.{unknown[0]}", "unknown field; explanations take method and top_n")
    if asked.get("method", "shapley") not in EXPLAIN_METHODS:
        raise invalid("explanations.method", f"one of {', '.join(EXPLAIN_METHODS)}")
    features = len(model.input_schema)
    if features > MAX_EXACT_FEATURES:
        raise invalid(
            "explanations.method",
            f"exact Shapley values are computed for models of at most "
            f"{MAX_EXACT_FEATURES} input features; this model has {features}",
        )
    top_n = asked.get("top_n", 3)
    if not isinstance(top_n, int) or isinstance(top_n, bool) or not 1 <= top_n <= MAX_EXACT_FEATURES:
        raise invalid("explanations.top_n", f"an integer from 1 to {MAX_EXACT_FEATURES}")
    cap = int(current_app.config["EXPLAIN_MAX_ROWS"])
    if n_rows > cap:
        raise invalid("explanations", f"at most {cap} rows per call are explained (got {n_rows})")
    return {"method": "shapley", "top_n": top_n}


def explain_with_worker(model: Row, rows: list[dict], top_n: int, route: WorkRoute) -> list[dict]:
    """Exact Shapley explanations of validated rows, computed on a predict worker (never in the web process)."""
    from tasks.predict import explain  # lazy: tasks.predict loads scikit-learn, which the web process never needs

    payload = {
        "id": model.id,
        "artifact_path": model.artifact_path,
        "artifact_sha256": model.artifact_sha256,
        "sklearn_version": model.sklearn_version,
        "input_schema": model.input_schema,
    }
    timeout = float(current_app.config["PREDICT_TIMEOUT_SECONDS"])
    summary = f"(model {model.id}, {len(rows)} rows explained)"
    answer = call_worker(
        explain, [payload, rows, top_n], route.queue, timeout, summary, route.org_id, route.deadline, timed=True
    )
    record_worker_parts(answer.get("timing"))
    return answer["explanations"]
