"""The APIService handle: edit the endpoints, publish, mint keys, call, dry-run, versions, rollback, logs."""

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


@dataclass
class LogPage:
    """A page of the audit log, newest first; `total` counts every matching call."""

    items: list[LogEntry]
    total: int
    limit: int
    offset: int


class APIService:
    """A published asset of type `api_service`. Edits change the draft; callers see them after `publish()`."""

    def __init__(self, transport: Transport, body: Mapping[str, Any]):
        self._transport = transport
        self._load(body)

    def _load(self, body: Mapping[str, Any]) -> None:
        self.id: int = body["id"]
        self.asset_key: str = body["asset_key"]
        self.title: str = body.get("title", "")
        self.description: str = body.get("description", "")
        self.status: str = body.get("status", "draft")
        self.config: dict[str, Any] = dict(body.get("config") or {})
        self.project_id: int | None = body.get("project_id")
        self.published_version: int | None = body.get("published_version")

    def __repr__(self) -> str:
        return f"<APIService {self.id} {self.asset_key!r} {self.status}>"

    @property
    def _path(self) -> str:
        return f"/api/publish/assets/{self.id}"

    @property
    def endpoints(self) -> list[Endpoint]:
        """The draft config's endpoints (as of the last call that read or wrote the service)."""
        return list(self.config.get("endpoints") or [])

    def refresh(self) -> APIService:
        """Re-read the service from the server."""
        self._load(self._transport.request("GET", self._path))
        return self

    def update(
        self,
        *,
        title: str | None = None,
        description: str | None = None,
        config: Mapping[str, Any] | None = None,
        change_note: str = "",
    ) -> APIService:
        """Edit the draft; serving keeps the published version until the next `publish()`."""
        body: dict[str, Any] = {"change_note": change_note}
        if title is not None:
            body["title"] = title
        if description is not None:
            body["description"] = description
        if config is not None:
            body["config"] = dict(config)
        self._load(self._transport.request("PUT", self._path, json=body))
        return self

    def set_endpoints(self, endpoints: Sequence[Endpoint], publish: bool = False) -> APIService:
        """Replace every endpoint of the draft; publishes too when `publish` is true."""
        self.refresh()
        return self._write_endpoints(list(endpoints), publish)

    def add_endpoint(self, endpoint: Endpoint, publish: bool = False) -> APIService:
        """Append one endpoint to the current draft (read-modify-write); publishes too when `publish` is true."""
        self.refresh()
        return self._write_endpoints([*self.endpoints, endpoint], publish)

    def remove_endpoint(self, endpoint_id: str, publish: bool = False) -> APIService:
        """Drop the endpoint `endpoint_id` from the draft; publishes too when `publish` is true."""
        self.refresh()
        return self._write_endpoints([e for e in self.endpoints if e.get("id") != endpoint_id], publish)

    def _write_endpoints(self, endpoints: list[Endpoint], publish: bool) -> APIService:
        # Other keys of the config survive: only `endpoints` is replaced.
        self.update(config={**self.config, "endpoints": endpoints})
        return self.publish() if publish else self

    def publish(self, change_note: str | None = None) -> APIService:
        """Publish the draft as a new version; its endpoints become callable with keys."""
        body = {"change_note": change_note} if change_note is not None else {}
        self._transport.request("POST", f"{self._path}/publish", json=body)
        return self.refresh()

    def unpublish(self) -> APIService:
        """Stop serving; the service goes back to draft and every call answers 404."""
        self._transport.request("POST", f"{self._path}/unpublish")
        return self.refresh()

    def versions(self) -> list[Version]:
        """Every published version, newest first."""
        body = self._transport.request("GET", self._path)
        self._load(body)
        return [
            Version(v["id"], v["version"], v.get("published_by"), v.get("change_note"), v.get("created_at"))
            for v in body.get("versions") or []
        ]

    def rollback(self, version: int) -> APIService:
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
    ) -> ApiKey:
        """Mint a `dk_…` key; the full secret is on the result's `.key`, this once.

        Arguments left as None take the server's defaults: every endpoint, 100 requests per minute, expiry in
        90 days (`expires_days=0` never expires), `masked`, every column, sensitivity up to `medium`.
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
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return ApiKey.from_json(self._transport.request("POST", f"{self._path}/api-keys", json=body))

    def list_keys(self) -> list[ApiKey]:
        """The service's keys, with their prefixes (never the secrets)."""
        body = self._transport.request("GET", f"{self._path}/api-keys")
        return [ApiKey.from_json(item) for item in body.get("items") or []]

    def revoke_key(self, key: int | ApiKey) -> None:
        """Revoke a key (by id or object); effective at once on every server."""
        key_id = key.id if isinstance(key, ApiKey) else int(key)
        self._transport.request("DELETE", f"{self._path}/api-keys/{key_id}")

    def call(
        self,
        endpoint_id: str,
        payload: Any = None,
        *,
        api_key: str | ApiKey,
        params: Mapping[str, Any] | None = None,
        method: str = "POST",
    ) -> Any:
        """Call the published endpoint with a key: POST + `payload` for model/function endpoints, and
        `method="GET"` + `params` for sql/lookup endpoints. Returns the decoded JSON answer."""
        secret = api_key.key if isinstance(api_key, ApiKey) else api_key
        if not secret:
            raise ValueError("api_key: pass the dk_… secret (it is on .key of the object create_key returned)")
        method = method.upper()
        if method == "GET" and payload is not None:
            raise ValueError("payload: a GET sends no body; pass the filters or lookup key as params=")
        path = f"/api/service/{quote(self.asset_key, safe='')}/{quote(endpoint_id, safe='')}"
        # The key is the only credential here: the management token is never sent to a serving route.
        return self._transport.request(
            method,
            path,
            json=payload if method != "GET" else None,
            params=params,
            headers={"X-API-Key": secret},
            authenticated=False,
        )

    def test(self, endpoint_id: str, payload: Any = None) -> Any:
        """Dry-run the draft's endpoint with your login (no key, unmasked): the serving answer plus `dry: true`.
        For sql/lookup endpoints `payload` holds the query params."""
        path = f"/api/api-services/{self.id}/endpoints/{quote(endpoint_id, safe='')}/test"
        return self._transport.request("POST", path, json=payload if payload is not None else {})

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
    ) -> LogPage:
        """The audit log of calls to this service, newest first (written by a worker within seconds)."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if errors_only:
            params["errors_only"] = "true"
        extra = {"endpoint_id": endpoint_id, "key_id": key_id, "status": status, "since": since, "until": until}
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
            )
            for i in body.get("items") or []
        ]
        return LogPage(items, body.get("total", len(items)), body.get("limit", limit), body.get("offset", offset))
