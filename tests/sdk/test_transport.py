"""The SDK's HTTP rules against a scripted stdlib server: typed errors, GET-only retries, re-login, loopback-only http."""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import apiary
from apiary.transport import check_base_url


class FakeServer:
    """Answers each (method, path) from a queue of scripted (status, body, headers); records every request."""

    def __init__(self):
        self.script: dict[tuple[str, str], deque] = {}
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                fake.requests.append(
                    {"method": self.command, "path": path, "headers": dict(self.headers), "body": body}
                )
                queue = fake.script.get((self.command, path))
                status, payload, headers = (
                    queue.popleft() if queue and len(queue) > 1 else (queue or [(404, {}, {})])[0]
                )
                raw = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, str(value))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def on(self, method: str, path: str, *answers: tuple) -> None:
        """Script the answers; the last one repeats forever."""
        self.script[(method, path)] = deque((a + ({},))[:3] for a in answers)

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests if r["method"] == method and r["path"] == path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def fake():
    server = FakeServer()
    yield server
    server.close()


def err(code: str, message: str = "no", details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def test_a_get_answered_503_is_retried_until_it_succeeds(fake):
    fake.on(
        "GET",
        "/api/projects/7",
        (503, err("no_worker")),
        (503, err("no_worker")),
        (200, {"project_id": 7, "slug": "s", "name": "S"}),
    )
    client = apiary.Client(fake.url, token="t", backoff=0)
    assert client.get_project(7).slug == "s"
    assert fake.count("GET", "/api/projects/7") == 3


def test_gets_give_up_after_the_retries_with_a_server_error(fake):
    fake.on("GET", "/api/auth/me", (504, err("timeout", "no answer within 10 s")))
    client = apiary.Client(fake.url, token="t", retries=1, backoff=0)
    with pytest.raises(apiary.ServerError) as caught:
        client.me()
    assert caught.value.status == 504 and caught.value.code == "timeout"
    assert fake.count("GET", "/api/auth/me") == 2


def test_a_post_is_never_sent_twice(fake):
    fake.on("POST", "/api/projects", (503, err("no_worker")), (201, {"project_id": 1, "slug": "a", "name": "A"}))
    client = apiary.Client(fake.url, token="t", backoff=0)
    with pytest.raises(apiary.ServerError):
        client.create_project("A", "a")
    assert fake.count("POST", "/api/projects") == 1
    # A serving POST (a model call) is not retried either, while a serving GET is.
    service = apiary.APIService(client._transport, {"id": 1, "asset_key": "svc"})
    fake.on("POST", "/api/service/svc/risk", (502, None))
    with pytest.raises(apiary.ServerError):
        service.call("risk", {"features": {}}, api_key="dk_x")
    assert fake.count("POST", "/api/service/svc/risk") == 1
    fake.on("GET", "/api/service/svc/customer", (502, None), (200, {"rows": [], "count": 0}))
    assert service.call("customer", api_key="dk_x", method="GET", params={"id": 1}) == {"rows": [], "count": 0}
    assert fake.count("GET", "/api/service/svc/customer") == 2


def test_other_statuses_are_not_retried(fake):
    fake.on("GET", "/api/auth/me", (500, err("internal_error")))
    with pytest.raises(apiary.ServerError):
        apiary.Client(fake.url, token="t", backoff=0).me()
    assert fake.count("GET", "/api/auth/me") == 1


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, apiary.ValidationError),
        (401, apiary.AuthenticationError),
        (403, apiary.PermissionDeniedError),
        (404, apiary.NotFoundError),
        (409, apiary.ConflictError),
        (422, apiary.ValidationError),
        (429, apiary.RateLimitError),
        (500, apiary.ServerError),
    ],
)
def test_each_status_raises_its_typed_error(fake, status, exc):
    details = {"fields": {"slug": ["already taken"]}}
    fake.on("GET", "/api/auth/me", (status, err("some_code", "it went wrong", details), {"Retry-After": "7"}))
    with pytest.raises(exc) as caught:
        apiary.Client(fake.url, token="t").me()
    error = caught.value
    assert isinstance(error, apiary.ApiaryError)
    assert error.status == status and error.code == "some_code" and error.message == "it went wrong"
    assert "it went wrong" in str(error)
    if status in (401, 403):
        assert isinstance(error, apiary.AuthError)
    if status in (400, 409, 422):
        assert error.fields == {"slug": ["already taken"]}


def test_rate_limit_error_says_when_to_retry(fake):
    fake.on("GET", "/api/service/svc/top", (429, err("rate_limited"), {"Retry-After": "42", "RateLimit-Limit": "10"}))
    service = apiary.APIService(apiary.Client(fake.url)._transport, {"id": 1, "asset_key": "svc"})
    with pytest.raises(apiary.RateLimitError) as caught:
        service.call("top", api_key="dk_x", method="GET")
    assert caught.value.retry_after == 42 and caught.value.limit == 10
    assert fake.count("GET", "/api/service/svc/top") == 1


