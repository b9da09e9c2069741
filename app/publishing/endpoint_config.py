"""An API service's endpoint config parsed once into a frozen `Endpoint`, read by serving, the Test pane and the console."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

KINDS = ("sql", "lookup", "model", "function")
KIND_METHODS = {"sql": "GET", "lookup": "GET", "model": "POST", "function": "POST"}
QUERY_KINDS = ("sql", "lookup")  # answered by a governed query, called with GET, result-cached
DEFAULT_CACHE_TTL = 60  # seconds a sql/lookup endpoint's (or a data API's) result is cached when not configured
DEFAULT_KEY_PARAM = "id"  # the query param a lookup reads its key from when not configured


def cache_ttl_of(config: Mapping) -> int:
    """The configured `cache_ttl_seconds` of an endpoint or a data API's config, else the default (0 = off)."""
    return config.get("cache_ttl_seconds", DEFAULT_CACHE_TTL)


def lookup_as_query(endpoint: Mapping) -> dict:
    """A lookup is sugar for one required equality filter on key_column, capped at max_results rows."""
    schema, _, table = endpoint["dataset"].partition(".")
    query = {
        "source": {"schema": schema, "table": table},
        "filters": [{"column": endpoint["key_column"], "op": "eq", "param": endpoint["key_param"], "required": True}],
        "pagination": {"default_limit": endpoint["max_results"], "max_limit": endpoint["max_results"]},
    }
    if endpoint.get("columns"):
        query["columns"] = endpoint["columns"]
    return query


@dataclass(frozen=True)
class Endpoint:
    """One endpoint of a (validated) service config.

    `query` is what a sql endpoint runs, or the one-filter query a lookup stands for; `cache_ttl` is 0 for the kinds
    never result-cached (model, function). Kind-specific fields with no attribute here (enrichments, explanations,
    on_bad_row, ...) are read from `raw`, the config as saved (read-only), or through `get`.
    """

    id: str
    kind: str
    method: str  # the HTTP method the kind is called with (a model endpoint also answers GET for one row)
    cache_ttl: int
    query: Mapping | None = None  # sql, lookup
    key_param: str | None = None  # lookup
    model_id: int | None = None  # model
    handler: str | None = None  # function
    raw: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def parse(cls, raw: Mapping) -> Endpoint:
        kind = raw.get("kind")
        query = None
        if kind == "sql":
            query = raw.get("query")
        elif kind == "lookup":
            try:
                query = lookup_as_query(raw)
            except (KeyError, AttributeError, TypeError):
                query = None  # not a valid lookup (configs are checked on save): running it fails as before
        return cls(
            id=raw.get("id"),
            kind=kind,
            method=KIND_METHODS.get(kind, "POST"),
            cache_ttl=cache_ttl_of(raw) if kind in QUERY_KINDS else 0,
            query=query,
            key_param=(raw.get("key_param") or DEFAULT_KEY_PARAM) if kind == "lookup" else None,
            model_id=raw.get("model_id") if kind == "model" else None,
            handler=raw.get("handler") if kind == "function" else None,
            raw=MappingProxyType(dict(raw)),
        )

    @property
    def answers_with_query(self) -> bool:
        """Whether a governed query answers it (sql, lookup): called with GET, its result cached."""
        return self.kind in QUERY_KINDS

    def get(self, name: str, default: Any = None) -> Any:
        """A field of the saved config (for the kind-specific ones without an attribute)."""
        return self.raw.get(name, default)


def endpoint_dicts(config: Mapping | None) -> list[dict]:
    """The endpoint objects of a service config as saved (anything else in the list skipped)."""
    return [ep for ep in (config or {}).get("endpoints", []) if isinstance(ep, dict)]


def endpoint_index(config: Mapping | None, endpoint_id: str) -> int | None:
    """Where the endpoint `endpoint_id` sits in the config's `endpoints` list (None when it has none)."""
    for i, ep in enumerate((config or {}).get("endpoints", [])):
        if isinstance(ep, dict) and ep.get("id") == endpoint_id:
            return i
    return None


def endpoint_of(config: Mapping | None, endpoint_id: str) -> Endpoint | None:
    """The endpoint `endpoint_id` of a service config, parsed; None when the config has none with that id."""
    at = endpoint_index(config, endpoint_id)
    return None if at is None else Endpoint.parse(config["endpoints"][at])


def endpoints_in(config: Mapping | None) -> Iterator[Endpoint]:
    """Every endpoint of a service config, parsed, in order."""
    return (Endpoint.parse(ep) for ep in endpoint_dicts(config))
