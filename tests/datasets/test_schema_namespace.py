"""Uploads create tables only in the built-in or operator-granted schemas, and a SQLite warehouse attaches only the
schemas a statement reads: no tenant can exhaust SQLite's ten attached databases for everyone (issue 12, item 1)."""

from __future__ import annotations

import io
import os
import uuid

from tests.conftest import sign_up
from tests.warehouse_tables import create_dataset

LOOKUP = {"id": "customer", "kind": "lookup", "dataset": "marts.dim_customer", "key_column": "customer_key"}
TOP = {
    "id": "top",
    "kind": "sql",
    "query": {
        "source": {"schema": "marts", "table": "dim_customer"},
        "columns": ["customer_key", "tenure"],
        "order_by": [{"column": "tenure", "dir": "desc"}],
    },
}


def _upload(client, account, project_id: int, name: str, content: str = "id,v\n1,a\n"):
    return client.post(
        "/api/datasets/file/upload",
        headers=account.project_headers(project_id),
        data={"file": (io.BytesIO(content.encode()), "data.csv"), "name": name},
        content_type="multipart/form-data",
    )


def _victim_service(app, client) -> tuple[str, str]:
    """Another organization with a published sql+lookup service over marts.dim_customer: (asset_key, key)."""
    victim = sign_up(client)
    project = client.post("/api/projects", headers=victim.headers, json={"name": "V", "slug": "v"}).get_json()
    create_dataset(app, project["project_id"])
    asset_key = f"victim-{uuid.uuid4().hex[:8]}"
    created = client.post(
        "/api/publish/assets",
        headers=victim.project_headers(project["project_id"]),
        json={
            "asset_type": "api_service",
            "asset_key": asset_key,
            "title": "Victim",
            "config": {"endpoints": [LOOKUP, TOP]},
        },
    )
    assert created.status_code == 201, created.get_json()
    asset_id = created.get_json()["id"]
    assert client.post(f"/api/publish/assets/{asset_id}/publish", headers=victim.headers).status_code == 200
    minted = client.post(f"/api/publish/assets/{asset_id}/api-keys", headers=victim.headers, json={"name": "k"})
    assert minted.status_code == 201, minted.get_json()
    return asset_key, minted.get_json()["key"]


def _victim_calls(client, asset_key: str, key: str) -> list[int]:
    headers = {"X-API-Key": key}
    lookup = client.get(f"/api/service/{asset_key}/customer?id=3", headers=headers)
    top = client.get(f"/api/service/{asset_key}/top", headers=headers)
    if lookup.status_code == 200:
        assert lookup.get_json()["rows"][0]["customer_key"] == 3
    if top.status_code == 200:
        assert [r["tenure"] for r in top.get_json()["rows"]] == [30, 18, 12, 7, 3]
    return [lookup.status_code, top.status_code]


def test_uploads_naming_new_schemas_are_refused_and_other_tenants_keep_working(app, client, admin, project):
    asset_key, key = _victim_service(app, client)
    assert _victim_calls(client, asset_key, key) == [200, 200]

    run = uuid.uuid4().hex[:6]
    attempts = [_upload(client, admin, project["project_id"], f"s{run}_{i}.t") for i in range(12)]

    # The victim's sql and lookup calls still answer, however many schemas the attacker asked for.
    assert _victim_calls(client, asset_key, key) == [200, 200]
    for resp in attempts:
        assert resp.status_code == 403, resp.get_json()
        error = resp.get_json()["error"]
        assert error["code"] == "permission_denied"
        assert list(error["details"]["fields"]) == ["name"]
        assert "not granted" in error["message"]
    headers = admin.project_headers(project["project_id"])
    assert client.get("/api/datasets", headers=headers).get_json() == {"items": []}
    if app.config["WAREHOUSE_URL"].startswith("sqlite"):  # nothing was created for the refused schemas
        prefix = app.config["WAREHOUSE_SCHEMA_PREFIX"]
        assert not [f for f in os.listdir(app.config["WAREHOUSE_DIR"]) if f.startswith(f"{prefix}s{run}_")]

    # The default schema and the schemas the demo and README use stay open to every organization.
    for name, stored in (("plain", "uploads.plain"), ("marts.dim_x", "marts.dim_x"), ("uploads.y", "uploads.y")):
        resp = _upload(client, admin, project["project_id"], name)
        assert resp.status_code == 201, resp.get_json()
        assert resp.get_json()["name"] == stored


def test_granted_schemas_take_uploads_and_queries_attach_only_what_they_read(app, client, admin, project):
    """More schemas than SQLite can attach at once, all granted by the operator: every one still serves."""
    from app.datasets.grants import grant_schema

    asset_key, key = _victim_service(app, client)
    run = uuid.uuid4().hex[:6]
    schemas = [f"g{run}_{i}" for i in range(12)]
    with app.app_context():
        for schema in schemas:
            grant_schema(admin.org_id, schema)
    headers = admin.project_headers(project["project_id"])
    for i, schema in enumerate(schemas):
        resp = _upload(client, admin, project["project_id"], f"{schema}.t", f"id,v\n{i},x{i}\n")
        assert resp.status_code == 201, resp.get_json()
        assert _victim_calls(client, asset_key, key) == [200, 200]
    for i, schema in enumerate(schemas):
        preview = client.get(f"/api/datasets/{schema}.t/preview", headers=headers)
        assert preview.status_code == 200, preview.get_json()
        assert preview.get_json()["rows"] == [{"id": i, "v": f"x{i}"}]
    assert _victim_calls(client, asset_key, key) == [200, 200]

    # Another organization has no grant: the same schema is refused to it.
    other = sign_up(client)
    theirs = client.post("/api/projects", headers=other.headers, json={"name": "T", "slug": "t"}).get_json()
    refused = _upload(client, other, theirs["project_id"], f"{schemas[0]}.t")
    assert refused.status_code == 403 and list(refused.get_json()["error"]["details"]["fields"]) == ["name"]


def test_a_broken_schema_file_is_a_503_naming_the_warehouse_and_other_schemas_keep_working(app, client, admin, project):
    """A platform fault (here a corrupted SQLite schema file) answers 503 warehouse_unavailable, never a bare 500."""
    from app.datasets.grants import grant_schema

    if not app.config["WAREHOUSE_URL"].startswith("sqlite"):
        return  # a file-level fault only exists for the SQLite warehouse; PostgreSQL has no schema files
    asset_key, key = _victim_service(app, client)
    schema = f"broken{uuid.uuid4().hex[:6]}"
    with app.app_context():
        grant_schema(admin.org_id, schema)
    assert _upload(client, admin, project["project_id"], f"{schema}.t").status_code == 201
    path = os.path.join(app.config["WAREHOUSE_DIR"], f"{app.config['WAREHOUSE_SCHEMA_PREFIX']}{schema}.db")
    try:
        with app.app_context():  # as after a restart: no connection holds the file open (closing checkpoints it)
            from app.extensions import warehouse

            warehouse.get().dispose()
        for suffix in ("-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.unlink(path + suffix)
        with open(path, "wb") as fh:
            fh.write(b"this is not a database file " * 200)
        headers = admin.project_headers(project["project_id"])
        resp = client.get(f"/api/datasets/{schema}.t/preview", headers=headers)
        assert resp.status_code == 503, resp.get_json()
        assert resp.get_json()["error"]["code"] == "warehouse_unavailable"
        assert _victim_calls(client, asset_key, key) == [200, 200]
    finally:
        os.unlink(path)
