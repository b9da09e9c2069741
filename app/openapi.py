"""OpenAPI 3 description built from the routes and their marshmallow schemas."""

from __future__ import annotations

import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask

_PATH_PARAM = re.compile(r"<(?:(?P<conv>[a-z]+):)?(?P<name>[a-zA-Z_]+)>")


def doc(summary: str, *, body=None, form=None, files: tuple[str, ...] = (), response=None, status: int = 200,
        auth: bool | str = True, query: dict | None = None, tags: list[str] | None = None):  # fmt: skip
    """Describe a view for the OpenAPI document; `auth` is True (bearer), False, or "api_key".

    `body` is a JSON request body's schema; `form` and `files` describe a multipart/form-data body instead (the
    schema of its text fields, and the names of its required file fields).
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
        }
        return view

    return decorator


def _multipart(meta: dict) -> dict:
    files = {name: {"type": "string", "format": "binary"} for name in meta["files"]}
    return {"allOf": [meta["form"], {"type": "object", "properties": files, "required": list(files)}]}


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
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        meta = getattr(view, "_apiary_doc", None) or {
            "summary": (view.__doc__ or rule.endpoint).strip().splitlines()[0]
        }
        path = _PATH_PARAM.sub(lambda m: "{" + m.group("name") + "}", rule.rule)
        params = [
            {"name": m.group("name"), "in": "path", "required": True,
             "schema": {"type": "integer" if m.group("conv") == "int" else "string"}}
            for m in _PATH_PARAM.finditer(rule.rule)
        ]  # fmt: skip
        for name, description in meta.get("query", {}).items():
            params.append(
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "description": description,
                    "schema": {"type": "string"},
                }
            )
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation: dict = {
                "summary": meta["summary"],
                "operationId": f"{rule.endpoint}.{method.lower()}",
                "parameters": params,
            }
            operation["tags"] = meta.get("tags") or [rule.endpoint.split(".")[0]]
            status = str(meta.get("status", 200))
            response_schema = meta.get("response")
            ok: dict = {"description": "success"}
            if response_schema is not None:
                ok["content"] = {"application/json": {"schema": response_schema}}
            operation["responses"] = {status: ok, "default": _error_response("error envelope")}
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
