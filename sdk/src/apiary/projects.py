"""The Project handle: upload datasets, train and read models, create API services, all scoped to one project."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from apiary.endpoints import Endpoint
from apiary.errors import TrainingError
from apiary.frames import csv_bytes
from apiary.services import APIService, DataAPI, presentation_fields
from apiary.transport import Transport


@dataclass
class Dataset:
    """A warehouse table the project can serve: `name` is `schema.table`; columns are `{name, type, ...}`."""

    name: str
    row_count: int | None
    columns: list[dict[str, Any]]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [c["name"] for c in self.columns]


@dataclass
class TrainResult:
    """The outcome of a training run: `status` is `success` (with `model_id`, `metrics`) or `queued`."""

    status: str
    run_id: int
    recipe_id: int
    model_id: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Model:
    """One trained model version with its metrics, features and the other versions of its name."""

    model_id: int
    name: str
    version: int
    task_type: str
    algorithm: str
    metrics: dict[str, Any]
    is_active: bool
    feature_columns: list[str]
    feature_importance: dict[str, float] = field(default_factory=dict)
    versions: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Model:
        return cls(
            model_id=body["model_id"],
            name=body["name"],
            version=body["version"],
            task_type=body["task_type"],
            algorithm=body["algorithm"],
            metrics=dict(body.get("metrics") or {}),
            is_active=bool(body.get("is_active")),
            feature_columns=list(body.get("feature_columns") or []),
            feature_importance=dict(body.get("feature_importance") or {}),
            versions=list(body.get("versions") or []),
            raw=dict(body),
        )


class Project:
    """A project of your organization; every call made through it carries its `X-Project-Id`."""

    def __init__(self, transport: Transport, body: Mapping[str, Any]):
        self._transport = transport
        self.id: int = body["project_id"]
        self.slug: str = body["slug"]
        self.name: str = body.get("name", "")
        self.description: str = body.get("description", "")
        self.icon: str = body.get("icon") or ""
        self.color: str | None = body.get("color")

    def __repr__(self) -> str:
        return f"<Project {self.id} {self.slug!r}>"

    @property
    def _headers(self) -> dict[str, str]:
        return {"X-Project-Id": str(self.id)}

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._transport.request(method, path, headers=self._headers, **kwargs)

    # Datasets

    def upload_file(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        replace: bool = False,
        friendly_name: str | None = None,
        description: str | None = None,
        types: Mapping[str, str] | None = None,
    ) -> Dataset:
        """Load a CSV file into the warehouse table `name` (`schema.table`; no schema means `uploads`).

        Column types are inferred; `types` forces some (`{"zip": "text"}`). An existing name needs `replace=True`.
        """
        path = Path(path)
        with path.open("rb") as handle:
            return self._upload(name, path.name, handle, replace, friendly_name, description, types)

    def upload_dataframe(
        self,
        name: str,
        frame: Any,
        *,
        replace: bool = False,
        friendly_name: str | None = None,
        description: str | None = None,
        types: Mapping[str, str] | None = None,
    ) -> Dataset:
        """Upload tabular data as the table `name`, sent as CSV: a pandas DataFrame (without its index), any
        object with a `.to_csv()` returning the CSV text, or a list of dicts (one per row; the columns are every
        key, in order of first appearance; a missing key or None is an empty cell)."""
        data = io.BytesIO(csv_bytes(frame))
        filename = name.rsplit(".", 1)[-1] + ".csv"
        return self._upload(name, filename, data, replace, friendly_name, description, types)

    def _upload(
        self,
        name: str,
        filename: str,
        handle: IO[bytes],
        replace: bool,
        friendly_name: str | None,
        description: str | None,
        types: Mapping[str, str] | None,
    ) -> Dataset:
        form = {"name": name, "replace": "true" if replace else "false"}
        if friendly_name is not None:
            form["friendly_name"] = friendly_name
        if description is not None:
            form["description"] = description
        if types:
            form["types"] = json.dumps(dict(types))
        body = self._request(
            "POST",
            "/api/datasets/file/upload",
            data=form,
            files={"file": (filename, handle, "text/csv")},
            timeout=None,
        )
        return Dataset(body["name"], body.get("row_count"), list(body.get("columns") or []), dict(body))

    def get_dataset(self, name: str) -> Dataset:
        """A dataset's metadata: columns with their types and masking, row count."""
        body = self._request("GET", f"/api/datasets/{quote(name, safe='')}")
        return Dataset(body["name"], body.get("row_count"), list(body.get("columns") or []), dict(body))

    # Models

    def train_model(
        self,
        name: str,
        *,
        input_table: str,
        target_column: str,
        task_type: str = "classification",
        algorithm: str | None = None,
        features: Sequence[str] | None = None,
        hyperparams: Mapping[str, Any] | None = None,
        test_size: float | None = None,
        max_rows: int | None = None,
        wait: bool = True,
        timeout: float | None = 900.0,
    ) -> TrainResult:
        """Train the model `name` on `input_table` (a new version when the name exists) on a worker.

        `algorithm` defaults to logistic_regression for classification and linear_regression for regression;
        `features` defaults to every other column. With `wait` (default) this blocks until the run ends and
        raises TrainingError when it failed; with `wait=False` it returns at once with `status="queued"`.
        """
        if algorithm is None:
            algorithm = "linear_regression" if task_type == "regression" else "logistic_regression"
        config: dict[str, Any] = {
            "input_table": input_table,
            "target_column": target_column,
            "task_type": task_type,
            "algorithm": algorithm,
            "model_name": name,
        }
        optional = {
            "feature_columns": list(features) if features is not None else None,
            "hyperparams": dict(hyperparams) if hyperparams is not None else None,
            "test_size": test_size,
            "max_rows": max_rows,
        }
        config.update({k: v for k, v in optional.items() if v is not None})
        recipe = self._request(
            "POST",
            "/api/flow/ai-recipes",
            json={"recipe_type": "train_model", "name": name, "inputs": [input_table], "config": config},
        )
        recipe_id = recipe["recipe_id"]
        run = self._request(
            "POST",
            f"/api/flow/ai-recipes/{recipe_id}/run",
            params={"wait": "true" if wait else "false"},
            timeout=timeout,
        )
        if run.get("status") == "failed":
            raise TrainingError(
                f"training run {run.get('run_id')} failed: {run.get('error')}", run_id=run.get("run_id")
            )
        return TrainResult(run["status"], run["run_id"], recipe_id, run.get("model_id"), dict(run.get("metrics") or {}))

    def wait_for_run(self, result: TrainResult, timeout: float = 900.0, poll_s: float = 1.0) -> TrainResult:
        """Poll a run started with `wait=False` until it ends: the finished TrainResult, TrainingError if it
        failed, TimeoutError if it is still going after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self._request("GET", f"/api/flow/ai-recipes/{result.recipe_id}/runs").get("items") or []
            run = next((r for r in runs if r.get("run_id") == result.run_id), None)
            if run is not None and run.get("status") == "failed":
                raise TrainingError(f"training run {result.run_id} failed: {run.get('error')}", run_id=result.run_id)
            if run is not None and run.get("status") == "success":
                metrics = dict(run.get("metrics") or {})
                return TrainResult("success", result.run_id, result.recipe_id, run.get("model_id"), metrics)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"training run {result.run_id} has not finished after {timeout:g} s")
            time.sleep(poll_s)

    def get_model(self, model_id: int) -> Model:
        """One model version: metrics, features, feature importance and the versions of its name."""
        return Model.from_json(self._request("GET", f"/api/models/{int(model_id)}"))

    def list_models(self, name: str | None = None) -> list[Model]:
        """The project's models, every version; only those named `name` when given."""
        body = self._request("GET", "/api/models", params={"name": name} if name else None)
        return [Model.from_json(item) for item in body.get("models") or []]

    # API services

    def list_api_services(self) -> list[APIService]:
        """The project's API services, drafts and published."""
        body = self._request(
            "GET", "/api/publish/assets", params={"asset_type": "api_service", "project_id": str(self.id)}
        )
        return [APIService(self._transport, item) for item in body.get("items") or []]

    def create_api_service(
        self,
        asset_key: str,
        title: str,
        endpoints: Sequence[Endpoint] | None = None,
        *,
        description: str = "",
        publish: bool = False,
        theme: Mapping[str, Any] | None = None,
        roles: Sequence[str] | None = None,
        is_public: bool | None = None,
        icon: str | None = None,
        sort_order: int | None = None,
    ) -> APIService:
        """Create an API service (a draft) served at `/api/service/<asset_key>/...`; publishes when asked.

        `theme`, `icon` and `sort_order` shape lists and the console; `roles` limits which org roles see the
        service there (empty = every role); `is_public` never lifts the key requirement of serving."""
        body = self._request(
            "POST",
            "/api/publish/assets",
            json={
                "asset_type": "api_service",
                "asset_key": asset_key,
                "title": title,
                "description": description,
                "config": {"endpoints": list(endpoints or [])},
                **presentation_fields(theme, roles, is_public, icon, sort_order),
            },
        )
        service = APIService(self._transport, body)
        if publish:
            service.publish()
        return service

    def create_data_api(
        self,
        asset_key: str,
        title: str,
        query: Mapping[str, Any],
        *,
        description: str = "",
        publish: bool = False,
        theme: Mapping[str, Any] | None = None,
        roles: Sequence[str] | None = None,
        is_public: bool | None = None,
        icon: str | None = None,
        sort_order: int | None = None,
    ) -> DataAPI:
        """Create a data API (a draft): one query config (`source`, `columns`, `filters`, ...) served at
        `GET /api/data/<asset_key>` with a key; publishes when asked."""
        body = self._request(
            "POST",
            "/api/publish/assets",
            json={
                "asset_type": "data_api",
                "asset_key": asset_key,
                "title": title,
                "description": description,
                "config": dict(query),
                **presentation_fields(theme, roles, is_public, icon, sort_order),
            },
        )
        data_api = DataAPI(self._transport, body)
        if publish:
            data_api.publish()
        return data_api
