"""Shadow traffic: a model or function call is run again on the routing's shadow version after its response is sent,
as a task on the same queue, and both answers' summaries go to the audit log. A shadow run never touches the answer;
beyond `SHADOW_MAX_IN_FLIGHT` runs waiting or running, new ones are dropped (counted) before anything else is."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy import select

from app.db import AssetVersion
from app.extensions import db
from app.publishing.endpoint_config import endpoint_of
from app.serving.dispatch import model_for_endpoint, query_features
from app.serving.shadow_runs import admit_shadow
from tasks.functions import shadow_function

log = logging.getLogger(__name__)

SHADOW_EXPIRES_S = 30  # a shadow run not started by then is dropped by the worker too


@dataclass(frozen=True)
class ShadowCall:
    asset_id: int
    org_id: int
    project_id: int | None
    version: int  # the shadow version
    endpoint_id: str
    kind: str  # model | function
    body: object
    call_id: str
    key_id: int
    from_query: bool = False  # a model's GET form: `body` holds the query string's text values


def queue_shadow(app: Flask, shadow: ShadowCall) -> None:
    """After the response: queue the shadow run, or drop it (too many in flight, no such endpoint in the shadow
    version, Redis or the broker unavailable). Never raises."""
    with app.app_context():
        try:
            _queue(shadow)
        except Exception as exc:  # noqa: BLE001 - a shadow run must never fail anything
            log.warning("shadow run of %s dropped: %s", shadow.call_id, exc)
        finally:
            db.session.remove()


def _queue(shadow: ShadowCall) -> None:
    config = db.session.scalar(
        select(AssetVersion.config).where(
            AssetVersion.asset_id == shadow.asset_id, AssetVersion.version == shadow.version
        )
    )
    endpoint = endpoint_of(config, shadow.endpoint_id)
    if endpoint is None or endpoint.kind != shadow.kind or endpoint.get("enrichments"):
        return  # nothing comparable to run (an enriched model endpoint is not shadowed)
    if not admit_shadow(shadow.call_id, int(current_app.config["SHADOW_MAX_IN_FLIGHT"]), SHADOW_EXPIRES_S):
        return
    record = {
        "asset_id": shadow.asset_id,
        "org_id": shadow.org_id,
        "project_id": shadow.project_id,
        "version": shadow.version,
        "endpoint_id": shadow.endpoint_id,
        "call_id": shadow.call_id,
        "key_id": shadow.key_id,
        "model_id": endpoint.model_id,
    }
    if shadow.kind == "model":
        # lazy: tasks.predict loads scikit-learn, which the web process never needs
        from tasks.predict import shadow_score

        model = model_for_endpoint(endpoint.model_id, shadow.project_id)
        payload = {
            "id": model.id,
            "artifact_path": model.artifact_path,
            "artifact_sha256": model.artifact_sha256,
            "sklearn_version": model.sklearn_version,
            "input_schema": model.input_schema,
        }
        body = shadow.body
        if shadow.from_query:  # typed as the shadow model's schema says, as its own GET form would be
            body = {"features": query_features(model.input_schema, body["features"])}
        task, args, queue = shadow_score, [payload, body, record], "predict"
    else:
        identity = {
            "org_id": shadow.org_id,
            "asset_id": shadow.asset_id,
            "version": shadow.version,
            "endpoint_id": shadow.endpoint_id,
        }
        task, args, queue = shadow_function, [endpoint.handler, shadow.body, identity, record], "functions"
    task.apply_async(
        args=args, queue=queue, expires=SHADOW_EXPIRES_S, argsrepr=f"(shadow {shadow.call_id})", kwargsrepr="{}"
    )
