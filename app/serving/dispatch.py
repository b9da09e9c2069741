"""Run one endpoint of a service: the same code for live serving (with a key) and the Test pane (dry run)."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import Row, bindparam, select

from app.datasets.catalog import Catalog
from app.db import MLModel, Project
from app.errors import APIError, not_found
from app.extensions import db, warehouse
from app.ml.input_schema import parse_predict_body, validate_rows
from app.query.compiler import plan_tables, query_param_names
from app.query.executor import run_query
from app.query.plan import ResolvedQuery
from app.query.policy import KeyPolicy
from app.query.validation import resolve_query_config
from app.serving.asset_config import KIND_METHODS, lookup_as_query
from app.serving.batching import group_scorer
from app.serving.cache import result_cache
from app.serving.state import memo
from app.serving.workers import call_worker


@dataclass
class Outcome:
    body: dict
    headers: dict = field(default_factory=dict)
    model_id: int | None = None
    cache_write: tuple | None = None  # (entry key, body, ttl): a result-cache miss to store with the audit record


@dataclass(frozen=True)
class Call:
    """What arrived: the method, query params and JSON body (None for GET)."""

    method: str
    params: dict
    body: object


def check_method(endpoint: dict, method: str) -> None:
    expected = KIND_METHODS[endpoint["kind"]]
    if method != expected:
        raise APIError(405, "method_not_allowed", f"endpoint {endpoint['id']!r} ({endpoint['kind']}) is called with {expected}",
                       headers={"Allow": expected})  # fmt: skip


def run_endpoint(
    endpoint: dict,
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
    kind = endpoint["kind"]
    if kind in ("sql", "lookup"):
        query = endpoint["query"] if kind == "sql" else lookup_as_query(endpoint)
        ttl = endpoint.get("cache_ttl_seconds", 60) if cache_scope else 0
        outcome = run_data_query(query, call.params, policy, org_id, project_id, cache_scope, endpoint["id"], ttl,
                                 probed=probed)  # fmt: skip
        if kind == "lookup":
            # A lookup answers {rows, count}: paging belongs to sql endpoints.
            outcome.body = {k: v for k, v in outcome.body.items() if k not in ("limit", "offset")}
        return outcome
    if kind == "model":
        return _run_model(endpoint, call.body, project_id)
    return _run_function(endpoint, call.body, org_id, cache_scope)


@dataclass(frozen=True)
class PreparedQuery:
    """What a query config resolves to before any request: warehouse names, reflected columns, masking."""

    physical: dict
    plan: ResolvedQuery
    maskings: dict  # (schema, table) -> {column: ColumnMasking}
    param_names: frozenset
    tables: dict  # the plan's SQLAlchemy Tables, reused so the statement's compiled SQL is cached

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


def run_data_query(query: dict, params: dict, policy: KeyPolicy, org_id: int, project_id: int | None,
                   cache_scope: tuple[int, int] | None, endpoint_id: str, ttl: int,
                   probed: str | None = None) -> Outcome:  # fmt: skip
    """A governed query with the key's policy, through the result cache when `ttl` > 0.

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
        body = run_query(warehouse.get(), prepared.physical, params, policy, prepared.masking,
                         current_app.config["STATEMENT_TIMEOUT_SECONDS"], plan=prepared.plan, tables=prepared.tables)  # fmt: skip
        return Outcome(body, {"X-Cache": "MISS"}, cache_write=(probed, body, ttl))
    if cache is not None:
        cache_key = cache.make_key(
            cache_scope[0], cache_scope[1], endpoint_id, params, policy, prepared.param_names, org_id
        )
        hit = cache.get(cache_key)
        if hit is not None:
            return Outcome(hit, {"X-Cache": "HIT"})
    body = run_query(warehouse.get(), prepared.physical, params, policy, prepared.masking,
                     current_app.config["STATEMENT_TIMEOUT_SECONDS"], plan=prepared.plan, tables=prepared.tables)  # fmt: skip
    if cache is not None:
        cache.set(cache_key, body, ttl)
        return Outcome(body, {"X-Cache": "MISS"})
    return Outcome(body)


_MODELS = MLModel.__table__
# Read on every model call: the fields scoring needs, one statement built once, no ORM entity to load.
_SCORING_MODEL = select(
    _MODELS.c.id, _MODELS.c.project_id, _MODELS.c.artifact_path, _MODELS.c.artifact_sha256, _MODELS.c.sklearn_version,
    _MODELS.c.input_schema,
).where(_MODELS.c.id == bindparam("model_id"))  # fmt: skip


def model_for_endpoint(model_id: int, project_id: int | None) -> Row:
    """The scoring fields of the model; only a model of the service's own project is scored, anything else is a
    404."""
    model = db.session.execute(_SCORING_MODEL, {"model_id": model_id}).first()
    if model is None or project_id is None or model.project_id != project_id:
        raise not_found(f"model {model_id}")
    return model


def score_with_worker(model: Row, rows: list[dict]) -> dict:
    from tasks.predict import score

    payload = {
        "id": model.id,
        "artifact_path": model.artifact_path,
        "artifact_sha256": model.artifact_sha256,
        "sklearn_version": model.sklearn_version,
        "input_schema": model.input_schema,
    }
    timeout = float(current_app.config["PREDICT_TIMEOUT_SECONDS"])

    def send(batch: list[dict]) -> dict:
        answer = call_worker(score, [payload, batch], "predict", timeout, f"(model {model.id}, {len(batch)} rows)")
        if "error" in answer:
            err = answer["error"]
            raise APIError(err["status"], err["code"], err["message"], err.get("details"))
        return answer

    scorer = group_scorer()
    scorer.max_rows = int(current_app.config["PREDICT_MAX_ROWS"])
    # Queued behind at most one call in flight for the same model, then its own: twice the deadline at worst.
    return scorer.score((model.id, model.artifact_sha256), rows, send, 2 * timeout)


def _run_model(endpoint: dict, body: object, project_id: int | None) -> Outcome:
    model = memo(
        "model", (endpoint["model_id"], project_id), lambda: model_for_endpoint(endpoint["model_id"], project_id)
    )
    rows, single = parse_predict_body(body)
    rows = validate_rows(model.input_schema, rows, current_app.config["PREDICT_MAX_ROWS"], single=single)
    scored = score_with_worker(model, rows)
    result = {"predictions": scored["predictions"], "model_id": model.id, "count": len(scored["predictions"])}
    if scored.get("probabilities") is not None:
        result["probabilities"] = scored["probabilities"]
    return Outcome(result, model_id=model.id)


def _run_function(endpoint: dict, body: object, org_id: int, scope: tuple[int, int] | None) -> Outcome:
    """`scope` (asset id, published version) names the endpoint version whose warm jail may serve a live call; dry
    runs of a draft (None) always get a fresh jail."""
    from tasks.functions import run_function

    identity = None
    if scope is not None:
        identity = {"org_id": org_id, "asset_id": scope[0], "version": scope[1], "endpoint_id": endpoint["id"]}
    # Wait past the handler's own deadline and the sandbox's kill grace: the worker reports the 504 itself.
    wait = float(current_app.config["FUNCTION_TIMEOUT_SECONDS"]) + 5
    args = [endpoint["handler"], body, identity]
    answer = call_worker(run_function, args, "functions", wait, f"(endpoint {endpoint['id']!r})")
    if "error" in answer:
        err = answer["error"]
        raise APIError(err["status"], err["code"], err["message"], err.get("details"))
    return Outcome({"result": answer["result"]})
