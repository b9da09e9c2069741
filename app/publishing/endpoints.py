"""One endpoint of an API service's draft at a time: add (replacing one with the same id) and remove."""

from __future__ import annotations

from app.db import PublishedAsset, User
from app.errors import invalid, not_found
from app.publishing.endpoint_config import endpoint_index
from app.publishing.service import update_asset


def _endpoints(asset: PublishedAsset) -> list:
    if asset.asset_type != "api_service":
        raise invalid("asset_type", "only an api_service has endpoints", status=400)
    return list((asset.config or {}).get("endpoints", []))


def put_endpoint(
    user: User, asset: PublishedAsset, endpoint: dict, change_note: str = ""
) -> tuple[PublishedAsset, bool]:
    """Add `endpoint` to the draft, or replace the endpoint with its id in place; (asset, replaced).

    The whole config is checked as on any draft edit, so a bad endpoint is refused naming it and its field."""
    if not isinstance(endpoint, dict):
        raise invalid("endpoint", "expected an object with id and kind")
    endpoints = _endpoints(asset)
    at = endpoint_index({"endpoints": endpoints}, endpoint.get("id"))
    if at is None:
        endpoints.append(endpoint)
    else:
        endpoints[at] = endpoint
    note = change_note or f"{'replace' if at is not None else 'add'} endpoint {endpoint.get('id')}"
    return update_asset(user, asset, {"config": {"endpoints": endpoints}, "change_note": note}), at is not None


def remove_endpoint(user: User, asset: PublishedAsset, endpoint_id: str, change_note: str = "") -> PublishedAsset:
    """Drop an endpoint from the draft; 404 when the draft has none with that id."""
    endpoints = _endpoints(asset)
    at = endpoint_index({"endpoints": endpoints}, endpoint_id)
    if at is None:
        raise not_found(f"endpoint {endpoint_id!r}")
    kept = [ep for ep in endpoints if not (isinstance(ep, dict) and ep.get("id") == endpoint_id)]
    note = change_note or f"remove endpoint {endpoint_id}"
    return update_asset(user, asset, {"config": {"endpoints": kept}, "change_note": note})
