"""Publishing a service indexes its lookup keys and sql `eq` filter columns in the warehouse, on a worker."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa

from app.warehouse.indexes import MAX_NAME, index_name
from tests.console.conftest import signed_in

ROWS = 3000
NAME = "marts.customers"


def customers_csv() -> str:
    lines = ["customer_key,region,plan,tenure"]
    lines += [f"{i},{('EU', 'US', 'APAC')[i % 3]},{('basic', 'premium')[i % 2]},{i % 40}" for i in range(1, ROWS + 1)]
    return "\n".join(lines) + "\n"


LOOKUP = {"id": "customer", "kind": "lookup", "dataset": NAME, "key_column": "customer_key"}
BY_REGION = {
    "id": "by_region",
    "kind": "sql",
    "query": {
        "source": {"schema": "marts", "table": "customers"},
        "filters": [
            {"column": "region", "op": "eq", "param": "region"},
            {"column": "plan", "op": "eq", "value": "premium"},
            {"column": "tenure", "op": "gte", "param": "min_tenure"},
        ],
    },
}


@pytest.fixture()
def customers(app, upload, project) -> tuple[str, str]:
    """The uploaded table's physical (schema, table)."""
    resp = upload(customers_csv(), name=NAME)
    assert resp.status_code == 201, resp.get_json()
    pid = project["project_id"]
    return app.config["WAREHOUSE_SCHEMA_PREFIX"] + "marts", f"p{pid}__customers"


def create_service(client, admin, project, endpoints, key="people") -> int:
    resp = client.post(
        "/api/publish/assets",
        headers=admin.project_headers(project["project_id"]),
        json={"asset_type": "api_service", "asset_key": key, "title": "People", "config": {"endpoints": endpoints}},
    )
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["id"]


def publish(client, admin, asset_id) -> int:
    resp = client.post(f"/api/publish/assets/{asset_id}/publish", headers=admin.headers)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["version"]


def warehouse_indexes(app, schema: str, table: str) -> dict[str, list[str]]:
    from app.extensions import warehouse

    with app.app_context():
        return {ix["name"]: ix["column_names"] for ix in sa.inspect(warehouse.get()).get_indexes(table, schema=schema)}


def wait_for(predicate, what: str, timeout: float = 30.0, during=None):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        if during is not None:
            during()
        time.sleep(0.1)


def index_records(app, dataset_name: str) -> dict[str, tuple]:
    from app.db import Dataset, DatasetIndex
    from app.extensions import db

    with app.app_context():
        dataset = db.session.scalar(sa.select(Dataset).where(Dataset.name == dataset_name))
        rows = db.session.scalars(sa.select(DatasetIndex).where(DatasetIndex.dataset_id == dataset.id))
        result = {r.name: (r.status, r.error, r.updated_at) for r in rows}
        db.session.remove()
        return result


def query_plan(app, schema: str, table: str, sql: str, prefer_index: bool = False) -> str:
    """The warehouse's plan of `sql` as one line of text (SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN after
    ANALYZE; `prefer_index`: with sequential scans off, so the planner shows whether an index can serve)."""
    from app.extensions import warehouse

    with app.app_context(), warehouse.get().connect() as conn:
        if conn.dialect.name == "sqlite":
            return " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
        conn.exec_driver_sql(f'ANALYZE "{schema}"."{table}"')
        if prefer_index:
            conn.exec_driver_sql("SET enable_seqscan = off")
        return " ".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))


def test_publishing_indexes_lookup_keys_and_eq_filters_and_serving_answers_meanwhile(
    app,
    client,
    admin,
    project,
    customers,
    live_worker,
):
    schema, table = customers
    headers = admin.project_headers(project["project_id"])
    before = client.get(f"/api/datasets/{NAME}", headers=headers)
    assert before.status_code == 200 and before.get_json()["indexes"] == []

    asset_id = create_service(client, admin, project, [LOOKUP, BY_REGION])
    key = client.post(f"/api/publish/assets/{asset_id}/api-keys", headers=admin.headers, json={"name": "k"})
    publish(client, admin, asset_id)
    served = []

    def lookup_answers():
        resp = client.get(
            "/api/service/people/customer", headers={"X-API-Key": key.get_json()["key"]}, query_string={"id": "42"}
        )
        assert resp.status_code == 200, resp.get_json()
        served.append(resp.get_json()["rows"][0]["customer_key"])

    wanted = {index_name(table, (c,)): [c] for c in ("customer_key", "region", "plan")}
    found = wait_for(
        lambda: wanted.items() <= warehouse_indexes(app, schema, table).items() or None,
        "the lookup and eq filter indexes",
        during=lookup_answers,
    )
    assert found
    lookup_answers()
    assert served and set(served) == {42}
    # Only equality columns: `tenure` (gte) gets no index.
    assert not [n for n, cols in warehouse_indexes(app, schema, table).items() if cols == ["tenure"]]

    detail = client.get(f"/api/datasets/{NAME}", headers=headers).get_json()["indexes"]
    assert {ix["name"]: (ix["columns"], ix["origin"], ix["status"]) for ix in detail} == {
        name: (cols, "apiary", "ready") for name, cols in wanted.items()
    }

    # Idempotent: a rollback (a new published version) checks again and builds nothing twice.
    checked = index_records(app, NAME)
    assert {name: status for name, (status, _e, _t) in checked.items()} == dict.fromkeys(wanted, "ready")
    rollback = client.post(f"/api/publish/assets/{asset_id}/rollback/1", headers=admin.headers)
    assert rollback.status_code == 200, rollback.get_json()
    wait_for(lambda: all(index_records(app, NAME)[n][2] > checked[n][2] for n in wanted), "the re-check")
    assert warehouse_indexes(app, schema, table) == wanted
    lookup_answers()


