"""`flask datasets upload|list`."""

from __future__ import annotations

import uuid

from tests.conftest import sign_up


def test_upload_and_list_by_slug_and_org(runner, client, tmp_path):
    org_name = f"Cli Org {uuid.uuid4().hex[:6]}"
    owner = sign_up(client, org_name=org_name)
    project = client.post("/api/projects", headers=owner.headers, json={"name": "Ops", "slug": "ops"}).get_json()
    csv = tmp_path / "Daily Sales.csv"
    csv.write_text("day,amount\n2024-01-01,10.5\n2024-01-02,7\n")

    result = runner.invoke(args=["datasets", "upload", str(csv), "--project", "ops", "--org", org_name])
    assert result.exit_code == 0, result.output
    assert "loaded 2 rows into uploads.daily_sales" in result.output
    assert "day date, amount float" in result.output

    again = runner.invoke(args=["datasets", "upload", str(csv), "--project", "ops", "--org", org_name])
    assert again.exit_code != 0 and "already exists" in again.output
    csv.write_text("day,amount\n2024-01-03,1\n")
    replaced = runner.invoke(
        args=[
            "datasets",
            "upload",
            str(csv),
            "--name",
            "daily sales",
            "--project",
            str(project["project_id"]),
            "--replace",
        ]
    )
    assert replaced.exit_code == 0, replaced.output
    assert "loaded 1 rows" in replaced.output

    listed = runner.invoke(args=["datasets", "list", "--project", "ops", "--org", org_name])
    assert listed.exit_code == 0, listed.output
    assert listed.output.strip() == "uploads.daily_sales\tupload\t1 rows\t2 columns"
    # The API sees what the CLI loaded.
    rows = client.get(
        "/api/datasets/uploads.daily_sales/preview", headers=owner.project_headers(project["project_id"])
    ).get_json()["rows"]
    assert rows == [{"day": "2024-01-03", "amount": 1.0}]


def test_cli_errors_are_plain_messages(runner, client, tmp_path):
    for org in ("Cli A", "Cli B"):
        owner = sign_up(client, org_name=f"{org} {uuid.uuid4().hex[:6]}")
        client.post("/api/projects", headers=owner.headers, json={"name": "Twin", "slug": "twin"})
    csv = tmp_path / "bad.csv"
    csv.write_text("a,b\n1\n")
    ambiguous = runner.invoke(args=["datasets", "upload", str(csv), "--project", "twin"])
    assert ambiguous.exit_code != 0 and "--org" in ambiguous.output
    unknown = runner.invoke(args=["datasets", "list", "--project", "nowhere"])
    assert unknown.exit_code != 0 and "project 'nowhere' not found" in unknown.output
    project_id = client.post("/api/projects", headers=owner.headers, json={"name": "P", "slug": "p"}).get_json()[
        "project_id"
    ]
    bad = runner.invoke(args=["datasets", "upload", str(csv), "--project", str(project_id)])
    assert bad.exit_code != 0 and "line 2" in bad.output
