"""The HTTP layer: base-URL policy, bearer auth, typed errors, and retries of idempotent GETs only."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from apiary.errors import TransportError, error_for

RETRY_STATUSES = frozenset({502, 503, 504})
# A server asking for a longer pause than this is better reported to the caller than slept on.
MAX_RETRY_WAIT_S = 30.0


def is_loopback(host: str) -> bool:
    """True for `localhost` and every loopback address (127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str, allow_insecure_http: bool = False) -> str:
    """The base URL without its trailing slash; plain http is refused off loopback unless explicitly allowed,
    because tokens, passwords and API keys would cross the network in clear text."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be an http(s) URL such as https://apiary.example.com, got {base_url!r}")
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_insecure_http:
        raise ValueError(
            f"refusing plain http to {parts.hostname}: credentials would travel unencrypted. "
            "Use https, or pass allow_insecure_http=True if you really mean it."
        )
    return base_url.rstrip("/")


class Transport:
    """One httpx client bound to a base URL; `request` returns the decoded JSON body or raises an ApiaryError."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 0.5,
        allow_insecure_http: bool = False,
        http: httpx.Client | None = None,
    ):
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self.base_url = check_base_url(base_url, allow_insecure_http)
        self.retries = retries
        self.backoff = backoff
        self.token: str | None = None
        # Called once after a 401 on an authenticated call to get a fresh token (password logins expire).
        self.reauthenticate: Callable[[], str] | None = None
        self._http = http or httpx.Client(timeout=timeout, headers={"User-Agent": "apiary-sdk"})

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        files: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        authenticated: bool = True,
        timeout: float | None | object = httpx.USE_CLIENT_DEFAULT,
    ) -> Any:
        method = method.upper()
        url = self.base_url + path
        reauthenticated = False
        attempt = 0
        while True:
            sent = dict(headers or {})
            if authenticated and self.token:
                sent["Authorization"] = f"Bearer {self.token}"
            try:
                response = self._http.request(
                    method, url, json=json, params=params, headers=sent, files=files, data=data, timeout=timeout
                )
            except httpx.HTTPError as exc:
                # Only a GET may be sent again: a POST that broke mid-way may already have done its work.
                if method == "GET" and attempt < self.retries:
                    self._pause(attempt, None)
                    attempt += 1
                    continue
                raise TransportError(f"{method} {url} failed: {exc}") from exc
            if response.status_code in RETRY_STATUSES and method == "GET" and attempt < self.retries:
                self._pause(attempt, response.headers.get("Retry-After"))
                attempt += 1
                continue
            if (
                response.status_code == 401
                and authenticated
                and self.reauthenticate is not None
                and not reauthenticated
            ):
                # A 401 means the server did nothing, so sending again with a fresh token is safe for any method.
                self.token = self.reauthenticate()
                reauthenticated = True
                _rewind(files)
                continue
            return _decode(response)

    def _pause(self, attempt: int, retry_after: str | None) -> None:
        wait = self.backoff * (2**attempt)
        if retry_after is not None:
            try:
                wait = max(wait, float(retry_after))
            except ValueError:
                pass
        time.sleep(min(wait, MAX_RETRY_WAIT_S))


def _rewind(files: Mapping[str, Any] | None) -> None:
    for value in (files or {}).values():
        handle = value[1] if isinstance(value, tuple) else value
        if hasattr(handle, "seek"):
            handle.seek(0)


def _decode(response: httpx.Response) -> Any:
    try:
        body = response.json() if response.content else None
    except ValueError:
        body = response.text
    if response.is_success:
        return body
    raise error_for(response.status_code, body, response.headers)
