"""Uploading CSV files: inferred types, name normalisation, replace, bad files and their errors."""

from __future__ import annotations

from tests.conftest import add_user

TYPED_CSV = (
    "Order ID,Unit Price,Paid,Order Date,Shipped At,Region\n"
    "1,2.5,true,2024-01-31,2024-01-31T10:00:00Z,EU\n"
    "2,3,no,2024-02-01,2024-02-01 11:30,US\n"
    "3,,yes,,,\n"
)


def test_upload_infers_each_type_and_serves_the_rows(client, admin, project, upload):
    resp = upload(TYPED_CSV, name="orders", description="Orders of 2024")
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["name"] == "uploads.orders"
    assert body["row_count"] == 3
    assert body["friendly_name"] == "orders"
    assert body["description"] == "Orders of 2024"
    assert body["source"] == "upload"
    assert [(c["name"], c["type"]) for c in body["columns"]] == [
        ("order_id", "integer"),
        ("unit_price", "float"),
        ("paid", "boolean"),
        ("order_date", "date"),
        ("shipped_at", "timestamp"),
        ("region", "text"),
    ]

    preview = client.get("/api/datasets/uploads.orders/preview", headers=admin.project_headers(project["project_id"]))
    assert preview.status_code == 200, preview.get_json()
    assert preview.get_json()["rows"] == [
        {
            "order_id": 1,
            "unit_price": 2.5,
            "paid": True,
            "order_date": "2024-01-31",
            "shipped_at": "2024-01-31T10:00:00",
            "region": "EU",
        },
        {
            "order_id": 2,
            "unit_price": 3.0,
            "paid": False,
            "order_date": "2024-02-01",
            "shipped_at": "2024-02-01T11:30:00",
            "region": "US",
        },
        {"order_id": 3, "unit_price": None, "paid": True, "order_date": None, "shipped_at": None, "region": None},
    ]


def test_names_are_normalised_and_default_to_the_file_name(client, admin, project, upload):
    typed = upload("a\n1\n", name="  Sales-2024 Q1 ")
    assert typed.status_code == 201, typed.get_json()
    assert typed.get_json()["name"] == "uploads.sales_2024_q1"
    assert typed.get_json()["friendly_name"] == "Sales-2024 Q1"

    with_schema = upload("a\n1\n", name="Marts.Dim Region")
    assert with_schema.get_json()["name"] == "marts.dim_region"

    from_file = upload("a\n1\n", filename="Weekly Report.CSV")
    assert from_file.status_code == 201, from_file.get_json()
    assert from_file.get_json()["name"] == "uploads.weekly_report"

    headers = admin.project_headers(project["project_id"])
    # The URL takes the name as typed too.
    assert client.get("/api/datasets/Sales-2024 Q1", headers=headers).get_json()["name"] == "uploads.sales_2024_q1"
    names = [d["name"] for d in client.get("/api/datasets", headers=headers).get_json()["items"]]
    assert names == ["marts.dim_region", "uploads.sales_2024_q1", "uploads.weekly_report"]


def test_bad_names_are_422_on_name(upload):
    for name in ("a.b.c", "9lives", "sales$", "pg_catalog.x", "x" * 64):
        resp = upload("a\n1\n", name=name)
        assert resp.status_code == 422, (name, resp.get_json())
        assert "name" in resp.get_json()["error"]["details"]["fields"]


def test_existing_name_is_409_until_replace_true(client, admin, project, upload):
    headers = admin.project_headers(project["project_id"])
    assert upload("a,b\n1,x\n", name="stock").status_code == 201
    put = client.put(
        "/api/datasets/uploads.stock/settings",
        headers=headers,
        json={"masking": {"b": {"strategy": "full"}}, "friendly_name": "Stock"},
    )
    assert put.status_code == 200, put.get_json()

    again = upload("a,b\n2,y\n", name="stock")
    assert again.status_code == 409
    assert again.get_json()["error"]["details"]["fields"] == {"name": ["already exists"]}
    explicit_false = upload("a,b\n2,y\n", name="stock", replace="false")
    assert explicit_false.status_code == 409

    replaced = upload("a,c\n7,z\n8,w\n", name="stock", replace="true")
    assert replaced.status_code == 201, replaced.get_json()
    body = replaced.get_json()
    assert body["row_count"] == 2
    assert [c["name"] for c in body["columns"]] == ["a", "c"]
    assert body["friendly_name"] == "Stock"  # settings survive a replace
    assert body["masking"] == {}  # ... except overrides of columns the new file no longer has
    rows = client.get("/api/datasets/uploads.stock/preview", headers=headers).get_json()["rows"]
    assert rows == [{"a": 7, "c": "z"}, {"a": 8, "c": "w"}]
    assert len(client.get("/api/datasets", headers=headers).get_json()["items"]) == 1


