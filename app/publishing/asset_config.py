"""Validation of published-asset configs: a data_api's query, an api_service's endpoints."""

from __future__ import annotations

import re

from sqlalchemy import select

from app.auth.permissions import has_permission
from app.datasets.catalog import Catalog
from app.datasets.policy import preview_policy
from app.db import AssetVersion, MLModel, Project, PublishedAsset, User
from app.errors import APIError, forbidden, invalid
from app.extensions import db, warehouse
from app.ml.input_schema import EXPLAIN_METHODS, MAX_EXACT_FEATURES
from app.publishing.endpoint_config import DEFAULT_KEY_PARAM, KINDS, cache_ttl_of, lookup_as_query
from app.publishing.pool_config import validate_pool
from app.query.masking import BLOCKED, default_masking
from app.query.plan import ColumnRef, TableRef
from app.query.policy import SERVE
from app.query.validation import resolve_query_config, validate_query_config
from app.sandbox import check_handler_source

ENDPOINT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
MAX_ENDPOINTS = 100


def validate_asset_config(
    asset_type: str, config: dict, user: User, project: Project | None, previous: dict | None
) -> dict:
    """The config normalised (defaults filled), or a 400/422 naming the endpoint and the field."""
    catalog = Catalog.for_scope(user.org_id, project)
    if asset_type == "data_api":
        validate_query_config(catalog.physical_query(config, "config"), warehouse.get(), "config")
        if config != previous:
            check_masked_uses(user, catalog, "data_api", config, "config")
        return config
    return _validate_service(config, user, project, catalog, previous or {})


def _validate_service(config: dict, user: User, project: Project, catalog: Catalog, previous: dict) -> dict:
    if set(config) - {"endpoints"}:
        raise invalid(
            f"config.{sorted(set(config) - {'endpoints'})[0]}", "unknown field; an api_service config has endpoints"
        )
    endpoints = config.get("endpoints", [])
    if not isinstance(endpoints, list):
        raise invalid("config.endpoints", "expected a list of endpoints")
    if len(endpoints) > MAX_ENDPOINTS:
        raise invalid("config.endpoints", f"at most {MAX_ENDPOINTS} endpoints")
    old_handlers = {
        ep.get("id"): ep.get("handler")
        for ep in previous.get("endpoints", [])
        if isinstance(ep, dict) and ep.get("kind") == "function"
    }
    seen: set[str] = set()
    normalised = []
    for i, endpoint in enumerate(endpoints):
        field = f"config.endpoints[{i}]"
        if not isinstance(endpoint, dict):
            raise invalid(field, "expected an object with id and kind")
        endpoint_id = endpoint.get("id")
        if not isinstance(endpoint_id, str) or not ENDPOINT_ID.fullmatch(endpoint_id):
            raise invalid(f"{field}.id", "required: 1-64 letters, digits, _ or -, starting with a letter or digit")
        if endpoint_id in seen:
            raise invalid(f"{field}.id", f"duplicate endpoint id {endpoint_id!r}")
        seen.add(endpoint_id)
        kind = endpoint.get("kind")
        if kind not in KINDS:
            raise invalid(f"{field}.kind", f"endpoint {endpoint_id!r}: kind must be one of {', '.join(KINDS)}")
        try:
            normalised.append(_with_log_mode(endpoint, field, user, project, catalog, old_handlers))
            if normalised[-1] not in previous.get("endpoints", []):
                # An endpoint kept exactly as saved before was checked (or written by an admin) then.
                check_masked_uses(user, catalog, kind, normalised[-1], field)
        except APIError as err:
            if endpoint_id not in err.message:
                err.message = f"endpoint {endpoint_id!r}: {err.message}"
            raise
    check_queue_owners(normalised, user.org_id)
    return {"endpoints": normalised}


def check_queue_owners(endpoints: list[dict], org_id: int) -> None:
    """A named queue (`predict.fraud`) belongs to the organization that named it first: its workers were started for
    that organization, and named queues have no fair share, so another organization's work may not go there (403
    naming the field). Any config of another organization counts, a draft or a published version."""
    named = {
        endpoint["pool"]["queue"]: i
        for i, endpoint in enumerate(endpoints)
        if isinstance(endpoint.get("pool"), dict) and "." in endpoint["pool"].get("queue", "")
    }
    if not named:
        return
    others = select(PublishedAsset.config).where(
        PublishedAsset.org_id != org_id, PublishedAsset.asset_type == "api_service"
    )
    other_versions = (
        select(AssetVersion.config)
        .join(PublishedAsset, PublishedAsset.id == AssetVersion.asset_id)
        .where(PublishedAsset.org_id != org_id, PublishedAsset.asset_type == "api_service")
    )
    for config in (*db.session.scalars(others), *db.session.scalars(other_versions)):
        for endpoint in (config or {}).get("endpoints", []):
            pool = endpoint.get("pool") if isinstance(endpoint, dict) else None
            queue = pool.get("queue") if isinstance(pool, dict) else None
            if queue in named:
                field = f"config.endpoints[{named[queue]}].pool.queue"
                message = f"the queue {queue} belongs to another organization; name a queue of your own"
                raise APIError(403, "permission_denied", f"{field}: {message}", {"fields": {field: [message]}})