def test_the_lookup_uses_the_index(app, client, admin, project, customers, live_worker):

    schema, table = customers
    publish(client, admin, create_service(client, admin, project, [LOOKUP]))
    name = index_name(table, ("customer_key",))
    wait_for(lambda: name in warehouse_indexes(app, schema, table), "the lookup index")
    text = query_plan(app, schema, table, f'SELECT * FROM "{schema}"."{table}" WHERE customer_key = 7')  # noqa: S608
    assert name in text, text


def test_a_failed_build_is_recorded_and_neither_publish_nor_serving_breaks(
    app,
    client,
    admin,
    project,
    customers,
    live_worker,
):
    from app.extensions import warehouse

    schema, table = customers
    taken = index_name(table, ("customer_key",))
    with app.app_context():
        engine = warehouse.get()
    with app.app_context(), engine.begin() as conn:  # another object already has the index's name
        conn.exec_driver_sql(f'CREATE TABLE "{schema}"."{taken}" (x INTEGER)')
    try:
        asset_id = create_service(client, admin, project, [LOOKUP])
        key = client.post(f"/api/publish/assets/{asset_id}/api-keys", headers=admin.headers, json={"name": "k"})
        publish(client, admin, asset_id)
        wait_for(lambda: (index_records(app, NAME).get(taken) or ("building",))[0] == "failed", "the failure")
        resp = client.get(
            "/api/service/people/customer", headers={"X-API-Key": key.get_json()["key"]}, query_string={"id": "5"}
        )
        assert resp.status_code == 200 and resp.get_json()["rows"][0]["customer_key"] == 5
        shown = client.get(f"/api/datasets/{NAME}", headers=admin.project_headers(project["project_id"])).get_json()
        assert [(ix["name"], ix["status"], ix["origin"]) for ix in shown["indexes"]] == [(taken, "failed", "apiary")]
        assert taken in shown["indexes"][0]["error"]
    finally:
        with app.app_context(), engine.begin() as conn:
            conn.exec_driver_sql(f'DROP TABLE "{schema}"."{taken}"')
    # The next publish tries again.
    publish(client, admin, asset_id)
    wait_for(lambda: index_records(app, NAME)[taken][0] == "ready", "the retry")
    assert warehouse_indexes(app, schema, table) == {taken: ["customer_key"]}


def test_an_invalid_index_left_by_a_failed_concurrent_build_is_dropped_and_rebuilt(
    app,
    client,
    admin,
    project,
    customers,
    live_worker,
):
    from app.extensions import warehouse

    schema, table = customers
    name = index_name(table, ("region",))
    with app.app_context():
        engine = warehouse.get()
        if engine.dialect.name == "sqlite":
            return  # SQLite builds inside a transaction: a failed build leaves nothing behind
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            with pytest.raises(sa.exc.IntegrityError):  # regions repeat: the unique build fails, leaving it invalid
                conn.exec_driver_sql(f'CREATE UNIQUE INDEX CONCURRENTLY "{name}" ON "{schema}"."{table}" (region)')
    shown = client.get(f"/api/datasets/{NAME}", headers=admin.project_headers(project["project_id"])).get_json()
    assert [(ix["name"], ix["status"]) for ix in shown["indexes"]] == [(name, "invalid")]

    publish(client, admin, create_service(client, admin, project, [BY_REGION]))
    wait_for(lambda: (index_records(app, NAME).get(name) or ("",))[0] == "ready" or None, "the rebuild")
    with app.app_context():
        found = {ix["name"]: ix for ix in sa.inspect(warehouse.get()).get_indexes(table, schema=schema)}
    assert found[name]["column_names"] == ["region"] and not found[name]["unique"]
    shown = client.get(f"/api/datasets/{NAME}", headers=admin.project_headers(project["project_id"])).get_json()
    assert {ix["name"]: ix["status"] for ix in shown["indexes"]}[name] == "ready"


def test_replacing_the_table_rebuilds_the_indexes_of_its_published_services(
    app,
    client,
    admin,
    project,
    upload,
    customers,
    live_worker,
):
    schema, table = customers
    publish(client, admin, create_service(client, admin, project, [LOOKUP]))
    name = index_name(table, ("customer_key",))
    wait_for(lambda: name in warehouse_indexes(app, schema, table), "the lookup index")
    replaced = upload(customers_csv(), name=NAME, replace="true")
    assert replaced.status_code == 201, replaced.get_json()
    wait_for(lambda: name in warehouse_indexes(app, schema, table), "the index on the new table")


