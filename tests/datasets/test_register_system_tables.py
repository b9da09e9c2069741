"""Registering only user tables of granted schemas: never the databases' catalogs, SQLite's internal tables or views,
on every backend; and grants required by default, so a self-signed-up organization registers nothing unasked
(issue 12, item 10)."""

from __future__ import annotations

import io
import uuid

import sqlalchemy as sa

from tests.conftest import sign_up


def _register(client, account, project_id: int, schema: str, table: str, name: str | None = None):
    body = {"schema": schema, "table": table, **({"name": name} if name else {})}
    return client.post("/api/flow/datasets/register", headers=account.project_headers(project_id), json=body)


def _field(resp, status: int = 422) -> list[str]:
    assert resp.status_code == status, resp.get_json()
    return list(resp.get_json()["error"]["details"]["fields"])


def _own_project(client, account) -> int:
    resp = client.post("/api/projects", headers=account.headers, json={"name": "P", "slug": f"p{uuid.uuid4().hex[:6]}"})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["project_id"]


def test_a_self_signed_up_organization_needs_a_grant_by_default(app, client, admin, project):
    """No setting changed: the default configuration requires an operator's grant of the schema."""
    from app.extensions import warehouse
    from app.warehouse.engine import ensure_schema

    schema = app.config["WAREHOUSE_SCHEMA_PREFIX"] + "ext"
    name = f"unclaimed_{uuid.uuid4().hex[:8]}"
    with app.app_context():
        engine = warehouse.get()
        ensure_schema(engine, schema)
        table = sa.Table(name, sa.MetaData(), sa.Column("id", sa.Integer), schema=schema)
        with engine.begin() as conn:
            table.create(conn)
    try:
        resp = _register(client, admin, project["project_id"], schema, name)
        assert _field(resp, 403) == ["schema"]
        assert resp.get_json()["error"]["code"] == "permission_denied"
        headers = admin.project_headers(project["project_id"])
        assert client.get("/api/datasets", headers=headers).get_json() == {"items": []}
    finally:
        with app.app_context(), warehouse.get().begin() as conn:
            table.drop(conn)


def test_catalogs_internal_tables_and_views_are_refused_even_in_a_granted_schema(app, client, admin, project):
    from app.datasets.grants import grant_schema
    from app.extensions import warehouse

    prefix = app.config["WAREHOUSE_SCHEMA_PREFIX"]
    uploads, ext = f"{prefix}uploads", f"{prefix}ext"
    # A victim's upload: its table and DDL are what sqlite_master would list.
    victim = sign_up(client)
    victim_project = _own_project(client, victim)
    uploaded = client.post(
        "/api/datasets/file/upload",
        headers=victim.project_headers(victim_project),
        data={"file": (io.BytesIO(b"ssn\n111-22-3333\n"), "secret.csv")},
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 201, uploaded.get_json()

    view = f"v_{uuid.uuid4().hex[:8]}"
    with app.app_context():
        for schema in (uploads, ext):
            grant_schema(admin.org_id, schema)
        engine = warehouse.get()
        from app.warehouse.engine import ensure_schema

        ensure_schema(engine, ext)
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE VIEW "{ext}"."{view}" AS SELECT 1 AS x')
    try:
        pid = project["project_id"]
        for internal in ("sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_sequence", "sqlite_stat1"):
            assert _field(_register(client, admin, pid, uploads, internal)) == ["table"], internal
            # A dataset name of one's own choosing does not get around it (it did before: `loot.tables`).
            assert _field(_register(client, admin, pid, uploads, internal, name="loot.tables")) == ["table"], internal
        for schema, table in (
            ("information_schema", "tables"),
            ("pg_catalog", "pg_tables"),
            ("pg_catalog", "pg_class"),
            ("pg_toast", "x"),
            ("temp", "x"),
            ("sqlite_temp", "x"),
        ):
            assert _field(_register(client, admin, pid, schema, table)) == ["schema"], (schema, table)
        not_table = _register(client, admin, pid, ext, view)
        assert _field(not_table) == ["table"]
        assert "view" in not_table.get_json()["error"]["message"]
        headers = admin.project_headers(pid)
        assert client.get("/api/datasets", headers=headers).get_json() == {"items": []}

        # An operator cannot grant a catalog either.
        runner = app.test_cli_runner()
        from app.datasets.cli import register_datasets_cli
        from app.db import Organization
        from app.extensions import db

        if "datasets" not in app.cli.commands:
            register_datasets_cli(app)
        with app.app_context():
            org_name = db.session.get(Organization, admin.org_id).name
        for schema in ("information_schema", "pg_catalog"):
            refused = runner.invoke(args=["datasets", "grant-schema", org_name, schema])
            assert refused.exit_code != 0 and "catalog" in refused.output, refused.output
    finally:
        with app.app_context(), warehouse.get().begin() as conn:
            conn.exec_driver_sql(f'DROP VIEW IF EXISTS "{ext}"."{view}"')
