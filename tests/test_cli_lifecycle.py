"""The lifecycle CLI (flask services create|show|versions|diff|rollback|endpoints|test|call|logs, keys mint's scopes,
cache flush, --json everywhere) through Flask's CLI runner, checked against what the REST API answers."""

from __future__ import annotations

import json

import sqlalchemy as sa

from tests.conftest import add_user
from tests.publishing.test_assets import LOOKUP, TOP, _create
from tests.serving.test_serving_data import call
from tests.warehouse_tables import create_dataset


def _ok(result):
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def _json(result):
    return json.loads(_ok(result).stdout)


def _fails(result, *words):
    """A failed command: non-zero exit, exactly one line on stderr (no traceback) that names the problem."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _email(account) -> str:
    return f"{account.username}@example.com"


def test_create_show_versions_diff_rollback(app, client, admin, project, runner, tmp_path):
    pid = project["project_id"]
    create_dataset(app, pid)
    config = tmp_path / "service.json"
    config.write_text(json.dumps({"endpoints": [LOOKUP]}))
    created = _json(
        runner.invoke(
            args=[
                "services",
                "create",
                "--project",
                "sales",
                "--key",
                "sales-serving",
                "--title",
                "Sales serving",
                "--config",
                str(config),
                "--json",
            ]
        )
    )
    assert created["status"] == "draft" and created["project_id"] == pid
    assert created["config"]["endpoints"][0]["key_param"] == "id"  # defaults filled in by the service
    url = f"/api/publish/assets/{created['id']}"
    assert client.get(url, headers=admin.headers).status_code == 200

    assert "version 1" in _ok(runner.invoke(args=["services", "publish", "sales-serving"])).stdout
    top = tmp_path / "top.json"
    top.write_text(json.dumps(TOP))
    added = _ok(runner.invoke(args=["services", "endpoints", "add", "sales-serving", "--file", str(top)]))
    assert "added endpoint top" in added.stdout
    assert "version 2" in _ok(runner.invoke(args=["services", "publish", "sales-serving", "--note", "add top"])).stdout

    # show --json is the REST answer, field for field.
    shown = _json(runner.invoke(args=["services", "show", "sales-serving", "--json"]))
    assert shown == client.get(url, headers=admin.headers).get_json()
    assert [v["version"] for v in shown["versions"]] == [2, 1] and shown["versions"][0]["change_note"] == "add top"
    text = _ok(runner.invoke(args=["services", "show", "sales-serving"])).stdout
    assert "published, published version 2" in text and "  top\tsql" in text

    versions = _json(runner.invoke(args=["services", "versions", "sales-serving", "--json"]))
    assert versions == {"items": shown["versions"]}
    assert _ok(runner.invoke(args=["services", "versions", "sales-serving"])).stdout.splitlines()[1].startswith("2\t")

    diff = _json(runner.invoke(args=["services", "diff", "sales-serving", "1", "2", "--json"]))
    assert diff == client.get(f"{url}/versions/1/diff/2", headers=admin.headers).get_json()
    assert "+ config.endpoints.top:" in _ok(runner.invoke(args=["services", "diff", "sales-serving", "1", "2"])).stdout
    _fails(runner.invoke(args=["services", "diff", "sales-serving", "1", "9"]), "version 9 not found")

    designer = add_user(client, admin, "designer")
    _fails(runner.invoke(args=["services", "rollback", "sales-serving", "1", "--user", _email(designer)]), "org.admin")
    rolled = _json(runner.invoke(args=["services", "rollback", "sales-serving", "1", "--json"]))
    assert rolled == {"ok": True, "status": "published", "version": 3}
    after = client.get(url, headers=admin.headers).get_json()
    assert [e["id"] for e in after["config"]["endpoints"]] == ["customer"] and after["published_version"] == 3

    _fails(runner.invoke(args=["services", "show", "nope"]), "no asset with key 'nope'")
    _fails(
        runner.invoke(
            args=[
                "services",
                "create",
                "--project",
                "sales",
                "--key",
                "sales-serving",
                "--title",
                "T",
                "--config",
                str(config),
            ]
        ),
        "asset_key",
        "already taken",
    )
    _fails(
        runner.invoke(args=["services", "create", "--project", "sales", "--key", "Bad Key!", "--title", "T"]),
        "asset_key",
    )
    config.write_text("{not json")
    _fails(
        runner.invoke(
            args=["services", "create", "--project", "sales", "--key", "k2", "--title", "T", "--config", str(config)]
        ),
        "--config",
        "not valid JSON",
    )
    _fails(runner.invoke(args=["services", "create", "--key", "k3", "--title", "T"]), "--project")

    # --body: the whole create body as the REST call takes it, options overriding its fields.
    body = tmp_path / "asset.json"
    data_api = {
        "asset_type": "data_api",
        "asset_key": "customers-api",
        "title": "From the file",
        "config": {"source": {"schema": "marts", "table": "dim_customer"}, "columns": ["customer_key"]},
    }
    body.write_text(json.dumps(data_api))
    made = _json(
        runner.invoke(
            args=["services", "create", "--project", "sales", "--body", str(body), "--title", "Customers", "--json"]
        )
    )
    assert made["asset_type"] == "data_api" and made["title"] == "Customers" and made["config"] == data_api["config"]
    _fails(
        runner.invoke(
            args=["services", "endpoints", "add", "customers-api", "--id", "x", "--kind", "model", "--model-id", "1"]
        ),
        "only an api_service has endpoints",
    )
    body.write_text(json.dumps({**data_api, "asset_key": "k4", "colour": "red"}))
    _fails(runner.invoke(args=["services", "create", "--project", "sales", "--body", str(body)]), "colour", "Unknown")
    body.write_text(json.dumps({"asset_type": "data_api", "asset_key": "k5", "config": data_api["config"]}))
    _fails(runner.invoke(args=["services", "create", "--project", "sales", "--body", str(body)]), "title", "Missing")
    _fails(runner.invoke(args=["services", "show"]), "Missing argument 'ASSET_KEY'")
    _fails(runner.invoke(args=["services", "rollback", "sales-serving", "one"]), "VERSION", "not a valid integer")
    _fails(runner.invoke(args=["services", "nope"]), "No such command 'nope'")


def test_endpoints_add_replaces_and_remove(app, client, admin, project, runner, tmp_path):
    pid = project["project_id"]
    create_dataset(app, pid)
    asset_id = _create(client, admin, pid).get_json()["id"]
    url = f"/api/publish/assets/{asset_id}"

    replaced = runner.invoke(
        args=[
            "services",
            "endpoints",
            "add",
            "sales-serving",
            "--id",
            "customer",
            "--kind",
            "lookup",
            "--dataset",
            "marts.dim_customer",
            "--key-column",
            "customer_key",
            "--column",
            "customer_key",
            "--column",
            "region",
            "--max-results",
            "5",
        ]
    )
    assert "replaced endpoint customer" in _ok(replaced).stdout
    endpoints = client.get(url, headers=admin.headers).get_json()["config"]["endpoints"]
    assert len(endpoints) == 1
    assert endpoints[0]["columns"] == ["customer_key", "region"] and endpoints[0]["max_results"] == 5

    query = tmp_path / "query.json"
    query.write_text(json.dumps(TOP["query"]))
    added = _json(
        runner.invoke(
            args=[
                "services",
                "endpoints",
                "add",
                "sales-serving",
                "--id",
                "top",
                "--kind",
                "sql",
                "--query",
                str(query),
                "--json",
            ]
        )
    )
    assert [e["id"] for e in added["config"]["endpoints"]] == ["customer", "top"]

    # A bad endpoint is refused naming the endpoint and its field, and the draft stays as it was.
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**TOP, "query": {**TOP["query"], "columns": ["customer_key", "nope"]}}))
    _fails(runner.invoke(args=["services", "endpoints", "add", "sales-serving", "--file", str(bad)]), "top", "nope")
    _fails(
        runner.invoke(
            args=[
                "services",
                "endpoints",
                "add",
                "sales-serving",
                "--id",
                "x",
                "--kind",
                "lookup",
                "--dataset",
                "marts.ghost",
                "--key-column",
                "id",
            ]
        ),
        "marts.ghost",
    )
    _fails(runner.invoke(args=["services", "endpoints", "add", "sales-serving", "--id", "x"]), "--kind")
    _fails(
        runner.invoke(args=["services", "endpoints", "add", "sales-serving", "--id", "x", "--kind", "soap"]),
        "--kind",
        "soap",
    )
    viewer = add_user(client, admin, "viewer")
    _fails(
        runner.invoke(args=["services", "endpoints", "remove", "sales-serving", "top", "--user", _email(viewer)]),
        "project.edit",
    )
    assert client.get(url, headers=admin.headers).get_json()["config"] == added["config"]

    assert (
        "removed endpoint top"
        in _ok(runner.invoke(args=["services", "endpoints", "remove", "sales-serving", "top"])).stdout
    )
    assert [e["id"] for e in client.get(url, headers=admin.headers).get_json()["config"]["endpoints"]] == ["customer"]
    _fails(runner.invoke(args=["services", "endpoints", "remove", "sales-serving", "ghost"]), "endpoint 'ghost'")


def test_services_test_is_the_test_pane(app, client, admin, project, runner):
    pid = project["project_id"]
    create_dataset(app, pid)
    asset_id = _create(client, admin, pid, endpoints=[LOOKUP, TOP]).get_json()["id"]
    pane = f"/api/api-services/{asset_id}/endpoints/customer/test"

    # The draft runs without being published, and answers what the HTTP Test pane answers to the same user.
    as_admin = _json(runner.invoke(args=["services", "test", "sales-serving", "customer", "-p", "id=1"]))
    assert as_admin == client.post(pane, headers=admin.headers, json={"id": 1}).get_json()
    assert as_admin["dry"] is True and as_admin["rows"][0]["customer_key"] == 1
    designer = add_user(client, admin, "designer")
    as_designer = _json(
        runner.invoke(
            args=["services", "test", "sales-serving", "customer", "-d", '{"id": 1}', "--user", _email(designer)]
        )
    )
    assert as_designer == client.post(pane, headers=designer.headers, json={"id": 1}).get_json()
    top = _json(runner.invoke(args=["services", "test", "sales-serving", "top", "-p", "limit=2"]))
    assert top["count"] == 2 and top["rows"][0]["tenure"] == 30

    viewer = add_user(client, admin, "viewer")
    _fails(
        runner.invoke(args=["services", "test", "sales-serving", "customer", "-p", "id=1", "--user", _email(viewer)]),
        "project.edit",
    )
    _fails(runner.invoke(args=["services", "test", "sales-serving", "ghost"]), "endpoint 'ghost' not found")
    _fails(runner.invoke(args=["services", "test", "sales-serving", "customer"]), "id")
    _fails(runner.invoke(args=["services", "test", "sales-serving", "top", "-p", "limit=0"]), "limit")
    _fails(runner.invoke(args=["services", "test", "sales-serving", "customer", "-p", "id"]), "NAME=VALUE")
    _fails(runner.invoke(args=["services", "test", "sales-serving", "customer", "-d", "{"]), "--body", "not valid JSON")


def test_keys_mint_scopes_call_and_logs(app, client, admin, project, runner):
    from app.serving.audit import flush_serving_records

    pid = project["project_id"]
    create_dataset(app, pid)
    asset_id = _create(client, admin, pid, endpoints=[LOOKUP, TOP]).get_json()["id"]
    _ok(runner.invoke(args=["services", "publish", "sales-serving"]))

    minted = _json(
        runner.invoke(
            args=[
                "keys",
                "mint",
                "sales-serving",
                "--name",
                "eu",
                "--endpoint",
                "top",
                "--endpoint",
                "customer",
                "--allowed-column",
                "customer_key",
                "--allowed-column",
                "tenure",
                "--allowed-column",
                "region",
                "--row-scope",
                "region=EU,UK",
                "--masking-level",
                "unmasked",
                "--json",
            ]
        )
    )
    secret = minted["key"]
    assert secret.startswith("dk_") and minted["allowed_columns"] == ["customer_key", "tenure", "region"]
    assert minted["row_scope"] == {"region": ["EU", "UK"]} and minted["allowed_endpoints"] == ["top", "customer"]
    listed = _json(runner.invoke(args=["keys", "list", "sales-serving", "--json"]))
    assert listed == client.get(f"/api/publish/assets/{asset_id}/api-keys", headers=admin.headers).get_json()
    assert secret not in json.dumps(listed)

    # services call goes through serving: the key's column and row scope hold, as for an HTTP client.
    answer = _json(runner.invoke(args=["services", "call", "sales-serving", "top", "--key", secret]))
    assert answer == call(client, secret, "top").get_json()
    # ... and a result-cache hit (the answer as stored, sent as text on HTTP) prints the same answer.
    assert _json(runner.invoke(args=["services", "call", "sales-serving", "top", "--key", secret])) == answer
    assert [r["customer_key"] for r in answer["rows"]] == [1, 4, 2]  # EU only, by tenure
    from_env = runner.invoke(
        args=["services", "call", "sales-serving", "top", "-p", "limit=1"], env={"APIARY_API_KEY": secret}
    )
    assert _json(from_env)["count"] == 1
    one = _json(runner.invoke(args=["services", "call", "sales-serving", "customer", "--key", secret, "-p", "id=1"]))
    assert one["rows"] == [{"customer_key": 1, "region": "EU", "tenure": 12}]  # only the allowed columns
    us = _json(runner.invoke(args=["services", "call", "sales-serving", "customer", "--key", secret, "-p", "id=3"]))
    assert us["count"] == 0  # outside the row scope
    narrow = _json(
        runner.invoke(args=["keys", "mint", "sales-serving", "--name", "c", "--endpoint", "customer", "--json"])
    )["key"]
    _fails(
        runner.invoke(args=["services", "call", "sales-serving", "top", "--key", narrow]), "403 endpoint_not_allowed"
    )
    _fails(
        runner.invoke(args=["services", "call", "sales-serving", "top", "--key", secret, "-d", "{}"]),
        "405 method_not_allowed",
    )
    _fails(
        runner.invoke(args=["services", "call", "sales-serving", "top", "--key", secret, "-p", "limit=0"]),
        "400",
        "limit",
    )
    _fails(runner.invoke(args=["services", "call", "sales-serving", "top", "--key", "dk_wrong"]), "401 unauthorized")
    _fails(runner.invoke(args=["services", "call", "sales-serving", "top"]), "--key")

    _fails(
        runner.invoke(args=["keys", "mint", "sales-serving", "--name", "x", "--row-scope", "region"]),
        "--row-scope",
        "COLUMN=VALUE",
    )
    _fails(runner.invoke(args=["keys", "mint", "sales-serving", "--name", "x", "--rate-limit", "0"]), "rate_limit")
    _fails(runner.invoke(args=["keys", "mint", "sales-serving", "--name", "x", "--endpoint", "ghost"]), "ghost")

    # The audit log: every keyed call above left a record (a worker writes them; here the same flush runs inline).
    with app.app_context():
        flush_serving_records()
    logs_url = f"/api/api-services/{asset_id}/logs"
    page = _json(runner.invoke(args=["services", "logs", "sales-serving", "--json"]))
    assert page == client.get(logs_url, headers=admin.headers).get_json()
    assert page["total"] == 9  # the unknown key is attributed to no asset
    errors = _json(runner.invoke(args=["services", "logs", "sales-serving", "--errors-only", "--json"]))
    assert sorted(e["status"] for e in errors["items"]) == [400, 403, 405]
    only = _json(
        runner.invoke(
            args=[
                "services",
                "logs",
                "sales-serving",
                "--status",
                "405",
                "--endpoint",
                "top",
                "--key-id",
                str(minted["id"]),
                "--json",
            ]
        )
    )
    assert (
        only
        == client.get(
            logs_url, headers=admin.headers, query_string={"status": 405, "endpoint_id": "top", "key_id": minted["id"]}
        ).get_json()
    )
    assert only["total"] == 1 and only["items"][0]["method"] == "POST"
    text = _ok(runner.invoke(args=["services", "logs", "sales-serving", "--limit", "2"]))
    assert len(text.stdout.strip().splitlines()) == 3 and "2 of 9 record(s)" in text.stderr
    _fails(runner.invoke(args=["services", "logs", "sales-serving", "--since", "yesterday"]), "since")
    _fails(runner.invoke(args=["services", "logs", "sales-serving", "--limit", "5000"]), "limit")


def test_cache_flush_all_and_one_asset(app, client, admin, project, runner):
    from app.extensions import redis_store, warehouse

    pid = project["project_id"]
    table = create_dataset(app, pid)
    _create(client, admin, pid, endpoints=[LOOKUP])
    _create(client, admin, pid, key="other", endpoints=[LOOKUP])
    for key in ("sales-serving", "other"):
        _ok(runner.invoke(args=["services", "publish", key]))
    secrets = {
        k: _json(runner.invoke(args=["keys", "mint", k, "--name", "n", "--masking-level", "unmasked", "--json"]))["key"]
        for k in ("sales-serving", "other")
    }

    def name_served(asset_key):
        resp = client.get(
            f"/api/service/{asset_key}/customer", headers={"X-API-Key": secrets[asset_key]}, query_string={"id": "1"}
        )
        return resp.get_json()["rows"][0]["name"]

    def cached_entries(asset_key):
        with app.app_context():
            from app.db import PublishedAsset
            from app.extensions import db

            asset_id = db.session.scalar(sa.select(PublishedAsset.id).where(PublishedAsset.asset_key == asset_key))
            from app.serving.cache import result_cache

            return list(redis_store.get(app).scan_iter(match=f"{result_cache().prefix}:{asset_id}:*"))

    assert name_served("sales-serving") == name_served("other") == "Ada Lovelace"
    with app.app_context(), warehouse.get().begin() as conn:  # the warehouse changes in place
        customers = sa.Table(
            table["table"], sa.MetaData(), sa.Column("customer_key"), sa.Column("name"), schema=table["schema"]
        )
        conn.execute(customers.update().where(customers.c.customer_key == 1).values(name="Ada King"))
    assert name_served("sales-serving") == "Ada Lovelace"  # still the cached answer
    assert len(cached_entries("sales-serving")) == 1 and len(cached_entries("other")) == 1

    flushed = _ok(runner.invoke(args=["cache", "flush", "--asset", "sales-serving"]))
    assert "of sales-serving: 1 entry deleted" in flushed.stdout
    assert cached_entries("sales-serving") == [] and len(cached_entries("other")) == 1
    assert name_served("sales-serving") == "Ada King"
    assert name_served("other") == "Ada Lovelace"  # only the named asset was flushed

    everything = _ok(runner.invoke(args=["cache", "flush"]))
    assert "of every asset: 2 entries deleted" in everything.stdout
    assert name_served("other") == "Ada King"
    _fails(runner.invoke(args=["cache", "flush", "--asset", "ghost"]), "no asset with key 'ghost'")


def test_lists_take_json(app, client, admin, project, runner):
    pid = project["project_id"]
    create_dataset(app, pid)
    _create(client, admin, pid)
    org = client.get("/api/auth/me", headers=admin.headers).get_json()
    from app.db import Organization
    from app.extensions import db

    with app.app_context():
        org_name = db.session.get(Organization, org["org_id"]).name

    services = _json(runner.invoke(args=["services", "list", "--project-id", str(pid), "--json"]))
    assert services == client.get("/api/publish/assets", headers=admin.headers).get_json()
    projects = _json(runner.invoke(args=["projects", "list", "--org", org_name, "--json"]))
    assert projects == client.get("/api/projects", headers=admin.headers).get_json()
    users = _json(runner.invoke(args=["users", "list", "--org", org_name, "--json"]))
    assert users == client.get("/api/users", headers=admin.headers).get_json()
    datasets = _json(runner.invoke(args=["datasets", "list", "--project", str(pid), "--json"]))
    assert datasets == client.get("/api/datasets", headers=admin.project_headers(pid)).get_json()
    _fails(runner.invoke(args=["projects", "list", "--org", "Nowhere", "--json"]), "no organization named 'Nowhere'")
    _fails(
        runner.invoke(args=["users", "create", "--email", "x@example.com", "--org", "O", "--role", "boss"]),
        "--role",
        "boss",
    )


LIFECYCLE_GROUPS = ("services", "keys", "models", "cache", "users", "projects")


def _leaf_commands(app):
    import click

    def walk(path, command):
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk([*path, name], sub)
        else:
            yield path

    for group in LIFECYCLE_GROUPS:
        yield from walk([group], app.cli.commands[group])


def test_every_command_has_an_example_and_one_line_usage_errors(app, runner):
    paths = list(_leaf_commands(app))
    assert ["services", "endpoints", "add"] in paths and ["cache", "flush"] in paths and len(paths) >= 25
    for path in paths:
        helped = _ok(runner.invoke(args=[*path, "--help"]))
        assert "Example" in helped.stdout, path
        line = _fails(runner.invoke(args=[*path, "--no-such-option"]))
        assert f"{' '.join(path)}: No such option '--no-such-option'." in line, line


def test_a_real_flask_process_fails_in_one_line(app, test_env):
    """The installed `flask` entry point, as an operator runs it: nothing on stderr but the one error line."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, **test_env, "FLASK_APP": "wsgi", "LOG_LEVEL": "INFO"}  # the default outside the tests
    flask = str(Path(sys.executable).parent / "flask")
    done = subprocess.run(
        [flask, "services", "show", "nope", "--json"], cwd=root, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == "Error: no asset with key 'nope'\n"
    bad = subprocess.run([flask, "keys", "mint"], cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr == "Error: flask keys mint: Missing argument 'ASSET_KEY'.\n"