def check_masked_uses(user: User, catalog: Catalog, kind: str, config: dict, field: str) -> None:
    """403 naming the field when a non-admin's config filters with a fixed value, joins, sorts or looks up on a
    column the saver's role sees masked or blocked (`preview_policy(user.role)`).

    Those parts of a config run for every caller, the Test pane included, so they would let the author test guesses
    against values they may not see (`like '123-45-0%'`, `gt` for a binary search, a join to a table of guesses).
    Request params are checked against each caller when the endpoint runs instead. Org admins see every value.
    """
    if has_permission(user, "org.admin"):
        return
    policy = preview_policy(user.role)
    masking = catalog.masking()

    def check(ref: ColumnRef, where: str, use: str) -> None:
        column = masking(ref.table.schema, ref.table.table).get(ref.name) or default_masking(ref.name)
        action, level = policy.action_for(column), column.sensitivity
        if action == SERVE:
            return
        seen = "blocked" if action == BLOCKED else "masked"
        message = (
            f"column {ref.name} ({level}) is {seen} for your role; only an organization admin may "
            f"{use} on it in a saved config"
        )
        raise APIError(403, "permission_denied", f"{where}: {message}", {"fields": {where: [message]}})

    if kind in ("sql", "data_api"):
        prefix = field if kind == "data_api" else f"{field}.query"
        plan = resolve_query_config(
            catalog.physical_query(config["query"] if kind == "sql" else config, prefix), warehouse.get(), prefix
        )
        for spec in plan.filters:
            if spec.param is None:
                check(spec.column, f"{spec.field}.column", "filter with a fixed value")
        for join in plan.joins:
            for i, pair in enumerate(join.on):
                for side, ref in zip(("left", "right"), pair, strict=True):
                    check(ref, f"{join.field}.on[{i}].{side}", "join")
        for order in plan.order_by:
            check(order.column, f"{order.field}.column", "sort")
    elif kind == "lookup":
        plan = resolve_query_config(catalog.physical_query(lookup_as_query(config), field), warehouse.get(), field)
        check(plan.filters[0].column, f"{field}.key_column", "look up")
    elif kind == "model":
        for j, enrichment in enumerate(config.get("enrichments") or []):
            dataset = catalog.dataset(enrichment["dataset"], f"{field}.enrichments[{j}].dataset")
            table = TableRef(dataset.name, dataset.schema_name, dataset.table_name, {})
            for k, pair in enumerate(enrichment["on"]):
                check(ColumnRef(table, pair["column"]), f"{field}.enrichments[{j}].on[{k}].column", "look up")


def _cache_ttl(endpoint: dict, field: str) -> int:
    ttl = cache_ttl_of(endpoint)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 <= ttl <= 86_400:
        raise invalid(f"{field}.cache_ttl_seconds", "an integer from 0 (off) to 86400")
    return ttl


LOG_MODES = ("metadata", "payload")


def _with_log_mode(endpoint: dict, field: str, *args) -> dict:
    """Any kind's endpoint may say what its audit records keep: `log: "metadata"` (the default: who, when, status,
    timing) or `"payload"` (also the request and the answer, clipped at AUDIT_PAYLOAD_MAX_BYTES)."""
    if "log" not in endpoint:
        return _VALIDATORS[endpoint["kind"]](endpoint, field, *args)
    if endpoint["log"] not in LOG_MODES:
        raise invalid(f"{field}.log", f"one of {', '.join(LOG_MODES)}")
    rest = {name: value for name, value in endpoint.items() if name != "log"}
    return {**_VALIDATORS[endpoint["kind"]](rest, field, *args), "log": endpoint["log"]}


def _only(endpoint: dict, field: str, allowed: set[str]) -> None:
    unknown = sorted(set(endpoint) - allowed)
    if unknown:
        raise invalid(f"{field}.{unknown[0]}", f"unknown field for a {endpoint['kind']} endpoint")


def _sql(endpoint, field, user, project, catalog, _old) -> dict:
    _only(endpoint, field, {"id", "kind", "query", "cache_ttl_seconds", "description"})
    if "query" not in endpoint:
        raise invalid(f"{field}.query", "required: a query config")
    validate_query_config(
        catalog.physical_query(endpoint["query"], f"{field}.query"), warehouse.get(), f"{field}.query"
    )
    return {**endpoint, "cache_ttl_seconds": _cache_ttl(endpoint, field)}


