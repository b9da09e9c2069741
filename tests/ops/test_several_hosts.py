"""Two web hosts and three worker hosts, each with its own var/, sharing only the database, Redis and the model
store: they behave as one system (keys, revocations, rate limits, the result cache, models trained elsewhere)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import sign_up
from tests.models.conftest import churn_rows, classification_config, put_dataset, train
from tests.models.test_scoring import LEAVES
from tests.publishing.test_assets import LOOKUP, TOP, _create
from tests.serving.test_serving_data import call, mint
from tests.warehouse_tables import create_dataset

NODES = {"train@host-c", "predict@host-d", "serving@host-e"}


@pytest.mark.timeout(120)
def test_two_web_hosts_and_three_workers_behave_as_one_system(app, cluster, ops_app):
    web_a, web_b = cluster.start_web("host-a"), cluster.start_web("host-b")
    cluster.start_worker("host-c", "train", "train,default")
    cluster.start_worker("host-d", "predict", "predict")
    cluster.start_worker("host-e", "serving", "predict,functions")
    cluster.wait_web(web_a)
    cluster.wait_web(web_b)
    cluster.wait_workers(ops_app, NODES)

    admin = sign_up(web_a)  # signed up on A, working on B: the session token is valid on every host
    made = web_b.post("/api/projects", headers=admin.headers, json={"name": "Sales", "slug": "sales"})
    assert made.status_code == 201, made.text
    pid = made.json()["project_id"]
    create_dataset(app, pid)
    put_dataset(app, pid, "marts.churn", churn_rows())

    # /readyz on either host lists every live worker of each queue, not only the last to beat.
    ready = web_a.get("/readyz", headers=admin.headers)
    assert ready.status_code == 200, ready.text
    queues = ready.json()["checks"]["worker"]["queues"]
    assert sorted(queues["predict"]) == ["predict@host-d", "serving@host-e"]
    assert queues["train"] == ["train@host-c"] and queues["functions"] == ["serving@host-e"]

    trained = train(web_b, admin, pid, classification_config())  # runs on train@host-c, the only train worker
    assert trained["status"] == "success", trained
    endpoints = [LOOKUP, TOP, {"id": "churn", "kind": "model", "model_id": trained["model_id"]}]
    created = _create(web_a, admin, pid, endpoints=endpoints)
    assert created.status_code == 201, created.text
    asset_id = created.json()["id"]
    assert web_b.post(f"/api/publish/assets/{asset_id}/publish", headers=admin.headers).status_code == 200

    # A key minted on A works on B; the result cache filled on B answers on A.
    minted = mint(web_a, admin, asset_id, rate_limit=1000)
    first = call(web_b, minted["key"], "customer", query_string={"id": "2"})
    assert first.status_code == 200 and first.headers["X-Cache"] == "MISS", first.text
    again = call(web_a, minted["key"], "customer", query_string={"id": "2"})
    assert again.status_code == 200 and again.headers["X-Cache"] == "HIT", again.text
    assert again.json() == first.json()

    # The model trained on host-c is scored by the predict workers on host-d and host-e, which never trained it:
    # the artifact reaches them through the shared MODEL_STORE and is checked against its SHA-256.
    for i in range(6):
        web = (web_a, web_b)[i % 2]
        scored = web.post(
            "/api/service/sales-serving/churn", headers={"X-API-Key": minted["key"]}, json={"features": LEAVES}
        )
        assert scored.status_code == 200, scored.text
        assert scored.json()["predictions"] == [1]
    for node in ("predict@host-d", "serving@host-e"):
        assert _scored_here(cluster.log(node, tail=10**6)), cluster.log(node)
    assert not _scored_here(cluster.log("train@host-c", tail=10**6))

    # A revocation on B is effective on A at once.
    revoked = web_b.delete(f"/api/publish/assets/{asset_id}/api-keys/{minted['id']}", headers=admin.headers)
    assert revoked.status_code in (200, 204), revoked.text
    refused = call(web_a, minted["key"], "customer", query_string={"id": "2"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "key_revoked", refused.text

    # The rate limit is exact across both hosts: a burst of 30 over A and B on a limit of 10 admits 10.
    limited = mint(web_b, admin, asset_id, rate_limit=10)["key"]

    def hit(i: int) -> int:
        return call((web_a, web_b)[i % 2], limited, "top").status_code

    with ThreadPoolExecutor(max_workers=30) as pool:
        statuses = list(pool.map(hit, range(30)))
    assert statuses.count(200) == 10 and statuses.count(429) == 20, statuses


def _scored_here(log: str) -> bool:
    return any("Task tasks.predict.score[" in line and "succeeded" in line for line in log.splitlines())
