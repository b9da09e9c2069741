"""Every list answer has one shape, `{"items": [...]}` (plus `total`, `limit`, `offset` where paged), except where the
contract fixes another one (`GET /api/models` is `{"models": [...]}`)."""

from tests.models.conftest import churn, classification_config, create_recipe  # noqa: F401 - fixtures


def test_list_responses_share_one_shape(client, admin, project, churn):  # noqa: F811
    pid = project["project_id"]
    headers = admin.project_headers(pid)
    recipe = create_recipe(client, admin, pid, classification_config()).get_json()
    asset = client.post(
        "/api/publish/assets",
        headers=headers,
        json={
            "asset_type": "api_service",
            "asset_key": "shapes",
            "title": "Shapes",
            "config": {"endpoints": [{"id": "c", "kind": "lookup", "dataset": churn, "key_column": "customer_key"}]},
        },
    ).get_json()
    client.post(f"/api/publish/assets/{asset['id']}/api-keys", headers=headers, json={"name": "k"})
    client.post("/api/auth/tokens", headers=admin.headers, json={"name": "ci", "expires_days": 1})

    plain = [
        "/api/projects",
        "/api/users",
        "/api/auth/tokens",
        "/api/datasets",
        "/api/publish/assets",
        f"/api/flow/ai-recipes/{recipe['recipe_id']}/runs",
        f"/api/publish/assets/{asset['id']}/api-keys",
    ]
    for path in plain:
        resp = client.get(path, headers=headers)
        assert resp.status_code == 200, (path, resp.get_json())
        body = resp.get_json()
        assert list(body) == ["items"] and isinstance(body["items"], list), (path, body)
    assert len(client.get("/api/datasets", headers=headers).get_json()["items"]) == 1

    paged = client.get(f"/api/api-services/{asset['id']}/logs", headers=headers).get_json()
    assert sorted(paged) == ["items", "limit", "offset", "total"] and paged["items"] == []

    models = client.get("/api/models", headers=headers).get_json()
    assert models == {"models": []}  # fixed by the contract
