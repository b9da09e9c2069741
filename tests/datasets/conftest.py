"""Datasets fixtures: uploading CSV text through the API and looking at the warehouse behind it."""

from __future__ import annotations

import io

import pytest

from app.warehouse.engine import table_exists


@pytest.fixture()
def upload(client, admin, project):
    """upload("a,b\\n1,2\\n", name="sales", replace="true") -> the response of POST /api/datasets/file/upload."""

    def send(content: str | bytes | None, headers: dict | None = None, filename: str = "data.csv", **form):
        data = dict(form)
        if content is not None:
            raw = content.encode("utf-8") if isinstance(content, str) else content
            data["file"] = (io.BytesIO(raw), filename)
        return client.post(
            "/api/datasets/file/upload",
            headers=headers if headers is not None else admin.project_headers(project["project_id"]),
            data=data,
            content_type="multipart/form-data",
        )

    return send


@pytest.fixture()
def warehouse_table(app):
    """warehouse_table(project_id, "uploads.sales") -> whether the upload's physical table exists."""

    def exists(project_id: int, name: str) -> bool:
        from app.extensions import warehouse

        schema, table = name.split(".")
        with app.app_context():
            return table_exists(
                warehouse.get(), app.config["WAREHOUSE_SCHEMA_PREFIX"] + schema, f"p{project_id}__{table}"
            )

    return exists
