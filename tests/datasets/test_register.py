"""Registering tables that already exist in the warehouse (org admins only)."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from tests.conftest import add_user

ROWS = [
    {"customer_key": 1, "email": "ada@example.com", "tenure": 12},
    {"customer_key": 2, "email": "alan@example.com", "tenure": 3},
]


def grant(app, org_id: int, schema: str) -> None:
    """What an operator does first (`flask datasets grant-schema`): grants are required by default."""
    from app.datasets.grants import grant_schema

    with app.app_context():
        grant_schema(org_id, schema)


@pytest.fixture()
def external_table(app) -> tuple[str, str]:
    """A table someone else loaded into the warehouse: (schema, table)."""
    from app.extensions import warehouse
    from app.warehouse.engine import ensure_schema

    schema = app.config["WAREHOUSE_SCHEMA_PREFIX"] + "ext"
    table_name = f"customers_{uuid.uuid4().hex[:8]}"
    with app.app_context():
        engine = warehouse.get()
        ensure_schema(engine, schema)
        table = sa.Table(
            table_name,
            sa.MetaData(),
            sa.Column("customer_key", sa.BigInteger),
            sa.Column("email", sa.Text),
            sa.Column("tenure", sa.Integer),
            schema=schema,
        )
        with engine.begin() as conn:
            table.create(conn)
            conn.execute(table.insert(), ROWS)
    yield schema, table_name
    with app.app_context(), warehouse.get().begin() as conn:
        table.drop(conn, checkfirst=True)


def test_admin_registers_an_existing_table(app, client, admin, project, external_table):
    schema, table = external_table
    grant(app, admin.org_id, schema)
    headers = admin.project_headers(project["project_id"])
    resp = client.post("/api/flow/datasets/register", headers=headers, json={"schema": schema, "table": table})
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["name"] == f"{schema}.{table}"
    assert body["source"] == "registered"
    assert body["row_count"] == 2
    assert [(c["name"], c["type"], c["sensitivity"]) for c in body["columns"]] == [
        ("customer_key", "integer", "low"),
        ("email", "text", "high"),
        ("tenure", "integer", "low"),
    ]
    preview = client.get(f"/api/datasets/{schema}.{table}/preview", headers=headers).get_json()
    assert preview["rows"] == ROWS

    named = client.post(
        "/api/flow/datasets/register",
        headers=headers,
        json={"schema": schema, "table": table, "name": "Marts.Dim Customer"},
    )
    assert named.status_code == 201, named.get_json()
    assert named.get_json()["name"] == "marts.dim_customer"
    again = client.post(
        "/api/flow/datasets/register",
        headers=headers,
        json={"schema": schema, "table": table, "name": "marts.dim_customer"},
    )
    assert again.status_code == 409
    assert again.get_json()["error"]["details"]["fields"] == {"name": ["already exists"]}


def test_register_refuses_tables_that_are_missing_or_not_warehouse_data(
    app, client, admin, project, upload, metadata_schema
):
    headers = admin.project_headers(project["project_id"])
    prefix = client.application.config["WAREHOUSE_SCHEMA_PREFIX"]
    for schema in ("ext", metadata_schema or "main", f"{prefix}uploads"):
        grant(app, admin.org_id, schema)

    def register(schema, table):
        return client.post("/api/flow/datasets/register", headers=headers, json={"schema": schema, "table": table})

    def field_of(resp):
        assert resp.status_code == 422, resp.get_json()
        return list(resp.get_json()["error"]["details"]["fields"])

    assert field_of(register("ext", "no_such_table")) == ["table"]
    assert field_of(register("Bad Schema", "x")) == ["schema"]
    assert field_of(register("ext", "DROP TABLE x")) == ["table"]
    assert field_of(register("pg_catalog", "pg_authid")) == ["schema"]
    # Apiary's own tables (on PostgreSQL in the same database as the warehouse) are never exposed.
    own = register(metadata_schema or "main", "users")
    assert field_of(own) == ["table"]
    if metadata_schema:  # on SQLite the metadata is another file, so the table is simply not in the warehouse
        assert "Apiary's own tables" in own.get_json()["error"]["message"]
    # Another project's upload cannot be taken over by naming its physical table.
    assert upload("id\n1\n", name="mine").status_code == 201
    assert field_of(register(f"{prefix}uploads", f"p{project['project_id']}__mine")) == ["table"]
    missing = client.post("/api/flow/datasets/register", headers=headers, json={"table": "x"})
    assert field_of(missing) == ["schema"]


def test_only_org_admins_register(client, admin, project, external_table):
    schema, table = external_table
    for role in ("designer", "analyst", "viewer"):
        user = add_user(client, admin, role)
        resp = client.post(
            "/api/flow/datasets/register",
            headers=user.project_headers(project["project_id"]),
            json={"schema": schema, "table": table},
        )
        assert resp.status_code == 403, role
        assert resp.get_json()["error"]["code"] == "permission_denied"
    headers = admin.project_headers(project["project_id"])
    assert client.get("/api/datasets", headers=headers).get_json() == {"items": []}


def test_preview_after_the_table_was_dropped_says_so(app, client, admin, project, external_table):
    from app.extensions import warehouse

    schema, table = external_table
    grant(app, admin.org_id, schema)
    headers = admin.project_headers(project["project_id"])
    body = {"schema": schema, "table": table, "name": "ext.gone"}
    assert client.post("/api/flow/datasets/register", headers=headers, json=body).status_code == 201
    with app.app_context(), warehouse.get().begin() as conn:
        conn.exec_driver_sql(f'DROP TABLE "{schema}"."{table}"')
    resp = client.get("/api/datasets/ext.gone/preview", headers=headers)
    assert resp.status_code == 409
    assert resp.get_json()["error"]["code"] == "table_missing"
    assert client.get("/api/datasets/ext.gone", headers=headers).status_code == 200


def test_a_table_registered_by_one_organization_cannot_be_registered_by_another(
    app, client, admin, project, external_table
):
    from tests.conftest import sign_up

    schema, table = external_table
    grant(app, admin.org_id, schema)
    first = client.post(
        "/api/flow/datasets/register",
        headers=admin.project_headers(project["project_id"]),
        json={"schema": schema, "table": table},
    )
    assert first.status_code == 201, first.get_json()

    other = sign_up(client)
    grant(app, other.org_id, schema)  # even with the schema granted, a claimed table stays its first owner's
    other_project = client.post("/api/projects", headers=other.headers, json={"name": "Theirs", "slug": "theirs"})
    headers = other.project_headers(other_project.get_json()["project_id"])
    resp = client.post("/api/flow/datasets/register", headers=headers, json={"schema": schema, "table": table})
    assert resp.status_code == 403, resp.get_json()
    assert resp.get_json()["error"]["details"]["fields"] == {"table": ["registered by another organization"]}
    listed = client.get("/api/datasets", headers=headers)
    assert listed.status_code == 200 and listed.get_json()["items"] == [], listed.get_json()

    # The owning organization can still register it in another of its projects.
    second = client.post("/api/projects", headers=admin.headers, json={"name": "Second", "slug": "second"})
    again = client.post(
        "/api/flow/datasets/register",
        headers=admin.project_headers(second.get_json()["project_id"]),
        json={"schema": schema, "table": table},
    )
    assert again.status_code == 201, again.get_json()


def test_with_grants_required_only_a_granted_schema_can_be_registered(
    app, client, admin, project, external_table, monkeypatch
):
    from app.datasets.cli import register_datasets_cli
    from app.db import Organization
    from app.extensions import db

    if "datasets" not in app.cli.commands:
        register_datasets_cli(app)
    runner = app.test_cli_runner()
    monkeypatch.setitem(app.config, "REGISTER_REQUIRES_GRANT", True)
    schema, table = external_table
    headers = admin.project_headers(project["project_id"])
    with app.app_context():
        org_name = db.session.get(Organization, admin.org_id).name

    def register(name: str | None = None, table_name: str = table):
        return client.post(
            "/api/flow/datasets/register",
            headers=headers,
            json={"schema": schema, "table": table_name, **({"name": name} if name else {})},
        )

    refused = register()
    assert refused.status_code == 403, refused.get_json()
    assert refused.get_json()["error"]["details"]["fields"] == {"schema": ["not granted to this organization"]}
    # The same answer for a table that does not exist: an ungranted schema cannot be probed.
    assert (
        register(table_name="no_such_table").get_json()["error"]["details"]["fields"]
        == refused.get_json()["error"]["details"]["fields"]
    )
    assert client.get("/api/datasets", headers=headers).get_json() == {"items": []}

    granted = runner.invoke(args=["datasets", "grant-schema", org_name, schema])
    assert granted.exit_code == 0 and f"may register tables of {schema}" in granted.output, granted.output
    assert "already could" in runner.invoke(args=["datasets", "grant-schema", org_name, schema]).output
    listed = runner.invoke(args=["datasets", "schema-grants", "--org", org_name])
    assert listed.output.splitlines() == [f"{org_name}\t{schema}"]
    assert register().status_code == 201

    # Another organization is not covered by this grant.
    from tests.conftest import sign_up

    other = sign_up(client)
    theirs = client.post("/api/projects", headers=other.headers, json={"name": "Theirs", "slug": "theirs"}).get_json()
    resp = client.post(
        "/api/flow/datasets/register",
        headers=other.project_headers(theirs["project_id"]),
        json={"schema": schema, "table": table},
    )
    assert resp.get_json()["error"]["details"]["fields"] == {"schema": ["not granted to this organization"]}

    revoked = runner.invoke(args=["datasets", "revoke-schema", org_name, schema])
    assert revoked.exit_code == 0, revoked.output
    assert register(name="ext.second").status_code == 403  # registered datasets stay; new ones need a grant again
    assert client.get(f"/api/datasets/{schema}.{table}", headers=headers).status_code == 200
    assert runner.invoke(args=["datasets", "revoke-schema", org_name, schema]).exit_code != 0
    bad = runner.invoke(args=["datasets", "grant-schema", org_name, "Bad Schema"])
    assert bad.exit_code != 0
    assert runner.invoke(args=["datasets", "grant-schema", "No Such Org", schema]).exit_code != 0
