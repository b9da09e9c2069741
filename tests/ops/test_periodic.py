"""Periodic work run by celery beat: the reaper of training runs whose worker was lost, the audit retention purge."""

from __future__ import annotations

from datetime import timedelta

from app.db.columns import utcnow


def _run_on_worker(app, name: str):
    return app.extensions["celery"].send_task(name, queue="default").get(timeout=60)


def test_reaper_marks_a_run_past_the_time_limit_failed_and_says_why(app, client, admin, project, worker):
    from app.db import Recipe, RecipeRun
    from app.extensions import db
    from tasks.train import TIME_LIMIT_SECONDS

    with app.app_context():
        recipe = Recipe(project_id=project["project_id"], name="churn", recipe_type="train_model", config={})
        db.session.add(recipe)
        db.session.flush()
        # A run whose worker was SIGKILLed mid-training stays `running`: nobody will ever finish it.
        lost = RecipeRun(
            recipe_id=recipe.id, status="running", started_at=utcnow() - timedelta(seconds=TIME_LIMIT_SECONDS + 60)
        )
        busy = RecipeRun(recipe_id=recipe.id, status="running", started_at=utcnow() - timedelta(seconds=30))
        db.session.add_all([lost, busy])
        db.session.commit()
        recipe_id, lost_id, busy_id = recipe.id, lost.id, busy.id

    assert _run_on_worker(app, "tasks.maintenance.reap_stuck_runs") == 1
    resp = client.get(f"/api/flow/ai-recipes/{recipe_id}/runs", headers=admin.project_headers(project["project_id"]))
    runs = {run["run_id"]: run for run in resp.get_json()["items"]}
    assert runs[lost_id]["status"] == "failed"
    assert "worker running this training was lost" in runs[lost_id]["error"]
    assert f"{TIME_LIMIT_SECONDS} s training time limit" in runs[lost_id]["error"]
    assert runs[lost_id]["finished_at"] is not None
    assert runs[busy_id]["status"] == "running" and runs[busy_id]["error"] is None
    assert _run_on_worker(app, "tasks.maintenance.reap_stuck_runs") == 0


def test_audit_purge_deletes_rows_past_retention_and_keeps_recent_ones(app, worker):
    from app.db import AuditLog, AuthFailure
    from app.extensions import db

    def refused(age_days: float) -> AuthFailure:
        return AuthFailure(
            created_at=utcnow() - timedelta(days=age_days), route="/api/data/<asset_key>", reason="invalid_key"
        )

    def row(age_days: float) -> AuditLog:
        return AuditLog(
            created_at=utcnow() - timedelta(days=age_days), asset_id=1, method="GET", status=200, latency_ms=1.0
        )

    assert app.config["AUDIT_RETENTION_DAYS"] == 90
    with app.app_context():
        db.session.add_all([row(120), row(91), row(89), row(1), refused(95), refused(2)])
        db.session.commit()
    assert _run_on_worker(app, "tasks.maintenance.purge_audit_logs") == 2
    with app.app_context():
        ages = sorted((utcnow() - r.created_at).days for r in db.session.scalars(db.select(AuditLog)))
        refused_ages = [(utcnow() - r.created_at).days for r in db.session.scalars(db.select(AuthFailure))]
    assert ages == [1, 89]
    assert refused_ages == [2]  # refused-key records follow the same retention


def test_beat_schedules_the_reaper_and_the_purge(app):
    celery = app.extensions["celery"]
    celery.loader.import_default_modules()
    schedule = {entry["task"]: entry["schedule"] for entry in celery.conf.beat_schedule.values()}
    assert schedule == {
        "tasks.maintenance.reap_stuck_runs": 60.0,
        "tasks.maintenance.purge_audit_logs": 3600.0,
        "tasks.maintenance.flush_serving_records": 60.0,
    }
    assert set(schedule) <= set(celery.tasks)
