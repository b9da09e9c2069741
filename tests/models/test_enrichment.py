"""Model endpoints that look features up (enrichment) and mark bad rows as ignored: HTTP, a real worker."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.models.conftest import classification_config, put_dataset, train
from tests.publishing.test_assets import _create
from tests.serving.test_serving_data import mint

SERVICE = "enriched"
CUSTOMER_TYPES = {"customer_key": "integer", "tenure": "integer", "plan": "text", "region": "text"}
CUSTOMERS = [
    {"customer_key": 1, "tenure": 2, "plan": "basic", "region": "US"},
    {"customer_key": 2, "tenure": 55, "plan": "premium", "region": "EU"},
    {"customer_key": 3, "tenure": 40, "plan": "premium", "region": "EU"},
    {"customer_key": 3, "tenure": 4, "plan": "basic", "region": "EU"},  # two rows for key 3
]
ENRICH = {
    "dataset": "marts.customers",
    "on": [{"feature": "customer_id", "column": "customer_key"}],
    "columns": {"tenure": "tenure", "plan": "plan", "region": "region"},
}


@dataclass
class Scoring:
    pid: int
    model_id: int


@pytest.fixture()
def scoring(app, client, admin, project, churn, live_worker) -> Scoring:
    from app.db import Dataset
    from app.extensions import db

    pid = project["project_id"]
    put_dataset(app, pid, "marts.customers", CUSTOMERS, CUSTOMER_TYPES)
    with app.app_context():
        # region is personal enough to be masked for masked keys (the settings override, as an admin would set it)
        ds = db.session.query(Dataset).filter_by(project_id=pid, name="marts.customers").one()
        ds.masking = {"region": {"sensitivity": "medium", "strategy": "full"}}
        db.session.commit()
    trained = train(client, admin, pid, classification_config())
    assert trained["status"] == "success", trained
    return Scoring(pid, trained["model_id"])


def publish(client, admin, pid: int, endpoints: list[dict]) -> int:
    created = _create(client, admin, pid, key=SERVICE, endpoints=endpoints)
    assert created.status_code == 201, created.get_json()
    asset_id = created.get_json()["id"]
    assert client.post(f"/api/publish/assets/{asset_id}/publish", headers=admin.headers).status_code == 200
    return asset_id


def model_ep(model_id: int, name: str, **extra) -> dict:
    return {"id": name, "kind": "model", "model_id": model_id, **extra}


def predict(client, key: str, endpoint: str, body):
    return client.post(f"/api/service/{SERVICE}/{endpoint}", headers={"X-API-Key": key}, json=body)


def test_enrichment_config_is_checked_on_save(client, admin, scoring):
    def bad(enrichment, field, **extra):
        resp = _create(
            client,
            admin,
            scoring.pid,
            key=SERVICE,
            endpoints=[model_ep(scoring.model_id, "m", enrichments=[enrichment], **extra)],
        )
        assert resp.status_code == 422, (field, resp.get_json())
        assert field in resp.get_json()["error"]["details"]["fields"], (field, resp.get_json())

    base = "config.endpoints[0].enrichments[0]"
    bad({**ENRICH, "dataset": "marts.nope"}, f"{base}.dataset")
    bad({**ENRICH, "on": [{"feature": "customer_id", "column": "nope"}]}, f"{base}.on[0].column")
    bad({**ENRICH, "on": [{"feature": "plan", "column": "customer_key"}]}, f"{base}.on[0].feature")  # text vs int
    bad({**ENRICH, "columns": {"nope": "tenure"}}, f"{base}.columns.nope")
    bad({**ENRICH, "columns": {"tenure": "ghost"}}, f"{base}.columns.tenure")
    bad({**ENRICH, "columns": {"plan": "tenure"}}, f"{base}.columns.plan")  # text into an integer feature
    bad({**ENRICH, "columns": {"customer_key": "tenure", "tenure": "tenure"}}, f"{base}.columns.tenure")
    bad({**ENRICH, "not_found": "skip"}, f"{base}.not_found")
    bad({**ENRICH, "multiple_matches": "null"}, f"{base}.multiple_matches")
    bad({**ENRICH, "override": "yes"}, f"{base}.override")
    bad({**ENRICH, "join": 1}, f"{base}.join")
    bad(ENRICH, "config.endpoints[0].on_bad_row", on_bad_row="skip")
    ok = _create(
        client, admin, scoring.pid, key=SERVICE, endpoints=[model_ep(scoring.model_id, "m", enrichments=[ENRICH])]
    )
    assert ok.status_code == 201, ok.get_json()
    saved = ok.get_json()["config"]["endpoints"][0]["enrichments"][0]
    assert (saved["missing_key"], saved["not_found"], saved["multiple_matches"], saved["override"]) == (
        "error",
        "error",
        "error",
        False,
    )


def test_enrichment_hits_misses_and_multiple_matches(client, admin, scoring):
    mid = scoring.model_id
    asset = publish(
        client,
        admin,
        scoring.pid,
        [
            model_ep(mid, "plain"),
            model_ep(mid, "strict", enrichments=[ENRICH], return_enriched=True),
            model_ep(
                mid,
                "lenient",
                return_enriched=True,
                enrichments=[{**ENRICH, "missing_key": "ignore", "not_found": "ignore", "multiple_matches": "first"}],
            ),
            model_ep(
                mid, "nulls", return_enriched=True, enrichments=[{**ENRICH, "missing_key": "null", "not_found": "null"}]
            ),
            model_ep(mid, "override", return_enriched=True, enrichments=[{**ENRICH, "override": True}]),
        ],
    )
    key = mint(client, admin, asset, rate_limit=1000, masking_level="masked")["key"]
    unmasked = mint(client, admin, asset, rate_limit=1000, masking_level="unmasked")["key"]

    # A hit: the looked-up features are scored. The masked key scores region as null and sees it masked.
    hit = predict(
        client, key, "strict", {"rows": [{"customer_id": 1, "monthly": 80.0}, {"customer_id": 2, "monthly": 30.0}]}
    )
    assert hit.status_code == 200, hit.get_json()
    body = hit.get_json()
    assert body["enriched"] == [
        {"tenure": 2, "monthly": 80.0, "plan": "basic", "region": "***"},
        {"tenure": 55, "monthly": 30.0, "plan": "premium", "region": "***"},
    ]
    direct = predict(
        client,
        key,
        "plain",
        {
            "rows": [
                {"tenure": 2, "monthly": 80.0, "plan": "basic", "region": None},
                {"tenure": 55, "monthly": 30.0, "plan": "premium", "region": None},
            ]
        },
    )
    assert body["predictions"] == direct.get_json()["predictions"] == [1, 0]
    assert body["probabilities"] == direct.get_json()["probabilities"]
    # An unmasked key reads region in clear, scores it and echoes it.
    clear = predict(client, unmasked, "strict", {"features": {"customer_id": 1, "monthly": 80.0}}).get_json()
    assert clear["enriched"] == [{"tenure": 2, "monthly": 80.0, "plan": "basic", "region": "US"}]
    with_region = predict(
        client, key, "plain", {"features": {"tenure": 2, "monthly": 80.0, "plan": "basic", "region": "US"}}
    )
    assert clear["probabilities"] == with_region.get_json()["probabilities"]

    # The caller's values win unless override: true.
    mine = {"customer_id": 2, "monthly": 30.0, "tenure": 1, "plan": "basic"}
    won = predict(client, key, "strict", {"features": mine}).get_json()
    assert won["enriched"][0]["tenure"] == 1 and won["enriched"][0]["plan"] == "basic"
    over = predict(client, key, "override", {"features": mine}).get_json()
    assert over["enriched"][0]["tenure"] == 55 and over["enriched"][0]["plan"] == "premium"

    # error policies: a 422 for the whole request naming the row
    for row, field in (
        ({"monthly": 1.0}, "rows[1].customer_id"),
        ({"customer_id": 99, "monthly": 1.0}, "rows[1]"),
        ({"customer_id": 3, "monthly": 1.0}, "rows[1]"),
        ({"customer_id": "x", "monthly": 1.0}, "rows[1].customer_id"),
    ):
        resp = predict(client, key, "strict", {"rows": [{"customer_id": 1, "monthly": 1.0}, row]})
        assert resp.status_code == 422, (row, resp.get_json())
        assert field in resp.get_json()["error"]["details"]["fields"], (row, resp.get_json())

    # ignore / first: missing and unknown keys are ignored in place, several matches take the first
    rows = [
        {"monthly": 1.0},
        {"customer_id": 99, "monthly": 1.0},
        {"customer_id": 3, "monthly": 1.0},
        {"customer_id": 2, "monthly": 30.0},
    ]
    lenient = predict(client, key, "lenient", {"rows": rows})
    assert lenient.status_code == 200, lenient.get_json()
    got = lenient.get_json()
    assert got["count"] == 4
    assert got["predictions"][0] == {"ignored": True, "reason": "missing enrichment key customer_id"}
    assert got["predictions"][1]["ignored"] is True and "no row" in got["predictions"][1]["reason"]
    assert got["predictions"][3] == 0 and got["probabilities"][0] is None and got["enriched"][1] is None
    assert got["enriched"][2]["plan"] in ("basic", "premium")

    # null: the looked-up features are scored as null (imputed)
    nulls = predict(client, key, "nulls", {"rows": [{"monthly": 1.0}, {"customer_id": 99, "monthly": 1.0}]}).get_json()
    assert nulls["enriched"] == [{"tenure": None, "monthly": 1.0, "plan": None, "region": None}] * 2
    assert len(nulls["predictions"]) == 2 and all(p in (0, 1) for p in nulls["predictions"])


def test_a_row_the_keys_row_scope_excludes_is_not_found(client, admin, scoring):
    mid = scoring.model_id
    asset = publish(
        client,
        admin,
        scoring.pid,
        [
            model_ep(mid, "strict", enrichments=[ENRICH], return_enriched=True),
            model_ep(mid, "lenient", enrichments=[{**ENRICH, "not_found": "ignore"}], return_enriched=True),
        ],
    )
    eu = mint(client, admin, asset, rate_limit=1000, masking_level="unmasked", row_scope={"region": ["EU"]})["key"]
    refused = predict(client, eu, "strict", {"features": {"customer_id": 1, "monthly": 80.0}})  # customer 1 is US
    assert refused.status_code == 422, refused.get_json()
    assert "US" not in str(refused.get_json()) and "basic" not in str(refused.get_json())
    ignored = predict(
        client, eu, "lenient", {"rows": [{"customer_id": 1, "monthly": 80.0}, {"customer_id": 2, "monthly": 30.0}]}
    )
    assert ignored.status_code == 200, ignored.get_json()
    body = ignored.get_json()
    assert body["predictions"][0]["ignored"] is True and body["enriched"][0] is None
    assert body["enriched"][1]["region"] == "EU" and body["predictions"][1] == 0
    assert "US" not in str(body)


def test_bad_rows_are_ignored_in_place_when_the_endpoint_says_so(client, admin, scoring):
    mid = scoring.model_id
    asset = publish(
        client, admin, scoring.pid, [model_ep(mid, "strict"), model_ep(mid, "lenient", on_bad_row="ignore")]
    )
    key = mint(client, admin, asset, rate_limit=1000)["key"]
    good = {"tenure": 2, "monthly": 80.0, "plan": "basic", "region": "US"}
    rows = [good, {**good, "tenure": "seven"}, {**good, "ghost": 1}, good]
    strict = predict(client, key, "strict", {"rows": rows})
    assert strict.status_code == 422 and "rows[1].tenure" in strict.get_json()["error"]["details"]["fields"]
    lenient = predict(client, key, "lenient", {"rows": rows})
    assert lenient.status_code == 200, lenient.get_json()
    body = lenient.get_json()
    assert body["predictions"][0] == body["predictions"][3] == 1 and body["count"] == 4
    assert body["predictions"][1] == {"ignored": True, "reason": "rows[1].tenure: expected an integer"}
    assert body["predictions"][2]["ignored"] is True and "rows[2].ghost" in body["predictions"][2]["reason"]
    assert body["probabilities"][1] is None and body["probabilities"][0]["1"] > 0.5
    every = predict(client, key, "lenient", {"rows": [{"tenure": "x"}]}).get_json()
    assert every["predictions"][0]["ignored"] is True and "probabilities" not in every
