"""`/metrics` for operators: serving calls per service x endpoint x status, latency, cache, rate limits, refused keys,
queues, workers, worker tasks and training runs, parsed with prometheus_client's own parser; labels stay bounded."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.serving.test_end_to_end import seed_service  # noqa: F401 - fixture
from tests.serving.test_serving_data import call, mint

ROOT = Path(__file__).resolve().parent.parent.parent


def scrape(client) -> dict[str, list]:
    """{family name: [(sample name, labels, value), ...]} from one scrape."""
    resp = client.get("/metrics")
    assert resp.status_code == 200
    return {
        family.name: [(s.name, s.labels, s.value) for s in family.samples]
        for family in text_string_to_metric_families(resp.get_data(as_text=True))
    }


def value(families: dict, family: str, sample: str, **labels) -> float:
    return sum(v for name, got, v in families.get(family, []) if name == sample and labels.items() <= got.items())


def test_serving_worker_and_training_series_with_bounded_labels(app, client, admin, seed_service):  # noqa: F811
    asset_id = seed_service["asset_id"]
    key = mint(client, admin, asset_id, rate_limit=4)
    before = scrape(client)

    assert call(client, key["key"], "top").headers["X-Cache"] == "MISS"
    assert call(client, key["key"], "top").headers["X-Cache"] == "HIT"
    assert (
        call(
            client,
            key["key"],
            "churn_risk",
            method="POST",
            json={"features": {"tenure": 3, "plan": "basic", "monthly": 9.0}},
        ).status_code
        == 200
    )
    assert call(client, key["key"], "score", method="POST", json={"tenure": 40}).status_code == 200
    assert call(client, key["key"], "top").status_code == 429
    # Attacker-chosen names never become labels: unknown services, endpoints and keys all land on "".
    made_up = set()
    for _ in range(20):
        name = uuid.uuid4().hex
        made_up.add(name)
        client.get(f"/api/service/{name}/{name}", headers={"X-API-Key": key["key"]})
        client.get(f"/api/service/sales-serving/{name}", headers={"X-API-Key": "dk_" + uuid.uuid4().hex + "x" * 11})
        # Any token is a method to werkzeug: a made-up one lands on "other", as a series of its own never.
        method = "M" + uuid.uuid4().hex[:12].upper()
        made_up.add(method)
        assert client.open("/healthz", method=method).status_code == 405
    after = scrape(client)

    def grew(family: str, sample: str, **labels) -> float:
        return value(after, family, sample, **labels) - value(before, family, sample, **labels)

    calls = "apiary_service_calls"
    assert grew(calls, f"{calls}_total", service="sales-serving", endpoint="top", status="200") == 2
    assert grew(calls, f"{calls}_total", service="sales-serving", endpoint="top", status="429") == 1
    assert grew(calls, f"{calls}_total", service="sales-serving", endpoint="churn_risk", status="200") == 1
    assert grew(calls, f"{calls}_total", service="sales-serving", endpoint="score", status="200") == 1
    assert grew(calls, f"{calls}_total", service="", endpoint="") == 40
    latency = "apiary_service_call_duration_seconds"
    assert grew(latency, f"{latency}_count", service="sales-serving", endpoint="churn_risk") == 1
    assert grew(latency, f"{latency}_bucket", service="sales-serving", endpoint="top", le="+Inf") == 3
    cache = "apiary_result_cache"
    assert grew(cache, f"{cache}_total", service="sales-serving", endpoint="top", result="hit") == 1
    assert grew(cache, f"{cache}_total", service="sales-serving", endpoint="top", result="miss") == 1
    assert grew("apiary_rate_limit_rejections", "apiary_rate_limit_rejections_total", service="sales-serving") == 1
    assert grew("apiary_auth_failures", "apiary_auth_failures_total", reason="invalid_key") == 20
    parts = "apiary_service_call_part_seconds"
    for part in ("auth", "ratelimit", "queue", "score", "function", "query"):
        assert grew(parts, f"{parts}_count", part=part) >= 1, part

    tasks = "apiary_worker_tasks"
    assert grew(tasks, f"{tasks}_total", queue="predict", outcome="success") == 1
    assert grew(tasks, f"{tasks}_total", queue="functions", outcome="success") == 1
    task_latency = "apiary_worker_task_duration_seconds"
    assert grew(task_latency, f"{task_latency}_count", queue="functions") == 1
    for queue in ("predict", "train", "functions", "default"):
        assert ("apiary_queue_depth", {"queue": queue}) in [(n, labels) for n, labels, _ in after["apiary_queue_depth"]]
        assert value(after, "apiary_queue_workers", "apiary_queue_workers", queue=queue) >= 1
    assert value(after, "apiary_training_runs", "apiary_training_runs", status="success") >= 1

    # Bounded: no label value is a key id, a secret, a raw path or a name the caller made up; a route label is one of
    # the app's route templates (some console templates are long), never a path as requested.
    templates = {rule.rule for rule in app.url_map.iter_rules()}
    for family in after.values():
        for _, labels, _ in family:
            for label, text in labels.items():
                assert "dk_" not in text, (label, text)
                if label == "route":
                    assert text in templates or text == "<unmatched>", text
                else:
                    assert len(text) < 64 and "/" not in text, (label, text)
    values = {text for family in after.values() for _, labels, _ in family for text in labels.values()}
    assert not values & made_up
    # Services of other tests of this session may be there too: only published ones, never a made-up name.
    services = {labels.get("service") for _, labels, _ in after["apiary_service_calls"]}
    assert {"", "sales-serving"} <= services and len(services) < 10


MULTIPROC_SCRIPT = """
import sys
from app import create_app
from app.ops.metrics import observe_auth_failure, observe_call, render_metrics

app = create_app("testing")
with app.app_context():
    if sys.argv[1] == "record":
        observe_call("svc", "ep", 200, 0.01, "HIT", {"auth": 1.0, "total": 10.0})
        observe_auth_failure("invalid_key")
    else:
        print(render_metrics(app).get_data(as_text=True))
"""


def test_metrics_add_up_across_processes(test_env, tmp_path):
    """Under gunicorn every worker process records into PROMETHEUS_MULTIPROC_DIR; a scrape answered by any of them
    sums all."""
    env = {**os.environ, **test_env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", MULTIPROC_SCRIPT, "record"], cwd=ROOT, env=env, check=True, timeout=60)
    out = subprocess.run(
        [sys.executable, "-c", MULTIPROC_SCRIPT, "scrape"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
    ).stdout.decode()
    families = {f.name: [(s.name, s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(out)}
    calls = "apiary_service_calls"
    assert value(families, calls, f"{calls}_total", service="svc", endpoint="ep", status="200") == 2
    assert value(families, "apiary_result_cache", "apiary_result_cache_total", result="hit") == 2
    assert value(families, "apiary_auth_failures", "apiary_auth_failures_total", reason="invalid_key") == 2
    assert "apiary_queue_depth" in families  # the scrape-time figures come with it
