"""Operator CLI for services, keys and workers, through Flask's CLI runner."""

from tests.publishing.test_assets import LOOKUP, _create
from tests.serving.test_serving_data import call
from tests.warehouse_tables import create_dataset


def test_services_and_keys_commands(app, client, admin, project):
    create_dataset(app, project["project_id"])
    _create(client, admin, project["project_id"], endpoints=[LOOKUP])
    runner = app.test_cli_runner()

    listed = runner.invoke(args=["services", "list"])
    assert "sales-serving\tapi_service\tdraft" in listed.output
    published = runner.invoke(args=["services", "publish", "sales-serving", "--note", "from cli"])
    assert published.exit_code == 0 and "version 1" in published.output
    assert "published\t1\tcustomer" in runner.invoke(args=["services", "list"]).output

    minted = runner.invoke(args=["keys", "mint", "sales-serving", "--name", "ops", "--endpoint", "customer",
                                 "--rate-limit", "50"])  # fmt: skip
    assert minted.exit_code == 0, minted.output
    secret = minted.output.strip().splitlines()[-1]
    assert secret.startswith("dk_")
    assert call(client, secret, "customer", query_string={"id": "1"}).status_code == 200

    keys = runner.invoke(args=["keys", "list", "sales-serving"])
    assert "ops" in keys.output and secret not in keys.output and "customer" in keys.output
    key_id = keys.output.splitlines()[1].split("\t")[0]
    assert runner.invoke(args=["keys", "revoke", "sales-serving", key_id]).exit_code == 0
    assert call(client, secret, "customer", query_string={"id": "1"}).status_code == 403

    bad = runner.invoke(args=["keys", "mint", "sales-serving", "--name", "x", "--endpoint", "ghost"])
    assert bad.exit_code != 0 and "ghost" in bad.output
    assert runner.invoke(args=["services", "unpublish", "sales-serving"]).exit_code == 0
    assert call(client, secret, "customer", query_string={"id": "1"}).status_code in (403, 404)
    assert runner.invoke(args=["services", "publish", "nope"]).exit_code != 0


def test_workers_status_shows_the_live_worker(app, worker):
    result = app.test_cli_runner().invoke(args=["workers", "status"])
    assert result.exit_code == 0, result.output
    assert "1 live worker(s)" in result.output
    assert "predict: 0 waiting, 1 consumer(s)" in result.output
