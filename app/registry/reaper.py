"""Training runs whose worker was lost (killed, OOM, host gone) are marked failed once past the training time limit."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import update

from app.db import RecipeRun
from app.db.columns import utcnow
from app.extensions import db

log = logging.getLogger(__name__)


def reap_stuck_runs(time_limit_seconds: float) -> int:
    """Mark failed every run still `running` longer than `time_limit_seconds` after it started: the worker's own
    time limit would have ended it by then, so nobody will ever finish it. Returns how many runs were reaped."""
    cutoff = utcnow() - timedelta(seconds=time_limit_seconds)
    error = (
        f"the worker running this training was lost (no result within the {time_limit_seconds:g} s training time "
        "limit, e.g. the worker process was killed or ran out of memory); start the run again"
    )
    result = db.session.execute(
        update(RecipeRun)
        .where(RecipeRun.status == "running", RecipeRun.started_at < cutoff)
        .values(status="failed", error=error, finished_at=utcnow())
    )
    db.session.commit()
    if result.rowcount:
        log.warning("marked %d stuck training run(s) failed", result.rowcount)
    return result.rowcount
