"""The README's curl walkthrough ("First steps with curl"), run as written: its ```sh blocks, in order, in one bash,
against a live gunicorn and Celery worker (BASE pointing at it), each block's answers checked."""

from __future__ import annotations

import json
import os
import re
import subprocess

from tests.sdk.conftest import ROOT

SECTION = "## First steps with curl"


def readme_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION) + len(SECTION)
    section = text[start : text.find("\n## ", start)]
    return re.findall(r"^```sh\n(.*?)^```$", section, flags=re.M | re.S)


def json_documents(text: str) -> list[object]:
    """Everything a block printed: curl answers run together without newlines, so decode them one after another."""
    decoder, docs, pos = json.JSONDecoder(), [], 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        doc, pos = decoder.raw_decode(text, pos)
        docs.append(doc)
    return docs


def run_blocks(blocks: list[str], base: str) -> list[list[object]]:
    marker = "<<<apiary-block>>>"
    script = "set -euo pipefail\n" + "".join(f"printf '\\n{marker}\\n'\n{block}" for block in blocks)
    done = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env={**os.environ, "BASE": base}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == "", done.stderr
    outputs = done.stdout.split(f"\n{marker}\n")[1:]
    assert len(outputs) == len(blocks)
    return [json_documents(out) for out in outputs]


def test_readme_walkthrough_runs_against_a_live_server(server_url, live_worker, app):
    blocks = readme_blocks()
    assert len(blocks) == 6, "the walkthrough's sh blocks"
    signup, project, upload, train, service, calls = run_blocks(blocks, server_url)

    [registered] = signup
    assert set(registered) == {"user_id", "org_id"}

    created, listed, token = project
    assert created["slug"] == "sales" and listed == {"items": [created]}
    assert token["name"] == "ci" and token["token"].startswith(token["prefix"])

    uploaded, settings = upload
    assert uploaded["name"] == "uploads.customers" and uploaded["row_count"] == 120
    assert {c["name"]: c["type"] for c in uploaded["columns"]}["tenure"] == "integer"
    masking = {c["name"]: c["sensitivity"] for c in uploaded["columns"]}
    assert masking["name"] == "medium" and masking["email"] == "high" and masking["tenure"] == "low"
    assert settings == {"friendly_name": "Customers", "description": "", "masking": {}}

    run, models = train
    assert run["status"] == "success" and run["metrics"]["accuracy"] > 0.7, run
    assert [(m["model_id"], m["name"]) for m in models["models"]] == [(run["model_id"], "churn")]

    [published] = service
    assert published == {"ok": True, "status": "published", "version": 1}

    customer, top, risk, segment, dry = calls
    assert customer["count"] == 1 and customer["rows"][0]["customer_key"] == 42
    assert customer["rows"][0]["email"] == "[BLOCKED]" and customer["rows"][0]["name"].endswith("****")
    assert top["count"] == 3 and {r["region"] for r in top["rows"]} == {"EU"} and top["limit"] == 3
    assert [r["tenure"] for r in top["rows"]] == sorted((r["tenure"] for r in top["rows"]), reverse=True)
    assert risk["predictions"] == [1] and risk["model_id"] == run["model_id"] and risk["count"] == 1
    assert segment == {"result": {"segment": "new"}}
    assert dry["dry"] is True and dry["predictions"] == [0]
