"""`flask keys update`, `flask keys rotate` and `flask services delete` through FlaskCliRunner."""

import json

from tests.serving.test_serving_data import call, mint, service  # noqa: F401 - fixture


def test_keys_update_changes_only_what_is_given(app, client, admin, service):  # noqa: F811
    minted = mint(client, admin, service, rate_limit=10)
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "keys",
            "update",
            "sales-serving",
            str(minted["id"]),
            "--name",
            "cli",
            "--row-scope",
            "region=EU",
            "--allowed-column",
            "customer_key",
            "--allowed-column",
            "region",
            "--endpoint",
            "by_region",
            "--json",
        ]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["name"] == "cli" and body["row_scope"] == {"region": ["EU"]} and body["rate_limit"] == 10
    assert body["allowed_columns"] == ["customer_key", "region"] and body["allowed_endpoints"] == ["by_region"]
    assert "key" not in body and minted["key"] not in result.output
    assert call(client, minted["key"], "top").status_code == 403
    rows = call(client, minted["key"], "by_region").get_json()["rows"]
    assert {r["region"] for r in rows} == {"EU"} and set(rows[0]) == {"customer_key", "region"}

    wide = runner.invoke(
        args=[
            "keys",
            "update",
            "sales-serving",
            str(minted["id"]),
            "--all-endpoints",
            "--no-row-scope",
            "--all-columns",
        ]
    )
    assert wide.exit_code == 0, wide.output
    assert "allowed_endpoints\tNone" in wide.output and call(client, minted["key"], "top").status_code == 200


def test_keys_update_errors_are_one_line_and_nonzero(app, client, admin, service):  # noqa: F811
    minted = mint(client, admin, service)
    runner = app.test_cli_runner()
    cases = [
        (["--endpoint", "ghost"], "allowed_endpoints[0]"),
        (["--rate-limit", "0"], "rate_limit"),
        (["--row-scope", "region"], "--row-scope"),
        ([], "nothing to change"),
    ]
    for extra, words in cases:
        result = runner.invoke(args=["keys", "update", "sales-serving", str(minted["id"]), *extra])
        assert result.exit_code != 0 and words in result.output, (extra, result.output)
    missing = runner.invoke(args=["keys", "update", "sales-serving", "9999", "--name", "x"])
    assert missing.exit_code != 0 and "api key not found" in missing.output
    assert len([line for line in missing.output.splitlines() if line.strip()]) == 1
    help_text = runner.invoke(args=["keys", "update", "--help"]).output
    assert "Example:" in help_text and "--row-scope" in help_text


def test_keys_rotate_prints_the_new_secret_once(app, client, admin, service):  # noqa: F811
    minted = mint(client, admin, service)
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["keys", "rotate", "sales-serving", str(minted["id"]), "--grace-seconds", "600", "--json"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["key"].startswith("dk_") and body["grace_expires_at"]
    assert call(client, minted["key"], "top").status_code == 200 and call(client, body["key"], "top").status_code == 200
    again = runner.invoke(args=["keys", "rotate", "sales-serving", str(minted["id"])])
    assert again.exit_code == 0, again.output
    newest = again.output.strip().splitlines()[-1]
    assert call(client, body["key"], "top").status_code == 401 and call(client, newest, "top").status_code == 200
    bad = runner.invoke(args=["keys", "rotate", "sales-serving", str(minted["id"]), "--grace-seconds", "90000"])
    assert bad.exit_code != 0 and "grace-seconds" in bad.output
    assert "Example:" in runner.invoke(args=["keys", "rotate", "--help"]).output


def test_services_delete(app, client, admin, service):  # noqa: F811
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["services", "delete", "sales-serving", "--yes"])
    assert refused.exit_code != 0 and "unpublish" in refused.output
    assert client.get(f"/api/publish/assets/{service}", headers=admin.headers).status_code == 200
    aborted = runner.invoke(args=["services", "delete", "sales-serving", "--force"], input="n\n")
    assert aborted.exit_code != 0
    assert client.get(f"/api/publish/assets/{service}", headers=admin.headers).status_code == 200
    done = runner.invoke(args=["services", "delete", "sales-serving", "--force", "--yes"])
    assert done.exit_code == 0, done.output
    assert client.get(f"/api/publish/assets/{service}", headers=admin.headers).status_code == 404
    gone = runner.invoke(args=["services", "delete", "sales-serving", "--yes"])
    assert gone.exit_code != 0 and "no asset" in gone.output
    assert "Example:" in runner.invoke(args=["services", "delete", "--help"]).output
