"""The endpoint editor: an endpoint of a service config to form values and back, kind by kind."""

from __future__ import annotations

import json

from app.console.forms import FormErrors, comma_list, text

KINDS = ("sql", "lookup", "model", "function")
KIND_LABELS = {"sql": "SQL query", "lookup": "Lookup", "model": "Model", "function": "Function"}
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "sql": ("query", "cache_ttl_seconds"),
    "lookup": ("dataset", "key_column", "key_param", "columns", "max_results", "cache_ttl_seconds"),
    "model": ("model_id",),
    "function": ("handler",),
}
EVERY_FIELD = {name for names in KIND_FIELDS.values() for name in names}
HANDLER_TEMPLATE = 'def handler(payload):\n    return {"echo": payload}\n'


def form_values(endpoint: dict | None) -> dict[str, str]:
    """Strings for every input of the editor; an empty editor when `endpoint` is None."""
    endpoint = endpoint or {}
    query = endpoint.get("query")
    return {
        "id": endpoint.get("id", ""),
        "kind": endpoint.get("kind", "lookup"),
        "description": endpoint.get("description", ""),
        "query": json.dumps(query, indent=2) if query is not None else "",
        "dataset": endpoint.get("dataset", ""),
        "key_column": endpoint.get("key_column", ""),
        "key_param": endpoint.get("key_param", "id"),
        "columns": ", ".join(endpoint.get("columns") or []),
        "max_results": str(endpoint.get("max_results", 100)),
        "model_id": str(endpoint.get("model_id", "")),
        "handler": endpoint.get("handler", HANDLER_TEMPLATE),
        "cache_ttl_seconds": str(endpoint.get("cache_ttl_seconds", 60)),
    }


def posted_values(form) -> dict[str, str]:
    """What was typed, to show again next to the errors."""
    values = {name: text(form, name) for name in form_values(None)}
    values["handler"] = (form.get("handler") or "").replace("\r\n", "\n")
    return values


def _integer(values: dict, name: str, errors: FormErrors) -> int | None:
    try:
        return int(values[name])
    except ValueError:
        errors.add(name, "enter a whole number")
        return None


def endpoint_from_form(values: dict[str, str], existing: dict | None, errors: FormErrors) -> dict | None:
    """The endpoint to save: `existing` (same kind) with the editor's fields written over it, or None on errors.

    Fields the editor does not show (kept by read-modify-write) survive an edit that keeps the kind.
    """
    kind = values["kind"]
    if kind not in KINDS:
        errors.add("kind", f"choose one of {', '.join(KINDS)}")
        return None
    if not values["id"]:
        errors.add("id", "required: the last part of the endpoint's URL")
    base = dict(existing) if existing and existing.get("kind") == kind else {}
    endpoint = {k: v for k, v in base.items() if k not in EVERY_FIELD or k in KIND_FIELDS[kind]}
    endpoint.update(id=values["id"], kind=kind)
    if values["description"]:
        endpoint["description"] = values["description"]
    else:
        endpoint.pop("description", None)
    if kind == "sql":
        try:
            query = json.loads(values["query"] or "null")
        except (ValueError, RecursionError) as exc:  # RecursionError: nested thousands deep
            errors.add("query", f"not valid JSON: {exc}")
        else:
            if not isinstance(query, dict):
                errors.add("query", 'expected a JSON object such as {"source": {"schema": "uploads", "table": "t"}}')
            endpoint["query"] = query
    elif kind == "lookup":
        endpoint.update(dataset=values["dataset"], key_column=values["key_column"],
                        key_param=values["key_param"] or "id", columns=comma_list(values["columns"]) or None)  # fmt: skip
        if not values["dataset"]:
            errors.add("dataset", "choose the dataset to look rows up in")
        if not values["key_column"]:
            errors.add("key_column", "required: the column to match")
        endpoint["max_results"] = _integer(values, "max_results", errors) if values["max_results"] else 100
    elif kind == "model":
        if not values["model_id"]:
            errors.add("model_id", "choose a trained model")
        else:
            endpoint["model_id"] = _integer(values, "model_id", errors)
    else:
        if not values["handler"].strip():
            errors.add("handler", "required: Python source defining handler(payload)")
        endpoint["handler"] = values["handler"]
    if kind in ("sql", "lookup") and values["cache_ttl_seconds"]:
        endpoint["cache_ttl_seconds"] = _integer(values, "cache_ttl_seconds", errors)
    return None if errors else endpoint
