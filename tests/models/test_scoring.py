"""Scoring trained models through the serving route: a real worker loads the artifact and predicts."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import pytest

from tests.models.conftest import classification_config, regression_config, train
from tests.publishing.test_assets import _create
from tests.serving.test_serving_data import mint

SERVICE = "models-serving"
STAYS = {"tenure": 50, "monthly": 30.0, "plan": "premium", "region": "EU"}
LEAVES = {"tenure": 2, "monthly": 80.0, "plan": "basic", "region": "US"}


@dataclass
class Served:
    key: str
    classifier_id: int
    regressor_id: int


def publish_models(client, admin, project_id: int, endpoints: dict[str, int]) -> str:
    """Publish an API service with one model endpoint per (endpoint id, model id); returns a minted key."""
    config = [{"id": name, "kind": "model", "model_id": model_id} for name, model_id in endpoints.items()]
    created = _create(client, admin, project_id, key=SERVICE, endpoints=config)
    assert created.status_code == 201, created.get_json()
    asset_id = created.get_json()["id"]
    assert client.post(f"/api/publish/assets/{asset_id}/publish", headers=admin.headers).status_code == 200
    return mint(client, admin, asset_id, rate_limit=1000)["key"]


def predict(client, key: str, endpoint: str, body):
    return client.post(f"/api/service/{SERVICE}/{endpoint}", headers={"X-API-Key": key}, json=body)


@pytest.fixture()
def served(client, admin, project, churn, live_worker) -> Served:
    pid = project["project_id"]
    clf = train(client, admin, pid, classification_config())
    reg = train(client, admin, pid, regression_config(), name="spend")
    assert clf["status"] == reg["status"] == "success", (clf, reg)
    key = publish_models(client, admin, pid, {"churn": clf["model_id"], "spend": reg["model_id"]})
    return Served(key, clf["model_id"], reg["model_id"])


def test_single_and_batch_predictions_with_probabilities(client, served):
    single = predict(client, served.key, "churn", {"features": LEAVES})
    assert single.status_code == 200, single.get_json()
    body = single.get_json()
    assert (body["predictions"], body["model_id"], body["count"]) == ([1], served.classifier_id, 1)
    [probabilities] = body["probabilities"]
    assert set(probabilities) == {"0", "1"} and probabilities["1"] > 0.5
    assert abs(sum(probabilities.values()) - 1) < 1e-6

    batch = predict(client, served.key, "churn", {"rows": [STAYS, LEAVES, {**STAYS, "region": None}]})
    assert batch.status_code == 200, batch.get_json()
    assert batch.get_json()["predictions"] == [0, 1, 0] and batch.get_json()["count"] == 3


def test_feature_values_stay_out_of_the_task_message(client, served):
    """Task headers show in worker logs and monitoring tools: they name the model and the row count only."""
    from celery.signals import before_task_publish

    published = []

    def capture(sender=None, headers=None, **_kwargs):
        if sender == "tasks.predict.score":
            published.append(headers)

    before_task_publish.connect(capture)
    try:
        resp = predict(client, served.key, "churn", {"rows": [STAYS, LEAVES]})
    finally:
        before_task_publish.disconnect(capture)
    assert resp.status_code == 200, resp.get_json()
    [headers] = published
    assert headers["argsrepr"] == f"(model {served.classifier_id}, 2 rows)"
    assert headers["kwargsrepr"] == "{}"


def test_a_model_a_published_service_scores_with_cannot_be_deleted(client, admin, project, served):
    headers = admin.project_headers(project["project_id"])
    refused = client.delete(f"/api/models/{served.classifier_id}", headers=headers)
    assert refused.status_code == 409, refused.get_json()
    assert refused.get_json()["error"]["details"] == {"served_by": [SERVICE]}
    assert predict(client, served.key, "churn", {"features": LEAVES}).status_code == 200  # still served

    listed = client.get(f"/api/publish/assets?project_id={project['project_id']}", headers=admin.headers).get_json()
    [asset] = [a for a in listed["items"] if a["asset_key"] == SERVICE]
    assert client.post(f"/api/publish/assets/{asset['id']}/unpublish", headers=admin.headers).status_code == 200
    assert client.delete(f"/api/models/{served.classifier_id}", headers=headers).status_code == 200


def test_regression_predictions_are_numbers(client, served):
    resp = predict(
        client,
        served.key,
        "spend",
        {"rows": [{"tenure": 5, "monthly": 20.0, "plan": "basic"}, {"tenure": 55, "monthly": 80.0, "plan": "premium"}]},
    )
    assert resp.status_code == 200, resp.get_json()
    low, high = resp.get_json()["predictions"]
    assert isinstance(low, float) and low < high
    assert "probabilities" not in resp.get_json()


@pytest.mark.parametrize(
    "body,field",
    [
        ({"features": {k: v for k, v in LEAVES.items() if k != "tenure"}}, ".tenure"),
        ({"features": {**LEAVES, "ghost": 1}}, ".ghost"),
        ({"features": {**LEAVES, "tenure": "seven"}}, ".tenure"),
        ({"rows": [LEAVES, {**LEAVES, "monthly": "a lot"}]}, "rows[1].monthly"),
        ({"rows": []}, "rows"),
        ({"feature": LEAVES}, "features"),
    ],
)
def test_bad_features_are_422_naming_the_field(client, served, body, field):
    resp = predict(client, served.key, "churn", body)
    assert resp.status_code == 422, resp.get_json()
    fields = resp.get_json()["error"]["details"]["fields"]
    # A single `features` row is named features.<name> or rows[0].<name>, depending on the dispatch.
    assert any(name == field or (field.startswith(".") and name.endswith(field)) for name in fields), fields


def test_a_tampered_artifact_is_refused(app, client, admin, project, churn, live_worker):
    from app.db import MLModel
    from app.extensions import db

    pid = project["project_id"]
    run = train(client, admin, pid, classification_config())
    with app.app_context():
        path = db.session.get(MLModel, run["model_id"]).artifact_path
    with open(path, "r+b") as artifact:
        artifact.seek(-16, 2)
        tail = artifact.read()
        artifact.seek(-16, 2)
        artifact.write(bytes(b ^ 0xFF for b in tail))
    key = publish_models(client, admin, pid, {"churn": run["model_id"]})
    resp = predict(client, key, "churn", {"features": LEAVES})
    assert resp.status_code == 500, resp.get_json()
    error = resp.get_json()["error"]
    assert error["code"] == "model_artifact_rejected" and "sha256" in error["message"]


def test_scoring_past_the_deadline_is_504(app, client, admin, project, live_worker, monkeypatch):
    from tests.models.slow_estimator import SlowRegressor

    model_id = insert_model(app, project["project_id"], SlowRegressor(seconds=4).fit([[0.0]], [0.0]))
    key = publish_models(client, admin, project["project_id"], {"slow": model_id})
    monkeypatch.setitem(app.config, "PREDICT_TIMEOUT_SECONDS", 1)
    started = time.monotonic()
    resp = predict(client, key, "slow", {"features": {"x": 1.0}})
    assert resp.status_code == 504, resp.get_json()
    assert resp.get_json()["error"]["code"] == "timeout" and time.monotonic() - started < 3


def test_no_worker_is_503_at_once(app, client, admin, project, redis_url, monkeypatch):
    from tests.models.slow_estimator import SlowRegressor

    model_id = insert_model(app, project["project_id"], SlowRegressor(seconds=0).fit([[0.0]], [0.0]))
    key = publish_models(client, admin, project["project_id"], {"slow": model_id})
    # Heartbeats live in the broker's database; a Redis database no worker ever wrote to sees no worker.
    base, db_index = redis_url.rsplit("/", 1)
    monkeypatch.setitem(app.config, "REDIS_URL", f"{base}/{(int(db_index) + 1) % 16}")
    monkeypatch.setitem(app.extensions["apiary_redis"], "value", None)
    started = time.monotonic()
    resp = predict(client, key, "slow", {"features": {"x": 1.0}})
    assert resp.status_code == 503, resp.get_json()
    assert resp.get_json()["error"]["code"] == "no_worker" and resp.headers["Retry-After"]
    assert time.monotonic() - started < 2


def insert_model(app, project_id: int, estimator, name: str = "slow") -> int:
    """Store a hand-made estimator as a model of the project (one float feature `x`), as training would."""
    from app.db import MLModel
    from app.extensions import db
    from app.ml.store import save_artifact

    with app.app_context():
        stored = save_artifact(app.config["MODEL_STORE"], f"test-{uuid.uuid4().hex}", estimator)
        model = MLModel(
            project_id=project_id,
            name=name,
            version=1,
            task_type="regression",
            algorithm="linear_regression",
            target_column="y",
            metrics={},
            feature_importance={},
            feature_columns=["x"],
            input_schema=[{"name": "x", "type": "float", "categories": None, "nullable": True}],
            classes=None,
            artifact_path=stored.path,
            artifact_sha256=stored.sha256,
            sklearn_version=stored.sklearn_version,
            is_active=True,
        )
        db.session.add(model)
        db.session.commit()
        return model.id
