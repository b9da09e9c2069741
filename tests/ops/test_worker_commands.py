"""The operator's commands against real workers: `flask workers status|grow|shrink|drain`, `flask queues [purge]`."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from tests.models.test_scoring import SERVICE
from tests.ops.test_faults import _model_service, _wait_for, unfinished_tasks


def _status(runner) -> dict:
    result = runner.invoke(args=["workers", "status", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _worker(runner, node: str) -> dict | None:
    return next((w for w in _status(runner)["workers"] if w["node"] == node), None)


@pytest.mark.timeout(120)
def test_status_grow_shrink_and_drain_a_live_worker(app, cluster, ops_app, tmp_path):
    web = cluster.start_web("host-a")
    cluster.start_worker("host-d", "predict", "predict", concurrency=1)
    cluster.wait_web(web)
    cluster.wait_workers(ops_app, {"predict@host-d"})
    runner = ops_app.test_cli_runner()

    worker = _worker(runner, "predict@host-d")
    assert worker["queues"] == ["predict"] and worker["concurrency"] == 1 and worker["in_flight"] == 0
    assert worker["pid"] == cluster.procs["predict@host-d"].pid
    assert 0 <= time.time() - worker["heartbeat"] < 3
    text = runner.invoke(args=["workers", "status"]).output
    assert "predict@host-d (pid " in text and "predict; concurrency 1, 0 in flight, last heartbeat" in text

    grown = runner.invoke(args=["workers", "grow", "predict", "2"])
    assert grown.exit_code == 0 and "predict@host-d: pool will grow" in grown.output, grown.output
    _wait_for(lambda: _worker(runner, "predict@host-d")["concurrency"] == 3, 10, "the pool to grow to 3")
    shrunk = runner.invoke(args=["workers", "shrink", "predict", "1"])
    assert shrunk.exit_code == 0 and "predict@host-d: pool will shrink" in shrunk.output, shrunk.output
    _wait_for(lambda: _worker(runner, "predict@host-d")["concurrency"] == 2, 10, "the pool to shrink to 2")
    nobody = runner.invoke(args=["workers", "grow", "train", "1"])
    assert nobody.exit_code != 0 and "no live worker consumes the train queue" in nobody.output
    bad = runner.invoke(args=["workers", "grow", "predict;flushall", "1"])
    assert bad.exit_code != 0 and "is not a queue" in bad.output

    # Drain while a call is running: the call finishes, and the worker takes nothing more.
    key = _model_service(app, web, tmp_path / "scored", seconds=2.0)
    answers: list[int] = []
    url = f"{web.base}/api/service/{SERVICE}/risk"
    caller = threading.Thread(
        target=lambda: answers.append(
            httpx.post(url, headers={"X-API-Key": key}, json={"features": {"x": 1.0}}, timeout=30).status_code
        )
    )
    caller.start()
    _wait_for(lambda: unfinished_tasks(cluster.log("predict@host-d", tail=10**6)), 20, "the call to reach the worker")
    drained = runner.invoke(args=["workers", "drain", "host-d"])
    assert drained.exit_code == 0, drained.output
    assert "predict@host-d: stopped consuming predict; in-flight work finishes" in drained.output
    caller.join(timeout=30)
    assert answers == [200]
    _wait_for(lambda: _worker(runner, "predict@host-d")["queues"] == [], 5, "the drained worker to show no queues")
    with ops_app.app_context():
        from tasks.system import ping

        ping.apply_async(queue="predict")
    time.sleep(2)
    [predict] = [q for q in _status(runner)["queues"] if q["queue"] == "predict"]
    assert predict["depth"] == 1 and predict["consumers"] == 0, predict
    unknown = runner.invoke(args=["workers", "drain", "host-zz"])
    assert unknown.exit_code != 0 and "no live worker runs on 'host-zz'" in unknown.output


def test_queue_depth_age_and_purge(ops_app, cluster):
    runner = ops_app.test_cli_runner()
    with ops_app.app_context():
        from tasks.system import ping

        for _ in range(3):  # nobody consumes train on this cluster: they wait
            ping.apply_async(queue="train")
    time.sleep(1.2)
    listed = runner.invoke(args=["queues", "--json"])
    assert listed.exit_code == 0, listed.output
    stats = {q["queue"]: q for q in json.loads(listed.output)}
    assert list(stats) == ["predict", "train", "functions", "default"]
    assert stats["train"]["depth"] == 3 and stats["train"]["consumers"] == 0
    assert 1.2 <= stats["train"]["oldest_age_s"] < 30, stats["train"]
    assert stats["predict"] == {"queue": "predict", "depth": 0, "oldest_age_s": None, "consumers": 0}
    text = runner.invoke(args=["queues"]).output
    assert "train: 3 waiting, oldest " in text and "predict: 0 waiting, oldest -, 0 consumer(s)" in text

    refused = runner.invoke(args=["queues", "purge", "train"])
    assert refused.exit_code != 0 and "add --yes" in refused.output
    assert json.loads(runner.invoke(args=["queues", "list", "--json"]).output)[1]["depth"] == 3
    bad = runner.invoke(args=["queues", "purge", "*", "--yes"])
    assert bad.exit_code != 0 and "'*' is not a queue" in bad.output
    purged = runner.invoke(args=["queues", "purge", "train", "--yes"])
    assert purged.exit_code == 0 and "train: dropped 3 waiting message(s)" in purged.output, purged.output
    assert json.loads(runner.invoke(args=["queues", "list", "--json"]).output)[1]["depth"] == 0
