"""The endpoint editor: an endpoint of a service config to form values and back, kind by kind."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from app.console.forms import FormErrors, comma_list, text
from app.publishing.endpoint_config import DEFAULT_CACHE_TTL, DEFAULT_KEY_PARAM, KINDS

KIND_LABELS = {"sql": "SQL query", "lookup": "Lookup", "model": "Model", "function": "Function"}
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "sql": ("query", "cache_ttl_seconds"),
    "lookup": ("dataset", "key_column", "key_param", "columns", "max_results", "cache_ttl_seconds"),
    "model": ("model_id", "enrichments", "return_enriched", "on_bad_row", "explanations"),
    "function": ("handler",),
}
EVERY_FIELD = {name for names in KIND_FIELDS.values() for name in names}
HANDLER_TEMPLATE = 'def handler(payload):\n    return {"echo": payload}\n'
POLICIES = {
    "missing_key": ("error", "ignore", "null"),
    "not_found": ("error", "ignore", "null"),
    "multiple_matches": ("error", "first"),
}
ENRICHMENT_FIELD = re.compile(r"^enr-(\d{1,2})-dataset$")


def _pairs_text(pairs: list[tuple[str, str]]) -> str:
    return ", ".join(a if a == b else f"{a}={b}" for a, b in pairs)


def _pairs(value: str) -> list[tuple[str, str]]:
    """`a=b, c` as [("a", "b"), ("c", "c")]: a name alone stands for the same name on both sides."""
    out = []
    for part in comma_list(value):
        left, sep, right = part.partition("=")
        out.append((left.strip(), right.strip() if sep else left.strip()))
    return out


def enrichment_values(enrichment: dict | None) -> dict[str, str]:
    """One enrichment of the config as the strings of its block in the editor (an empty block for None)."""
    e = enrichment or {}
    on = [(p.get("feature", ""), p.get("column", "")) for p in e.get("on") or [] if isinstance(p, dict)]
    columns = list((e.get("columns") or {}).items()) if isinstance(e.get("columns"), dict) else []
    values = {
        "dataset": str(e.get("dataset") or ""),
        "on": _pairs_text(on),
        "columns": _pairs_text(columns),
        "override": "on" if e.get("override") else "",
        "remove": "",
    }
    values.update({name: str(e.get(name) or "error") for name in POLICIES})
    return values


def form_values(endpoint: Mapping | None) -> dict[str, str]:
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
        "key_param": endpoint.get("key_param", DEFAULT_KEY_PARAM),
        "columns": ", ".join(endpoint.get("columns") or []),
        "max_results": str(endpoint.get("max_results", 100)),
        "model_id": str(endpoint.get("model_id", "")),
        "handler": endpoint.get("handler", HANDLER_TEMPLATE),
        "cache_ttl_seconds": str(endpoint.get("cache_ttl_seconds", DEFAULT_CACHE_TTL)),
        "return_enriched": "on" if endpoint.get("return_enriched") else "",
        "on_bad_row": str(endpoint.get("on_bad_row") or "error"),
        "explanations": str((endpoint.get("explanations") or {}).get("top_n", 3))
        if endpoint.get("explanations")
        else "",
        "enrichments": [enrichment_values(e) for e in endpoint.get("enrichments") or [] if isinstance(e, dict)],
    }


def posted_values(form) -> dict[str, str]:
    """What was typed, to show again next to the errors."""
    values = {name: text(form, name) for name in form_values(None) if name != "enrichments"}
    values["handler"] = (form.get("handler") or "").replace("\r\n", "\n")
    blocks = sorted(int(m.group(1)) for m in map(ENRICHMENT_FIELD.match, form) if m)
    values["enrichments"] = [{name: text(form, f"enr-{n}-{name}") for name in enrichment_values(None)} for n in blocks]
    return values


def _enrichments_from_form(values: dict, errors: FormErrors) -> tuple[list[dict], list[int]]:
    """The enrichments to save and, for each, the number of its block in the editor (to put errors next to it).

    A block marked for removal, or left empty (the blank "add" block), is dropped."""
    out, blocks = [], []
    for n, block in enumerate(values.get("enrichments") or []):
        if block.get("remove") or not (block.get("dataset") or block.get("on") or block.get("columns")):
            continue
        if not block.get("dataset"):
            errors.add(f"enr-{n}-dataset", "choose the dataset to look features up in")
        enrichment = {
            "dataset": block.get("dataset", ""),
            "on": [{"feature": f, "column": c} for f, c in _pairs(block.get("on", ""))],
            "columns": dict(_pairs(block.get("columns", ""))),
            "override": bool(block.get("override")),
        }
        enrichment.update({name: block.get(name) or "error" for name in POLICIES})
        out.append(enrichment)
        blocks.append(n)
    return out, blocks


def enrichment_error_paths(fields: dict, prefix: str, blocks: list[int]) -> dict:
    """An API error's `details.fields` with `{prefix}enrichments[j].rest` renamed to the editor's block fields
    (`{prefix}enr-{n}-on` + `[0].column`), so `from_api_error` puts each message next to its block's input."""
    pattern = re.compile(re.escape(prefix) + r"enrichments\[(\d+)\](?:\.(\w+))?(.*)$")
    renamed = {}
    for path, messages in fields.items():
        m = pattern.match(path)
        if m and int(m.group(1)) < len(blocks):
            name = m.group(2) if m.group(2) in ("dataset", "on", "columns", "override", *POLICIES) else "dataset"
            rest = m.group(3) if m.group(2) == name else (f".{m.group(2)}" if m.group(2) else "") + m.group(3)
            path = f"{prefix}enr-{blocks[int(m.group(1))]}-{name}{rest}"
        renamed.setdefault(path, []).extend(messages)
    return renamed


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
        endpoint.update(
            dataset=values["dataset"],
            key_column=values["key_column"],
            key_param=values["key_param"] or "id",
            columns=comma_list(values["columns"]) or None,
        )
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
        enrichments, blocks = _enrichments_from_form(values, errors)
        values["_enrichment_blocks"] = blocks
        for name, value in (
            ("enrichments", enrichments or None),
            ("return_enriched", bool(values["return_enriched"])),
            ("on_bad_row", None if values["on_bad_row"] in ("", "error") else values["on_bad_row"]),
        ):
            if value:
                endpoint[name] = value
            else:
                endpoint.pop(name, None)
        if values["explanations"]:
            top_n = _integer(values, "explanations", errors)
            endpoint["explanations"] = {"method": "shapley", "top_n": top_n}
        else:
            endpoint.pop("explanations", None)
    else:
        if not values["handler"].strip():
            errors.add("handler", "required: Python source defining handler(payload)")
        endpoint["handler"] = values["handler"]
    if kind in ("sql", "lookup") and values["cache_ttl_seconds"]:
        endpoint["cache_ttl_seconds"] = _integer(values, "cache_ttl_seconds", errors)
    return None if errors else endpoint
