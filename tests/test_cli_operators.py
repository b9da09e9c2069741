"""Operator CLI for services, keys, dataset uploads and workers, through Flask's CLI runner."""

import io

import click

from app.datasets.cli import ProgressReader
from tests.conftest import RUN_ID
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

    minted = runner.invoke(
        args=["keys", "mint", "sales-serving", "--name", "ops", "--endpoint", "customer", "--rate-limit", "50"]
    )
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
    # A live key sees the unpublish: 200 before it, 404 (no published asset) after it.
    live = runner.invoke(args=["keys", "mint", "sales-serving", "--name", "live"]).output.strip().splitlines()[-1]
    assert call(client, live, "customer", query_string={"id": "1"}).status_code == 200
    assert runner.invoke(args=["services", "unpublish", "sales-serving"]).exit_code == 0
    assert call(client, live, "customer", query_string={"id": "1"}).status_code == 404
    assert runner.invoke(args=["services", "publish", "nope"]).exit_code != 0


def test_services_list_filters_and_key_options(app, client, admin, project):
    create_dataset(app, project["project_id"])
    _create(client, admin, project["project_id"], endpoints=[LOOKUP])
    runner = app.test_cli_runner()
    assert "sales-serving" in runner.invoke(args=["services", "list", "--org-id", str(admin.org_id)]).output
    assert (
        "sales-serving" in runner.invoke(args=["services", "list", "--project-id", str(project["project_id"])]).output
    )
    assert "sales-serving" not in runner.invoke(args=["services", "list", "--project-id", "999999"]).output
    assert "sales-serving" not in runner.invoke(args=["services", "list", "--org-id", "999999"]).output

    as_nobody = runner.invoke(args=["services", "publish", "sales-serving", "--user", "nobody@example.com"])
    assert as_nobody.exit_code != 0 and "nobody@example.com" in as_nobody.output
    assert runner.invoke(args=["services", "publish", "sales-serving"]).exit_code == 0

    masked = runner.invoke(args=["keys", "mint", "sales-serving", "--name", "app"]).output.strip().splitlines()[-1]
    opened = runner.invoke(
        args=[
            "keys",
            "mint",
            "sales-serving",
            "--name",
            "ops",
            "--expires-days",
            "0",
            "--masking-level",
            "unmasked",
            "--sensitivity-max",
            "critical",
        ]
    )
    assert opened.exit_code == 0, opened.output
    unmasked = opened.output.strip().splitlines()[-1]
    row = call(client, masked, "customer", query_string={"id": "1"}).get_json()["rows"][0]
    assert row["name"] != "Ada Lovelace" and row["ssn"] == "[BLOCKED]"
    row = call(client, unmasked, "customer", query_string={"id": "1"}).get_json()["rows"][0]
    assert row["name"] == "Ada Lovelace" and row["ssn"] == "111-22-3333"
    listed = {
        line.split("\t")[2]: line.split("\t")
        for line in runner.invoke(args=["keys", "list", "sales-serving"]).output.splitlines()[1:]
    }
    assert listed["ops"][5] == "never" and listed["app"][5] != "never" and listed["ops"][4] == "100"


def test_datasets_upload_shows_a_progress_bar(app, admin, project, tmp_path):
    big = tmp_path / "events.csv"
    with big.open("w") as fh:  # a few MiB, so the loader reads it in several chunks
        fh.write("event_id,kind,amount\n")
        fh.writelines(f"{i},{'click' if i % 3 else 'view'},{i * 0.25}\n" for i in range(150_000))
    result = app.test_cli_runner().invoke(
        args=["datasets", "upload", str(big), "--name", "raw.events", "--project", str(project["project_id"])]
    )
    assert result.exit_code == 0, result.output
    assert "reading events.csv" in result.output  # the bar's label (a terminal also gets the moving bar)
    assert "loaded 150000 rows into raw.events" in result.output

    # The reader the upload goes through advances the bar by every byte read, up to the file's full size.
    size = big.stat().st_size
    with big.open("rb") as raw, click.progressbar(length=size, file=io.StringIO()) as bar:
        reader = ProgressReader(raw, bar)
        while reader.read(1 << 20):
            pass
        assert bar.pos == size


def test_workers_status_shows_the_live_worker(app, worker):
    result = app.test_cli_runner().invoke(args=["workers", "status"])
    assert result.exit_code == 0, result.output
    assert "1 live worker(s)" in result.output
    assert f"test-{RUN_ID}@" in result.output
    assert ": default, functions, predict, train" in result.output  # the queues the worker consumes
    for queue in ("predict", "train", "functions", "default"):
        assert f"{queue}: 0 waiting, 1 consumer(s)" in result.output
