"""Operator CLI: users and projects."""


def test_users_and_projects_commands(app):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            "ops@example.com",
            "--password",
            "long password 1",
            "--org",
            "Ops Org",
            "--role",
            "admin",
        ]
    )
    assert result.exit_code == 0, result.output
    again = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            "ops@example.com",
            "--password",
            "x" * 10,
            "--org",
            "Ops Org",
            "--if-missing",
        ]
    )
    assert again.exit_code == 0 and "already exists" in again.output
    dup = runner.invoke(
        args=["users", "create", "--email", "ops@example.com", "--password", "x" * 10, "--org", "Ops Org"]
    )
    assert dup.exit_code != 0

    created = runner.invoke(args=["projects", "create", "--org", "Ops Org", "--name", "Risk", "--slug", "risk"])
    assert created.exit_code == 0, created.output
    listed = runner.invoke(args=["projects", "list", "--org", "Ops Org"])
    assert "risk" in listed.output
    users = runner.invoke(args=["users", "list", "--org", "Ops Org"])
    assert "ops@example.com" in users.output

    client = app.test_client()
    token = client.post("/api/auth/login", json={"username": "ops@example.com", "password": "long password 1"})
    assert token.status_code == 200
    headers = {"Authorization": f"Bearer {token.get_json()['access_token']}"}
    assert [p["slug"] for p in client.get("/api/projects", headers=headers).get_json()["items"]] == ["risk"]


def test_projects_create_unknown_org_fails(app):
    result = app.test_cli_runner().invoke(args=["projects", "create", "--org", "Nope", "--name", "N", "--slug", "n"])
    assert result.exit_code != 0 and "no organization" in result.output
