"""Hostile request params and config identifiers return no extra rows and leave the warehouse intact."""

import sqlalchemy as sa

from tests.publishing.test_assets import _create
from tests.serving.test_serving_data import FILTERED, call, mint, service  # noqa: F401 - fixture

CORPUS = [
    "' OR '1'='1",
    "1 OR 1=1",
    "EU' --",
    "EU'; DROP TABLE dim_customer; --",
    "1 UNION SELECT name, email, ssn, region, ssn FROM dim_customer",
    "EU/* comment */",
    "EU\x00' OR 1=1",
    "x" * 100_000,
    "%",
    "\\' OR 1=1 #",
]


def _row_count(app, dataset_table) -> int:
    from app.extensions import warehouse

    with app.app_context(), warehouse.get().connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {dataset_table}")).scalar()  # noqa: S608 - test-owned name


def test_hostile_params(app, client, admin, service):  # noqa: F811
    key = mint(client, admin, service, rate_limit=10_000)["key"]
    for value in CORPUS:
        for endpoint, param in (
            ("by_region", "region"),
            ("customer", "id"),
            ("by_region", "min_tenure"),
            ("by_region", "limit"),
            ("by_region", "offset"),
        ):
            resp = call(client, key, endpoint, query_string={param: value})
            assert resp.status_code in (200, 400), (endpoint, param, value[:40], resp.status_code)
            if resp.status_code == 200:
                assert resp.get_json()["rows"] == [], (endpoint, param, value[:40])
    from app.db import Dataset
    from app.extensions import db

    with app.app_context():
        ds = db.session.scalars(sa.select(Dataset)).one()
        table = f'"{ds.schema_name}"."{ds.table_name}"'
    assert _row_count(app, table) == 5


def test_hostile_identifiers_are_refused_at_save(client, admin, project, service):  # noqa: F811
    bad_columns = ["name; DROP TABLE x", "name --", "name\x00", '"name"', "1=1", "x" * 10_000]
    for i, column in enumerate(bad_columns):
        query = {**FILTERED["query"], "columns": [column]}
        resp = _create(
            client,
            admin,
            project["project_id"],
            key=f"evil-{i}",
            endpoints=[{"id": "q", "kind": "sql", "query": query}],
        )
        assert resp.status_code in (400, 422), column[:30]
    for i, table in enumerate(["dim_customer; DROP TABLE x", "dim_customer --", "../dim_customer"]):
        query = {**FILTERED["query"], "source": {"schema": "marts", "table": table}}
        resp = _create(
            client,
            admin,
            project["project_id"],
            key=f"evil-t{i}",
            endpoints=[{"id": "q", "kind": "sql", "query": query}],
        )
        assert resp.status_code in (400, 422), table