def test_index_names_are_bounded_deterministic_and_distinct():
    long_table = "p12__" + "t" * 58
    a = index_name(long_table, ("customer_key",))
    b = index_name(long_table, ("customer_kez",))
    assert len(a) <= MAX_NAME and len(b) <= MAX_NAME and a != b
    assert a == index_name(long_table, ("customer_key",))
    assert index_name("p1__customers", ("region",)) == "apiary_ix_p1__customers__region"
    with pytest.raises(ValueError):
        index_name('x"; DROP TABLE y; --', ("a",))


def test_cli_and_console_show_the_indexes(app, client, admin, project, customers, live_worker):
    schema, table = customers
    from app.extensions import warehouse

    with app.app_context(), warehouse.get().begin() as conn:
        conn.exec_driver_sql(
            f'CREATE INDEX "{schema}"."mine_tenure" ON "{table}" (tenure)'
            if conn.dialect.name == "sqlite"
            else f'CREATE INDEX "mine_tenure" ON "{schema}"."{table}" (tenure)'
        )
    publish(client, admin, create_service(client, admin, project, [LOOKUP]))
    built = index_name(table, ("customer_key",))
    wait_for(lambda: built in warehouse_indexes(app, schema, table), "the lookup index")

    runner = app.test_cli_runner()
    plain = runner.invoke(args=["datasets", "indexes", NAME, "--project", str(project["project_id"])])
    assert plain.exit_code == 0, plain.output
    assert f"{built}\tcustomer_key\tapiary\tready" in plain.output
    assert "mine_tenure\ttenure\texisting\tready" in plain.output
    as_json = runner.invoke(args=["datasets", "indexes", NAME, "--project", str(project["project_id"]), "--json"])
    assert {ix["name"]: ix["origin"] for ix in json.loads(as_json.output)} == {
        built: "apiary",
        "mine_tenure": "existing",
    }
    unknown = runner.invoke(args=["datasets", "indexes", "marts.nope", "--project", str(project["project_id"])])
    assert unknown.exit_code != 0 and "not found" in unknown.output.lower()

    page = signed_in(app, admin).get(f"/projects/{project['project_id']}/datasets/{NAME}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    section = html[html.index('id="indexes"') :]
    assert built in section and "mine_tenure" in section and "apiary" in section and "existing" in section


TOP_BY_REGION = {
    "id": "top_by_region",
    "kind": "sql",
    "query": {
        "source": {"schema": "marts", "table": "customers"},
        "columns": ["customer_key", "tenure"],
        "filters": [{"column": "region", "op": "eq", "param": "region"}],
        "order_by": [{"column": "tenure", "dir": "desc"}],
    },
}


def test_a_sorted_eq_query_gets_one_index_for_its_filter_and_its_sort(
    app, client, admin, project, customers, live_worker
):

    schema, table = customers
    asset_id = create_service(client, admin, project, [TOP_BY_REGION])
    key = client.post(f"/api/publish/assets/{asset_id}/api-keys", headers=admin.headers, json={"name": "k"})
    publish(client, admin, asset_id)
    name = index_name(table, ("region", "tenure"))
    wait_for(lambda: index_records(app, NAME).get(name, ("",))[0] == "ready", "the sorted index")
    indexes = warehouse_indexes(app, schema, table)
    assert indexes[name] == ["region", "tenure"]
    assert ["region"] not in indexes.values()  # it leads the sorted index: no index of its own
    sql = f'SELECT customer_key, tenure FROM "{schema}"."{table}" WHERE region = \'EU\' ORDER BY tenure DESC LIMIT 10'  # noqa: S608
    # Read in order through the index: no sort step (PostgreSQL told to prefer indexes, as 3,000 rows fit a seq scan).
    text = query_plan(app, schema, table, sql, prefer_index=True)
    assert name in text and "TEMP B-TREE" not in text and "Sort" not in text, text
    resp = client.get(
        "/api/service/people/top_by_region",
        headers={"X-API-Key": key.get_json()["key"]},
        query_string={"region": "EU", "limit": "5"},
    )
    assert resp.status_code == 200, resp.get_json()
    tenures = [row["tenure"] for row in resp.get_json()["rows"]]
    assert tenures == sorted(tenures, reverse=True) and len(tenures) == 5


def test_an_index_covers_a_sort_only_in_its_order():
    from app.warehouse.indexes import IndexInfo, covering_index

    def ix(*columns):
        return IndexInfo(name="_".join(columns), columns=tuple(columns), unique=False)

    assert covering_index([ix("plan", "region", "tenure")], ("region", "plan"), ("tenure",)) is not None
    assert covering_index([ix("region", "tenure", "plan")], ("region", "plan"), ("tenure",)) is None
    assert covering_index([ix("tenure", "region")], ("region",), ("tenure",)) is None
    assert covering_index([ix("region", "tenure")], ("region",)) is not None
