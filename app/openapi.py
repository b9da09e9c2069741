"""OpenAPI 3 description built from the routes and their marshmallow schemas."""

from __future__ import annotations

import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask

_PATH_PARAM = re.compile(r"<(?:(?P<conv>[a-z]+):)?(?P<name>[a-zA-Z_]+)>")


def doc(
    summary: str,
    *,
    body=None,
    form=None,
    files: tuple[str, ...] = (),
    response=None,
    status: int = 200,
    auth: bool | str = True,
    query: dict | None = None,
    tags: list[str] | None = None,
    methods: dict[str, dict] | None = None,
    responses: dict[int, str] | None = None,
    description: str | None = None,
    headers: dict[str, str] | None = None,
    response_headers: dict[str, str] | None = None,
):
    """Describe a view for the OpenAPI document; `auth` is True (bearer), False, or "api_key".

    `body` is a JSON request body's schema; `form` and `files` describe a multipart/form-data body instead (the
    schema of its text fields, and the names of its required file fields). `methods` documents only the methods it
    names, each with its own `summary`, `description`, `query`, `body` and `response` overriding the view's (a view
    that answers other methods with 405 lists only the ones that work). `responses` adds other statuses.
    `headers` documents request headers, `response_headers` the headers of a successful answer.
    """

    def decorator(view):
        view._apiary_doc = {
            "summary": summary,
            "body": body,
            "form": form,
            "files": files,
            "response": response,
            "status": status,
            "auth": auth,
            "query": query or {},
            "tags": tags,
            "methods": methods,
            "responses": responses or {},
            "description": description,
            "headers": headers or {},
            "response_headers": response_headers or {},
        }
        return view

    return decorator


def _multipart(meta: dict) -> dict:
    files = {name: {"type": "string", "format": "binary"} for name in meta["files"]}
    return {"allOf": [meta["form"], {"type": "object", "properties": files, "required": list(files)}]}


def _query_params(query: dict) -> list[dict]:
    return [
        {"name": name, "in": "query", "required": False, "description": description, "schema": {"type": "string"}}
        for name, description in query.items()
    ]


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


# Bodies of the serving route and the Test pane, which depend on the endpoint's kind (JSON Schema, not marshmallow:
# a function endpoint takes any JSON).
_ROW = {"type": "object", "additionalProperties": True, "description": "feature name -> value"}
SERVING_SCHEMAS: dict[str, dict] = {
    "ModelFeaturesRequest": {
        "type": "object",
        "required": ["features"],
        "properties": {
            "features": _ROW,
            "explanations": {
                "type": "object",
                "properties": {"method": {"type": "string", "enum": ["shapley"]}, "top_n": {"type": "integer"}},
            },
            "context": {"type": "object", "additionalProperties": True},
        },
        "description": "model endpoint: one row to score",
    },
    "ModelRowsRequest": {
        "type": "object",
        "required": ["rows"],
        "properties": {
            "rows": {"type": "array", "items": _ROW, "maxItems": 10000},
            "explanations": {
                "type": "object",
                "properties": {"method": {"type": "string", "enum": ["shapley"]}, "top_n": {"type": "integer"}},
            },
            "context": {"type": "object", "additionalProperties": True},
        },
        "description": "model endpoint: several rows, scored together (at most PREDICT_MAX_ROWS)",
    },
    "FunctionRequest": {"description": "function endpoint: any JSON value, passed to handler(payload)"},
    "RowsResponse": {
        "type": "object",
        "properties": {
            "rows": {"type": "array", "items": {"type": "object", "additionalProperties": True}},
            "count": {"type": "integer"},
            "limit": {"type": "integer", "description": "sql only"},
            "offset": {"type": "integer", "description": "sql only"},
        },
        "description": "sql and lookup endpoints",
    },
    "PredictionsResponse": {
        "type": "object",
        "properties": {
            "predictions": {"type": "array", "items": {}},
            "probabilities": {"type": "array", "items": {}},
            "model_id": {"type": "integer"},
            "count": {"type": "integer"},
            "probability_percentiles": {
                "type": "array",
                "items": {},
                "description": "classifiers trained with score quantiles",
            },
            "explanations": {
                "type": "array",
                "items": {},
                "description": "per row {base, output, contributions, others}",
            },
            "enriched": {"type": "array", "items": {}, "description": "return_enriched: final feature rows"},
        },
        "description": "model endpoints; a skipped row answers {ignored: true, reason} in place in predictions",
    },
    "FunctionResponse": {"type": "object", "properties": {"result": {}}, "description": "function endpoints"},
    "TestParamsRequest": {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": "Test pane, sql and lookup endpoints: the request's query parameters as one object",
    },
}
SERVING_BODY = {"oneOf": [ref("ModelFeaturesRequest"), ref("ModelRowsRequest"), ref("FunctionRequest")]}
SERVING_RESPONSE = {"oneOf": [ref("PredictionsResponse"), ref("FunctionResponse")]}
TEST_BODY = {"oneOf": [ref("TestParamsRequest"), *SERVING_BODY["oneOf"]]}
TEST_RESPONSE = {
    "description": "the serving answer plus `dry: true`",
    "allOf": [
        {"oneOf": [ref("RowsResponse"), *SERVING_RESPONSE["oneOf"]]},
        {"type": "object", "properties": {"dry": {"type": "boolean", "enum": [True]}}},
    ],
}