def test_bad_row_is_400_naming_line_and_column_and_writes_nothing(client, admin, project, upload, warehouse_table):
    headers = admin.project_headers(project["project_id"])
    resp = upload("id,amount\n1,10\n2,ten\n", name="broken_amounts", types='{"Amount": "integer"}')
    assert resp.status_code == 400, resp.get_json()
    error = resp.get_json()["error"]
    assert "line 3" in error["message"] and "'amount'" in error["message"]
    assert error["details"]["line"] == 3 and error["details"]["column"] == "amount"
    assert client.get("/api/datasets/uploads.broken_amounts", headers=headers).status_code == 404
    assert not warehouse_table(project["project_id"], "uploads.broken_amounts")

    ragged = upload("id,amount\n1,10\n2\n", name="broken_ragged")
    assert ragged.status_code == 400
    assert ragged.get_json()["error"]["details"]["line"] == 3
    assert not warehouse_table(project["project_id"], "uploads.broken_ragged")


def test_failed_replace_leaves_the_dataset_and_table_intact(client, admin, project, upload):
    headers = admin.project_headers(project["project_id"])
    assert upload("id,v\n1,a\n", name="keep_me").status_code == 201
    failed = upload("id,v\n1,a\n2\n", name="keep_me", replace="true")
    assert failed.status_code == 400
    assert client.get("/api/datasets/uploads.keep_me", headers=headers).get_json()["row_count"] == 1
    rows = client.get("/api/datasets/uploads.keep_me/preview", headers=headers).get_json()["rows"]
    assert rows == [{"id": 1, "v": "a"}]


def test_file_is_required_and_must_be_csv(upload):
    missing = upload(None, name="x")
    assert missing.status_code == 422
    assert "file" in missing.get_json()["error"]["details"]["fields"]
    not_csv = upload("a\n1\n", name="x", filename="data.xlsx")
    assert not_csv.status_code == 422
    assert "file" in not_csv.get_json()["error"]["details"]["fields"]


def test_bad_form_fields_are_422(upload):
    bad_replace = upload("a\n1\n", name="x", replace="perhaps")
    assert bad_replace.status_code == 422
    assert "replace" in bad_replace.get_json()["error"]["details"]["fields"]
    bad_types = upload("a\n1\n", name="x", types="{not json")
    assert "types" in bad_types.get_json()["error"]["details"]["fields"]
    unknown_type = upload("a\n1\n", name="x", types='{"a": "money"}')
    assert unknown_type.status_code == 422
    assert "types.a" in unknown_type.get_json()["error"]["details"]["fields"]


def test_upload_needs_project_header_and_edit_permission(client, admin, project, upload):
    no_header = upload("a\n1\n", name="x", headers=admin.headers)
    assert no_header.status_code == 400
    assert "X-Project-Id" in no_header.get_json()["error"]["message"]
    analyst = add_user(client, admin, "analyst")
    denied = upload("a\n1\n", name="x", headers=analyst.project_headers(project["project_id"]))
    assert denied.status_code == 403
    designer = add_user(client, admin, "designer")
    assert upload("a\n1\n", name="x", headers=designer.project_headers(project["project_id"])).status_code == 201
    unauthenticated = upload("a\n1\n", name="x", headers={"X-Project-Id": str(project["project_id"])})
    assert unauthenticated.status_code == 401


def test_a_table_left_without_a_dataset_is_overwritten(app, client, admin, project, upload):
    """A physical table no dataset points at (its project was deleted and the id reused) does not block an upload."""
    import sqlalchemy as sa

    from app.extensions import warehouse
    from app.warehouse.engine import ensure_schema

    schema = app.config["WAREHOUSE_SCHEMA_PREFIX"] + "uploads"
    table = sa.Table(f"p{project['project_id']}__leftover", sa.MetaData(), sa.Column("old", sa.Text), schema=schema)
    with app.app_context():
        ensure_schema(warehouse.get(), schema)
        with warehouse.get().begin() as conn:
            table.drop(conn, checkfirst=True)
            table.create(conn)
    resp = upload("new\n1\n", name="leftover")
    assert resp.status_code == 201, resp.get_json()
    rows = client.get("/api/datasets/uploads.leftover/preview", headers=admin.project_headers(project["project_id"]))
    assert rows.get_json()["rows"] == [{"new": 1}]


def test_too_many_columns_is_a_400_naming_the_limit(app, client, admin, project, upload, monkeypatch):
    """A CSV wider than UPLOAD_MAX_COLUMNS (default 2,000; PostgreSQL's own limit is 1,600) is refused before any row
    is read, never a 500 from the database (issue 12, item 17)."""
    backend_limit = 2000 if app.config["WAREHOUSE_URL"].startswith("sqlite") else 1600
    wide = ",".join(f"c{i}" for i in range(2001)) + "\n" + ",".join("1" for _ in range(2001)) + "\n"
    resp = upload(wide, name="too_wide")
    assert resp.status_code == 400, resp.get_json()
    error = resp.get_json()["error"]
    assert error["code"] == "too_many_columns"
    assert error["details"]["max_columns"] == backend_limit and error["details"]["columns"] == 2001
    assert f"at most {backend_limit:,}" in error["message"] and list(error["details"]["fields"]) == ["file"]
    headers = admin.project_headers(project["project_id"])
    assert client.get("/api/datasets/uploads.too_wide", headers=headers).status_code == 404

    monkeypatch.setitem(app.config, "UPLOAD_MAX_COLUMNS", 3)
    assert upload("a,b,c\n1,2,3\n", name="three").status_code == 201
    four = upload("a,b,c,d\n1,2,3,4\n", name="four")
    assert four.status_code == 400 and four.get_json()["error"]["details"]["max_columns"] == 3