def test_a_non_json_error_still_raises_typed(fake):
    fake.on("DELETE", "/api/publish/assets/1/api-keys/2", (404, None))
    service = apiary.APIService(apiary.Client(fake.url, token="t")._transport, {"id": 1, "asset_key": "svc"})
    with pytest.raises(apiary.NotFoundError):
        service.revoke_key(2)


def test_serving_calls_send_the_key_and_never_the_token(fake):
    fake.on("POST", "/api/service/svc/risk", (200, {"predictions": [1], "model_id": 3, "count": 1}))
    client = apiary.Client(fake.url, token="secret-token")
    service = apiary.APIService(client._transport, {"id": 1, "asset_key": "svc"})
    assert service.call("risk", {"features": {"a": 1}}, api_key="dk_abc")["predictions"] == [1]
    sent = fake.requests[-1]
    assert sent["headers"]["X-API-Key"] == "dk_abc"
    assert "Authorization" not in sent["headers"]
    assert json.loads(sent["body"]) == {"features": {"a": 1}}
    with pytest.raises(ValueError, match="params"):
        service.call("risk", {"id": 1}, api_key="dk_abc", method="GET")
    with pytest.raises(ValueError, match="api_key"):
        service.call("risk", {}, api_key="")


def test_password_login_logs_in_again_when_the_session_expires(fake):
    fake.on("POST", "/api/auth/login", (200, {"access_token": "first"}), (200, {"access_token": "second"}))
    fake.on("GET", "/api/auth/me", (401, err("token_expired")), (200, {"username": "ann"}))
    client = apiary.Client(fake.url, username="ann", password="pw")
    assert client.me() == {"username": "ann"}
    auths = [r["headers"].get("Authorization") for r in fake.requests if r["path"] == "/api/auth/me"]
    assert auths == ["Bearer first", "Bearer second"]
    assert fake.count("POST", "/api/auth/login") == 2


def test_a_wrong_password_fails_at_construction(fake):
    fake.on("POST", "/api/auth/login", (401, err("invalid_credentials", "wrong username or password")))
    with pytest.raises(apiary.AuthenticationError, match="wrong username or password"):
        apiary.Client(fake.url, username="ann", password="nope")


def test_an_unreachable_server_raises_a_transport_error(fake):
    url = fake.url
    fake.close()
    with pytest.raises(apiary.TransportError):
        apiary.Client(url, token="t", retries=1, backoff=0).me()


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:5000", "http://localhost:8000/", "http://[::1]:9000", "http://127.1.2.3", "https://x.io"]
)
def test_plain_http_is_allowed_to_loopback_and_https_anywhere(url):
    assert check_base_url(url) == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://apiary.example.com", "http://10.0.0.5:5000", "http://192.168.1.2"])
def test_plain_http_elsewhere_is_refused_unless_explicitly_allowed(url):
    with pytest.raises(ValueError, match="allow_insecure_http"):
        apiary.Client(url, token="t")
    assert apiary.Client(url, token="t", allow_insecure_http=True).base_url == url


@pytest.mark.parametrize("url", ["ftp://example.com", "example.com", "http://"])
def test_a_base_url_that_is_not_http_is_refused(url):
    with pytest.raises(ValueError, match="base_url"):
        apiary.Client(url)


def test_credentials_are_either_a_token_or_a_password():
    with pytest.raises(ValueError, match="either"):
        apiary.Client("http://127.0.0.1:1", token="t", username="a", password="b")
    with pytest.raises(ValueError, match="together"):
        apiary.Client("http://127.0.0.1:1", username="a")


def test_builders_produce_the_contract_config():
    assert apiary.sql_endpoint("top", {"source": {"schema": "marts", "table": "t"}}) == {
        "id": "top",
        "kind": "sql",
        "query": {"source": {"schema": "marts", "table": "t"}},
    }
    assert apiary.lookup_endpoint("customer", "marts.dim_customer", "customer_key") == {
        "id": "customer",
        "kind": "lookup",
        "dataset": "marts.dim_customer",
        "key_column": "customer_key",
        "key_param": "id",
        "columns": None,
        "max_results": 100,
    }
    assert apiary.lookup_endpoint("c", "m.t", "k", key_param="key", columns=("a",), max_results=5)["columns"] == ["a"]
    assert apiary.model_endpoint("risk", model_id=12) == {"id": "risk", "kind": "model", "model_id": 12}
    assert apiary.function_endpoint("f", "def handler(p):\n    return p\n") == {
        "id": "f",
        "kind": "function",
        "handler": "def handler(p):\n    return p\n",
    }


def test_the_sdk_depends_only_on_httpx():
    import subprocess
    import sys
    import tomllib

    from tests.sdk.conftest import ROOT, SDK_SRC

    project = tomllib.loads((ROOT / "sdk" / "pyproject.toml").read_text())["project"]
    assert [dep.split(">")[0].split("=")[0].strip() for dep in project["dependencies"]] == ["httpx"]
    # Importing it, and turning a list of dicts into an upload, pulls in neither pandas nor the server's stack.
    code = (
        "import sys, apiary; from apiary.frames import csv_bytes; csv_bytes([{'a': 1}]); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'numpy', 'flask', 'sqlalchemy', 'app'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(SDK_SRC)},
        capture_output=True,
        text=True,
        cwd=SDK_SRC,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