def _lookup(endpoint, field, user, project, catalog, _old) -> dict:
    _only(
        endpoint,
        field,
        {
            "id",
            "kind",
            "dataset",
            "key_column",
            "key_param",
            "columns",
            "max_results",
            "cache_ttl_seconds",
            "description",
        },
    )
    dataset = endpoint.get("dataset")
    if not isinstance(dataset, str) or "." not in dataset:
        raise invalid(f"{field}.dataset", "required: a dataset name schema.table")
    catalog.dataset(dataset, f"{field}.dataset")
    if not isinstance(endpoint.get("key_column"), str):
        raise invalid(f"{field}.key_column", "required: the column to match")
    key_param = endpoint.get("key_param") or DEFAULT_KEY_PARAM
    if not isinstance(key_param, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", key_param):
        raise invalid(f"{field}.key_param", "a request parameter name (letters, digits, _)")
    max_results = endpoint.get("max_results") or 100
    if not isinstance(max_results, int) or isinstance(max_results, bool) or not 1 <= max_results <= 1000:
        raise invalid(f"{field}.max_results", "an integer from 1 to 1000")
    columns = endpoint.get("columns")
    if columns is not None and not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
        raise invalid(f"{field}.columns", "null (all columns) or a list of column names")
    normal = {
        **endpoint,
        "key_param": key_param,
        "max_results": max_results,
        "columns": columns,
        "cache_ttl_seconds": _cache_ttl(endpoint, field),
    }
    query = catalog.physical_query(lookup_as_query(normal), field)
    try:
        validate_query_config(query, warehouse.get(), field)
    except APIError as err:
        # Name the lookup's own fields rather than those of the query it expands to.
        err.details = {
            "fields": {_lookup_field(field, path): msgs for path, msgs in err.details.get("fields", {}).items()}
        }
        raise
    return normal


def _lookup_field(field: str, path: str) -> str:
    for internal, public in ((".filters[0].column", ".key_column"), (".columns", ".columns")):
        if internal in path:
            return field + public
    return path


def _model(endpoint, field, user, project, catalog, _old) -> dict:
    _only(
        endpoint,
        field,
        {
            "id",
            "kind",
            "model_id",
            "description",
            "enrichments",
            "return_enriched",
            "on_bad_row",
            "explanations",
            "pool",
        },
    )
    model_id = endpoint.get("model_id")
    if not isinstance(model_id, int) or isinstance(model_id, bool):
        raise invalid(f"{field}.model_id", "required: the id of a trained model")
    model = _model_row(model_id)
    if project is None or model is None or model.project_id != project.id:
        raise invalid(f"{field}.model_id", f"model {model_id} is not a model of this project")
    normal = dict(endpoint)
    for name in ("return_enriched",):
        if name in endpoint and not isinstance(endpoint[name], bool):
            raise invalid(f"{field}.{name}", "expected true or false")
    if "on_bad_row" in endpoint and endpoint["on_bad_row"] not in ON_BAD_ROW:
        raise invalid(f"{field}.on_bad_row", f"one of {', '.join(ON_BAD_ROW)}")
    if endpoint.get("explanations") is not None:
        _explanations_default(endpoint["explanations"], f"{field}.explanations", model)
    if "enrichments" in endpoint:
        normal["enrichments"] = _enrichments(endpoint["enrichments"], f"{field}.enrichments", model, catalog)
    if endpoint.get("pool") is not None:
        normal["pool"] = validate_pool(endpoint["pool"], f"{field}.pool", "model")
    return normal


def _model_row(model_id: int):
    return db.session.execute(select(MLModel.project_id, MLModel.input_schema).where(MLModel.id == model_id)).first()


def _explanations_default(value, field: str, model) -> None:
    """The endpoint's default explanations (a request's own `explanations` replaces it)."""
    if not isinstance(value, dict) or set(value) - {"method", "top_n"}:
        raise invalid(field, 'expected {"method": "shapley", "top_n": 3}')
    if value.get("method", "shapley") not in EXPLAIN_METHODS:
        raise invalid(f"{field}.method", f"one of {', '.join(EXPLAIN_METHODS)}")
    if len(model.input_schema or []) > MAX_EXACT_FEATURES:
        raise invalid(f"{field}.method", f"exact Shapley values need a model of at most {MAX_EXACT_FEATURES} features")
    top_n = value.get("top_n", 3)
    if not isinstance(top_n, int) or isinstance(top_n, bool) or not 1 <= top_n <= MAX_EXACT_FEATURES:
        raise invalid(f"{field}.top_n", f"an integer from 1 to {MAX_EXACT_FEATURES}")


ON_BAD_ROW = ("error", "ignore")
ENRICH_POLICIES = {
    "missing_key": ("error", "ignore", "null"),
    "not_found": ("error", "ignore", "null"),
    "multiple_matches": ("error", "first"),
}
MAX_ENRICHMENTS = 10


def enrich_types_fit(source: str, target: str) -> bool:
    """Whether a warehouse column of logical type `source` may feed (or match) a feature of type `target`."""
    return source == target or (source, target) in {("integer", "float"), ("float", "integer")}


def _enrichments(value, field: str, model, catalog: Catalog) -> list[dict]:
    """`[{dataset, on: [{feature, column}], columns: {column: feature}, missing_key, not_found, multiple_matches,
    override}]` checked against the project's catalog and the model's input schema; defaults filled."""
    if not isinstance(value, list):
        raise invalid(field, "expected a list of enrichments")
    if len(value) > MAX_ENRICHMENTS:
        raise invalid(field, f"at most {MAX_ENRICHMENTS} enrichments")
    features = {f["name"]: f["type"] for f in model.input_schema or []}
    out = []
    for j, enrichment in enumerate(value):
        where = f"{field}[{j}]"
        if not isinstance(enrichment, dict):
            raise invalid(where, "expected {dataset, on, columns}")
        unknown = sorted(set(enrichment) - {"dataset", "on", "columns", "override", *ENRICH_POLICIES})
        if unknown:
            raise invalid(f"{where}.{unknown[0]}", "unknown field for an enrichment")
        dataset = catalog.dataset(enrichment.get("dataset"), f"{where}.dataset")
        columns = {c["name"]: c["type"] for c in dataset.columns or []}
        on = enrichment.get("on")
        if not isinstance(on, list) or not on or len(on) > 4:
            raise invalid(f"{where}.on", "a list of 1 to 4 {feature, column} pairs")
        for k, pair in enumerate(on):
            _enrich_pair(pair, f"{where}.on[{k}]", features, columns, matching=True)
        mapped = enrichment.get("columns")
        if not isinstance(mapped, dict) or not mapped:
            raise invalid(f"{where}.columns", "an object {column: feature} of at least one column")
        targets: set[str] = set()
        for column, feature in mapped.items():
            _enrich_pair({"column": column, "feature": feature}, f"{where}.columns.{column}", features, columns)
            if feature in targets:
                raise invalid(f"{where}.columns.{column}", f"feature {feature!r} is mapped twice")
            targets.add(feature)
        normal = {
            "dataset": enrichment["dataset"],
            "on": [dict(p) for p in on],
            "columns": dict(mapped),
            "override": enrichment.get("override", False),
        }
        if not isinstance(normal["override"], bool):
            raise invalid(f"{where}.override", "expected true or false")
        for name, allowed in ENRICH_POLICIES.items():
            normal[name] = enrichment.get(name, "error")
            if normal[name] not in allowed:
                raise invalid(f"{where}.{name}", f"one of {', '.join(allowed)}")
        out.append(normal)
    return out


def _enrich_pair(pair, where: str, features: dict, columns: dict, matching: bool = False) -> None:
    if not isinstance(pair, dict) or set(pair) != {"feature", "column"}:
        raise invalid(where, "expected {feature, column}")
    column, feature = pair["column"], pair["feature"]
    if not isinstance(column, str) or column not in columns:
        raise invalid(f"{where}.column" if matching else where, f"{column!r} is not a column of the dataset")
    # A key feature may be any value the caller sends; a looked-up value must be one the model takes.
    if not isinstance(feature, str) or (not matching and feature not in features):
        raise invalid(f"{where}.feature" if matching else where, f"{feature!r} is not a feature of the model")
    ftype = features.get(feature, columns[column])
    if not enrich_types_fit(columns[column], ftype):
        raise invalid(
            f"{where}.feature" if matching else where,
            f"column {column} ({columns[column]}) does not fit feature {feature} ({ftype})",
        )


def _function(endpoint, field, user, project, catalog, old_handlers) -> dict:
    _only(endpoint, field, {"id", "kind", "handler", "description", "pool"})
    handler = endpoint.get("handler")
    if not isinstance(handler, str):
        raise invalid(f"{field}.handler", "required: Python source defining handler(payload)")
    if old_handlers.get(endpoint["id"]) != handler and not has_permission(user, "org.admin"):
        raise forbidden(
            "only organization admins may create or change function endpoints",
            {"fields": {f"{field}.handler": ["org.admin required"]}},
        )
    check_handler_source(handler, f"{field}.handler")
    if endpoint.get("pool") is not None:
        return {**endpoint, "pool": validate_pool(endpoint["pool"], f"{field}.pool", "function")}
    return endpoint


_VALIDATORS = {"sql": _sql, "lookup": _lookup, "model": _model, "function": _function}
