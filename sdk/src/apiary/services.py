"""Published assets: the shared PublishedAsset handle (draft edits, publish, versions, rollback, diff, keys, logs,
delete), the APIService (endpoints, calls, dry runs) and the DataAPI (one governed query)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from apiary.endpoints import Endpoint
from apiary.transport import Transport


@dataclass
class ApiKey:
    """A data-API key; `key` holds the full `dk_…` secret only on the object `create_key` returns."""

    id: int
    name: str
    prefix: str
    key: str | None = None
    rate_limit: int | None = None
    expires_at: str | None = None
    masking_level: str | None = None
    sensitivity_max: str | None = None
    allowed_columns: list[str] = field(default_factory=list)
    allowed_endpoints: list[str] | None = None
    row_scope: dict[str, Any] | None = None
    is_active: bool = True
    last_used_at: str | None = None
    created_at: str | None = None
    rotated_at: str | None = None
    grace_expires_at: str | None = None
    can_force_version: bool = False

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> ApiKey:
        return cls(
            id=body["id"],
            name=body.get("name", ""),
            prefix=body.get("prefix", ""),
            key=body.get("key"),
            rate_limit=body.get("rate_limit"),
            expires_at=body.get("expires_at"),
            masking_level=body.get("masking_level"),
            sensitivity_max=body.get("sensitivity_max"),
            allowed_columns=list(body.get("allowed_columns") or []),
            allowed_endpoints=body.get("allowed_endpoints"),
            row_scope=body.get("row_scope"),
            is_active=bool(body.get("is_active", True)),
            last_used_at=body.get("last_used_at"),
            created_at=body.get("created_at"),
            rotated_at=body.get("rotated_at"),
            grace_expires_at=body.get("grace_expires_at"),
            can_force_version=bool(body.get("can_force_version")),
        )


@dataclass
class Version:
    """One published version of a service, as listed newest first."""

    id: int
    version: int
    published_by: str | None
    change_note: str | None
    created_at: str | None


@dataclass
class LogEntry:
    """One audited serving call."""

    id: int
    created_at: str
    endpoint_id: str | None
    key_id: int | None
    method: str
    status: int
    latency_ms: float
    model_id: int | None = None
    error_code: str | None = None
    context: dict[str, Any] | None = None  # the caller's `context` of a model call
    version: int | None = None  # the published version that answered (or ran the shadow call)
    shadow: bool = False  # a shadow run of the call `call_id`, never answered to anyone
    call_id: str | None = None
    summary: dict[str, Any] | None = None  # the answer in brief: predictions, or a function result's digest


@dataclass
class Routing:
    """How calls are split over published versions: `entries` maps version -> weight (summing to 100)."""

    strategy: str
    entries: dict[int, int]
    shadow_version: int | None = None
    changes: list[dict[str, Any]] = field(default_factory=list)  # newest first: {changed_by, changed_at, before, after}

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Routing:
        return cls(
            strategy=body.get("strategy", "single"),
            entries={int(e["version"]): int(e["weight"]) for e in body.get("entries") or []},
            shadow_version=body.get("shadow_version"),
            changes=list(body.get("changes") or []),
        )


@dataclass
class LogPage:
    """A page of the audit log, newest first; `total` counts every matching call."""

    items: list[LogEntry]
    total: int
    limit: int
    offset: int


_UNSET: Any = object()


def presentation_fields(
    theme: Mapping[str, Any] | None = None,
    roles: Sequence[str] | None = None,
    is_public: bool | None = None,
    icon: str | None = None,
    sort_order: int | None = None,
) -> dict[str, Any]:
    """The asset fields that shape lists and the console (None = leave out, the server's default)."""
    fields_ = {
        "theme": dict(theme) if theme is not None else None,
        "roles": list(roles) if roles is not None else None,
        "is_public": is_public,
        "icon": icon,
        "sort_order": sort_order,
    }
    return {k: v for k, v in fields_.items() if v is not None}


class PublishedAsset:
    """A published asset (an `api_service` or a `data_api`): edits change the draft; callers see them after
    `publish()`. `roles` limits which org roles see it in lists and the console (empty = every role);
    `is_public` never lifts the key requirement of serving."""

    def __init__(self, transport: Transport, body: Mapping[str, Any]):
        self._transport = transport
        self._load(body)

    def _load(self, body: Mapping[str, Any]) -> None:
        self.id: int = body["id"]
        self.asset_key: str = body["asset_key"]
        self.asset_type: str = body.get("asset_type", "")
        self.title: str = body.get("title", "")
        self.description: str = body.get("description", "")
        self.status: str = body.get("status", "draft")
        self.config: dict[str, Any] = dict(body.get("config") or {})
        self.project_id: int | None = body.get("project_id")
        self.published_version: int | None = body.get("published_version")
        self.theme: dict[str, Any] = dict(body.get("theme") or {})
        self.roles: list[str] = list(body.get("roles") or [])
        self.is_public: bool = bool(body.get("is_public"))
        self.icon: str = body.get("icon") or ""
        self.sort_order: int = body.get("sort_order") or 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.asset_key!r} {self.status}>"

    @property
    def _path(self) -> str:
        return f"/api/publish/assets/{self.id}"

    def refresh(self) -> PublishedAsset:
        """Re-read the asset from the server."""
        self._load(self._transport.request("GET", self._path))
        return self

    def update(
        self,
        *,
        title: str | None = None,
        description: str | None = None,
        config: Mapping[str, Any] | None = None,
        change_note: str = "",
        theme: Mapping[str, Any] | None = None,
        roles: Sequence[str] | None = None,
        is_public: bool | None = None,
        icon: str | None = None,
        sort_order: int | None = None,
    ) -> PublishedAsset:
        """Edit the draft (only what is given changes); serving keeps the published version until `publish()`."""
        body: dict[str, Any] = {"change_note": change_note}
        if title is not None:
            body["title"] = title
        if description is not None:
            body["description"] = description
        if config is not None:
            body["config"] = dict(config)
        body.update(presentation_fields(theme, roles, is_public, icon, sort_order))
        self._load(self._transport.request("PUT", self._path, json=body))
        return self

    def publish(self, change_note: str | None = None, *, activate: bool = True) -> PublishedAsset:
        """Publish the draft as a new version; it becomes callable with keys. With `activate=False` the version is
        made but takes no traffic until `set_routing` sends it some (the asset must already be published)."""
        body: dict[str, Any] = {"change_note": change_note} if change_note is not None else {}
        if not activate:
            body["activate"] = False
        self._transport.request("POST", f"{self._path}/publish", json=body)
        return self.refresh()

    def routing(self) -> Routing:
        """The routing in force, with its latest changes (who, when, before and after)."""
        return Routing.from_json(self._transport.request("GET", f"{self._path}/routing"))

    def set_routing(
        self,
        entries: Mapping[int, int] | int,
        *,
        strategy: str | None = None,
        shadow_version: int | None = None,
    ) -> Routing:
        """Split calls over published versions: `entries` maps version -> weight (positive, summing to 100), or is
        one version number for all the traffic. `strategy`: "single", "random" (by weight per call) or "hash"
        (sticky by the caller's dispatch key); default "single" for one version, else "random". `shadow_version`
        (org admin) runs model and function calls again on that version after answering. Effective on the next
        call on every server; a bad routing raises ValidationError naming the field."""
        weights = {int(entries): 100} if isinstance(entries, int) else {int(v): int(w) for v, w in entries.items()}
        body = {
            "strategy": strategy or ("single" if len(weights) == 1 else "random"),
            "entries": [{"version": v, "weight": w} for v, w in sorted(weights.items())],
            "shadow_version": shadow_version,
        }
        routing = Routing.from_json(self._transport.request("PUT", f"{self._path}/routing", json=body))
        self.refresh()
        return routing

    def compare(
        self,
        a: int,
        b: int,
        *,
        since: str | None = None,
        until: str | None = None,
        endpoint_id: str | None = None,
    ) -> dict[str, Any]:
        """Two versions side by side from the audit log: `{versions: [{version, calls, errors, error_rate, p50_ms,
        p99_ms, shadow_runs, predictions}, ...], shadow: {pairs, agreement_rate, mean_abs_diff, ...}}`."""
        params: dict[str, Any] = {"a": int(a), "b": int(b)}
        extra = {"since": since, "until": until, "endpoint_id": endpoint_id}
        params.update({k: v for k, v in extra.items() if v is not None})
        return self._transport.request("GET", f"/api/api-services/{self.id}/versions/compare", params=params)

    def unpublish(self) -> PublishedAsset:
        """Stop serving; the asset goes back to draft and every call answers 404."""
        self._transport.request("POST", f"{self._path}/unpublish")
        return self.refresh()

    def delete(self, *, force: bool = False) -> None:
        """Delete the asset with its versions and keys. A published asset raises ConflictError unless `force`
        (org admins only); its audit log stays readable by org admins (`logs()` still works for them)."""
        self._transport.request("DELETE", self._path, params={"force": "true"} if force else None)
        self.status = "deleted"

    def versions(self) -> list[Version]:
        """Every published version, newest first."""
        body = self._transport.request("GET", self._path)
        self._load(body)
        return [
            Version(v["id"], v["version"], v.get("published_by"), v.get("change_note"), v.get("created_at"))
            for v in body.get("versions") or []
        ]

    def rollback(self, version: int) -> PublishedAsset:
        """Re-publish old `version` as a new version (org admin)."""
        self._transport.request("POST", f"{self._path}/rollback/{int(version)}")
        return self.refresh()

    def diff(self, a: int, b: int) -> dict[str, Any]:
        """What changed between versions `a` and `b`: `{left, right, diff: [{path, kind, left, right}]}`."""
        return self._transport.request("GET", f"{self._path}/versions/{int(a)}/diff/{int(b)}")

    def create_key(
        self,
        name: str,
        *,
        allowed_endpoints: Sequence[str] | None = None,
        rate_limit: int | None = None,
        expires_days: int | None = None,
        masking_level: str | None = None,
        allowed_columns: Sequence[str] | None = None,
        sensitivity_max: str | None = None,
        row_scope: Mapping[str, Any] | None = None,
        can_force_version: bool = False,
    ) -> ApiKey:
        """Mint a `dk_…` key; the full secret is on the result's `.key`, this once.

        Arguments left as None take the server's defaults: every endpoint, 100 requests per minute, expiry in
        90 days (`expires_days=0` never expires), `masked`, every column, sensitivity up to `medium`.
        `can_force_version=True` lets the key pin calls to a published version (`call(..., version=N)`).
        """
        body: dict[str, Any] = {"name": name}
        optional = {
            "allowed_endpoints": list(allowed_endpoints) if allowed_endpoints is not None else None,
            "rate_limit": rate_limit,
            "expires_days": expires_days,
            "masking_level": masking_level,
            "allowed_columns": list(allowed_columns) if allowed_columns is not None else None,
            "sensitivity_max": sensitivity_max,
            "row_scope": dict(row_scope) if row_scope is not None else None,
            "can_force_version": True if can_force_version else None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return ApiKey.from_json(self._transport.request("POST", f"{self._path}/api-keys", json=body))

    def list_keys(self) -> list[ApiKey]:
        """The asset's keys, with their prefixes (never the secrets)."""
        body = self._transport.request("GET", f"{self._path}/api-keys")
        return [ApiKey.from_json(item) for item in body.get("items") or []]

    def revoke_key(self, key: int | ApiKey) -> None:
        """Revoke a key (by id or object); effective at once on every server."""
        key_id = key.id if isinstance(key, ApiKey) else int(key)
        self._transport.request("DELETE", f"{self._path}/api-keys/{key_id}")

    def update_key(
        self,
        key: int | ApiKey,
        *,
        name: str | None = None,
        rate_limit: int | None = None,
        expires_days: int | None = _UNSET,
        masking_level: str | None = None,
        sensitivity_max: str | None = None,
        allowed_columns: Sequence[str] | None = None,
        allowed_endpoints: Sequence[str] | None = _UNSET,
        row_scope: Mapping[str, Any] | None = _UNSET,
        can_force_version: bool | None = None,
    ) -> ApiKey:
        """Change a key; only the arguments given change, checked as at minting. Effective on the key's next
        call on every server, and no answer cached under the old settings is served under the new ones.

        `expires_days` counts from now (0 or None: never); `allowed_endpoints=None` opens every endpoint again,
        `row_scope=None` drops the row scope, `allowed_columns=[]` allows every column. The result has no secret.
        """
        key_id = key.id if isinstance(key, ApiKey) else int(key)
        body: dict[str, Any] = {}
        for field_name, value in (
            ("name", name),
            ("rate_limit", rate_limit),
            ("masking_level", masking_level),
            ("sensitivity_max", sensitivity_max),
            ("can_force_version", can_force_version),
        ):
            if value is not None:
                body[field_name] = value
        if allowed_columns is not None:
            body["allowed_columns"] = list(allowed_columns)
        if expires_days is not _UNSET:
            body["expires_days"] = expires_days
        if allowed_endpoints is not _UNSET:
            body["allowed_endpoints"] = list(allowed_endpoints) if allowed_endpoints is not None else None
        if row_scope is not _UNSET:
            body["row_scope"] = dict(row_scope) if row_scope is not None else None
        return ApiKey.from_json(self._transport.request("PATCH", f"{self._path}/api-keys/{key_id}", json=body))

    def rotate_key(self, key: int | ApiKey, *, grace_seconds: int = 0) -> ApiKey:
        """A new secret for the key, on the result's `.key` this once; the old secret keeps working
        `grace_seconds` more (0 to 86,400; 0 stops it at once)."""
        key_id = key.id if isinstance(key, ApiKey) else int(key)
        path = f"{self._path}/api-keys/{key_id}/rotate"
        return ApiKey.from_json(self._transport.request("POST", path, json={"grace_seconds": int(grace_seconds)}))

    def logs(
        self,
        *,
        endpoint_id: str | None = None,
        key_id: int | None = None,
        status: int | None = None,
        errors_only: bool = False,
        since: str | None = None,
        until: str | None = None,
        limit: int = 100,
        offset: int = 0,
        version: int | None = None,
        shadow: bool | None = None,
    ) -> LogPage:
        """The audit log of calls to this service, newest first (written by a worker within seconds); `version`
        keeps the calls one version answered, `shadow=True` only shadow runs (False: only answered calls)."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if errors_only:
            params["errors_only"] = "true"
        if shadow is not None:
            params["shadow"] = "true" if shadow else "false"
        extra = {
            "endpoint_id": endpoint_id,
            "key_id": key_id,
            "status": status,
            "since": since,
            "until": until,
            "version": version,
        }
        params.update({k: v for k, v in extra.items() if v is not None})
        body = self._transport.request("GET", f"/api/api-services/{self.id}/logs", params=params)
        items = [
            LogEntry(
                id=i["id"],
                created_at=i.get("created_at", ""),
                endpoint_id=i.get("endpoint_id"),
                key_id=i.get("key_id"),
                method=i.get("method", ""),
                status=i["status"],
                latency_ms=i.get("latency_ms", 0.0),
                model_id=i.get("model_id"),
                error_code=i.get("error_code"),
                context=i.get("context"),
                version=i.get("version"),
                shadow=bool(i.get("shadow")),
                call_id=i.get("call_id"),
                summary=i.get("summary"),
            )
            for i in body.get("items") or []
        ]
        return LogPage(items, body.get("total", len(items)), body.get("limit", limit), body.get("offset", offset))


class APIService(PublishedAsset):
    """A published asset of type `api_service`: named endpoints (sql, lookup, model, function)."""

    @property
    def endpoints(self) -> list[Endpoint]:
        """The draft config's endpoints (as of the last call that read or wrote the service)."""
        return list(self.config.get("endpoints") or [])

    def set_endpoints(self, endpoints: Sequence[Endpoint], publish: bool = False) -> APIService:
        """Replace every endpoint of the draft; publishes too when `publish` is true."""
        self.refresh()
        return self._write_endpoints(list(endpoints), publish)

    def add_endpoint(self, endpoint: Endpoint, publish: bool = False) -> APIService:
        """Add one endpoint to the current draft (read-modify-write); an endpoint with the same id is replaced in
        place, so running a script twice is not an error. Publishes too when `publish` is true."""
        self.refresh()
        current = self.endpoints
        if any(e.get("id") == endpoint.get("id") for e in current):
            endpoints = [endpoint if e.get("id") == endpoint.get("id") else e for e in current]
        else:
            endpoints = [*current, endpoint]
        return self._write_endpoints(endpoints, publish)

    def remove_endpoint(self, endpoint_id: str, publish: bool = False) -> APIService:
        """Drop the endpoint `endpoint_id` from the draft; publishes too when `publish` is true."""
        self.refresh()
        return self._write_endpoints([e for e in self.endpoints if e.get("id") != endpoint_id], publish)

    def _write_endpoints(self, endpoints: list[Endpoint], publish: bool) -> APIService:
        # Other keys of the config survive: only `endpoints` is replaced.
        self.update(config={**self.config, "endpoints": endpoints})
        return self.publish() if publish else self

    def call(
        self,
        endpoint_id: str,
        payload: Any = None,
        *,
        api_key: str | ApiKey,
        params: Mapping[str, Any] | None = None,
        method: str = "POST",
        dispatch_key: str | None = None,
        version: int | None = None,
    ) -> Any:
        """Call the published endpoint with a key: POST + `payload` for model/function endpoints, and
        `method="GET"` + `params` for sql/lookup endpoints. Returns the decoded JSON answer.

        `dispatch_key` keeps a caller on one version under hash routing (X-Dispatch-Key); `version` pins the call
        to a published version (X-Service-Version; keys minted with `can_force_version=True`)."""
        secret = api_key.key if isinstance(api_key, ApiKey) else api_key
        if not secret:
            raise ValueError("api_key: pass the dk_… secret (it is on .key of the object create_key returned)")
        method = method.upper()
        if method == "GET" and payload is not None:
            raise ValueError("payload: a GET sends no body; pass the filters or lookup key as params=")
        path = f"/api/service/{quote(self.asset_key, safe='')}/{quote(endpoint_id, safe='')}"
        headers = {"X-API-Key": secret}
        if dispatch_key is not None:
            headers["X-Dispatch-Key"] = str(dispatch_key)
        if version is not None:
            headers["X-Service-Version"] = str(int(version))
        # The key is the only credential here: the management token is never sent to a serving route.
        return self._transport.request(
            method,
            path,
            json=payload if method != "GET" else None,
            params=params,
            headers=headers,
            authenticated=False,
        )

    def test(self, endpoint_id: str, payload: Any = None) -> Any:
        """Dry-run the draft's endpoint with your login (no key, unmasked): the serving answer plus `dry: true`.
        For sql/lookup endpoints `payload` holds the query params."""
        path = f"/api/api-services/{self.id}/endpoints/{quote(endpoint_id, safe='')}/test"
        return self._transport.request("POST", path, json=payload if payload is not None else {})


class DataAPI(PublishedAsset):
    """A published asset of type `data_api`: one governed query served at `GET /api/data/<asset_key>`."""

    def query(self, *, api_key: str | ApiKey, params: Mapping[str, Any] | None = None) -> Any:
        """Call the published query with a key; `params` fill its filters and `limit`/`offset`."""
        secret = api_key.key if isinstance(api_key, ApiKey) else api_key
        if not secret:
            raise ValueError("api_key: pass the dk_… secret (it is on .key of the object create_key returned)")
        path = f"/api/data/{quote(self.asset_key, safe='')}"
        return self._transport.request("GET", path, params=params, headers={"X-API-Key": secret}, authenticated=False)


def asset_handle(transport: Transport, body: Mapping[str, Any]) -> PublishedAsset:
    """The right handle for an asset body: APIService or DataAPI."""
    return (DataAPI if body.get("asset_type") == "data_api" else APIService)(transport, body)