def _error_response(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def build_spec(app: Flask) -> dict:
    spec = APISpec(
        title="Apiary",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={
            "description": "Warehouse tables, lookups, scikit-learn models and Python functions as key-gated REST endpoints."
            " Serving always needs an X-API-Key: an asset's is_public never lifts it."
        },
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme("api_key", {"type": "apiKey", "in": "header", "name": "X-API-Key"})
    spec.components.schema(
        "Error",
        {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "details": {"type": "object"},
                    },
                }
            },
        },
    )
    for name, schema in SERVING_SCHEMAS.items():
        spec.components.schema(name, schema)
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        # The console's HTML pages and static files are not part of the API.
        if rule.endpoint == "static" or rule.endpoint.startswith("console."):
            continue
        view = app.view_functions[rule.endpoint]
        meta = getattr(view, "_apiary_doc", None) or {
            "summary": (view.__doc__ or rule.endpoint).strip().splitlines()[0]
        }
        path = _PATH_PARAM.sub(lambda m: "{" + m.group("name") + "}", rule.rule)
        params = [
            {
                "name": m.group("name"),
                "in": "path",
                "required": True,
                "schema": {"type": "integer" if m.group("conv") == "int" else "string"},
            }
            for m in _PATH_PARAM.finditer(rule.rule)
        ]
        base, per_method = meta, meta.get("methods")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if per_method is not None and method not in per_method:
                continue
            meta = {**base, **(per_method or {}).get(method, {})}
            operation: dict = {
                "summary": meta["summary"],
                "operationId": f"{rule.endpoint}.{method.lower()}",
                "parameters": params
                + _query_params(meta.get("query") or {})
                + [
                    {"name": name, "in": "header", "required": False, "description": text, "schema": {"type": "string"}}
                    for name, text in (meta.get("headers") or {}).items()
                ],
            }
            if meta.get("description"):
                operation["description"] = meta["description"]
            operation["tags"] = meta.get("tags") or [rule.endpoint.split(".")[0]]
            status = str(meta.get("status", 200))
            response_schema = meta.get("response")
            ok: dict = {"description": "success"}
            if response_schema is not None:
                ok["content"] = {"application/json": {"schema": response_schema}}
            if meta.get("response_headers"):
                ok["headers"] = {
                    name: {"description": text, "schema": {"type": "string"}}
                    for name, text in meta["response_headers"].items()
                }
            operation["responses"] = {status: ok, "default": _error_response("error envelope")}
            for extra, description in (meta.get("responses") or {}).items():
                operation["responses"].setdefault(str(extra), {"description": description})
            if meta.get("body") is not None:
                operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": meta["body"]}}}
            if meta.get("form") is not None:
                operation["requestBody"] = {
                    "required": True,
                    "content": {"multipart/form-data": {"schema": _multipart(meta)}},
                }
            auth = meta.get("auth", True)
            if auth == "api_key":
                operation["security"] = [{"api_key": []}]
            elif auth:
                operation["security"] = [{"bearer": []}]
            else:
                operation["security"] = []
            paths.setdefault(path, {})[method.lower()] = operation
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()
