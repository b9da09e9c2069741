"""The Client: log in with a token or a password, then reach projects and API services."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from apiary.endpoints import Endpoint
from apiary.projects import Project
from apiary.services import APIService, PublishedAsset, asset_handle
from apiary.transport import Transport


class Client:
    """A connection to one Apiary server.

    Authenticate with `token=` (a personal access token or a JWT) or with `username=` and `password=` (logged
    in at once, and again if the session expires). Plain http is refused except to loopback addresses unless
    `allow_insecure_http=True`. GETs answered 502/503/504 are retried `retries` times with exponential backoff
    from `backoff` seconds; nothing else is ever sent twice.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 0.5,
        allow_insecure_http: bool = False,
        http: httpx.Client | None = None,
    ):
        if token is not None and (username is not None or password is not None):
            raise ValueError("pass either token= or username= and password=, not both")
        if (username is None) != (password is None):
            raise ValueError("username= and password= go together")
        self._transport = Transport(
            base_url,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            allow_insecure_http=allow_insecure_http,
            http=http,
        )
        self._transport.token = token
        if username is not None and password is not None:
            self._transport.reauthenticate = lambda: self._login(username, password)
            self._transport.token = self._login(username, password)

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    def _login(self, username: str, password: str) -> str:
        body = self._transport.request(
            "POST", "/api/auth/login", json={"username": username, "password": password}, authenticated=False
        )
        return body["access_token"]

    def close(self) -> None:
        """Close the underlying connections."""
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def me(self) -> dict[str, Any]:
        """The calling user: `{user_id, username, email, org_id, role}`."""
        return self._transport.request("GET", "/api/auth/me")

    def list_projects(self) -> list[Project]:
        """Every project of your organization."""
        body = self._transport.request("GET", "/api/projects")
        return [Project(self._transport, item) for item in body.get("items") or []]

    def get_project(self, id_or_slug: int | str) -> Project:
        """A project by its id or slug."""
        return Project(
            self._transport, self._transport.request("GET", f"/api/projects/{quote(str(id_or_slug), safe='')}")
        )

    def create_project(
        self, name: str, slug: str, description: str = "", *, icon: str | None = None, color: str | None = None
    ) -> Project:
        """A new project; `slug` is lower-case letters, digits and dashes, unique in the organization; `icon` (at
        most 64 characters) and `color` (`#RRGGBB`) are how lists and the console show it."""
        body: dict[str, Any] = {"name": name, "slug": slug, "description": description}
        if icon is not None:
            body["icon"] = icon
        if color is not None:
            body["color"] = color
        return Project(self._transport, self._transport.request("POST", "/api/projects", json=body))

    def get_asset(self, asset_id: int) -> PublishedAsset:
        """A published asset by its id: an APIService or a DataAPI, by its type."""
        return asset_handle(self._transport, self._transport.request("GET", f"/api/publish/assets/{int(asset_id)}"))

    def list_assets(self, asset_type: str | None = None) -> list[PublishedAsset]:
        """The organization's assets your role sees, ordered by sort_order, then title."""
        params = {"asset_type": asset_type} if asset_type else None
        body = self._transport.request("GET", "/api/publish/assets", params=params)
        return [asset_handle(self._transport, item) for item in body.get("items") or []]

    def get_api_service(self, asset_id: int) -> APIService:
        """An API service by its asset id."""
        return APIService(self._transport, self._transport.request("GET", f"/api/publish/assets/{int(asset_id)}"))

    def create_api_service(
        self,
        project: Project | int | str,
        asset_key: str,
        title: str,
        endpoints: Sequence[Endpoint] | None = None,
        *,
        description: str = "",
        publish: bool = False,
    ) -> APIService:
        """Create an API service in `project` (a Project, id or slug); same as `project.create_api_service`."""
        if not isinstance(project, Project):
            project = self.get_project(project)
        return project.create_api_service(asset_key, title, endpoints, description=description, publish=publish)
