"""Data-API key routes, under their asset."""

from flask import Blueprint, request

from app.auth.permissions import current_user, login_required
from app.http import json_body
from app.keys import service
from app.keys.schemas import (
    KeyCreatedSchema,
    KeyCreateSchema,
    KeyListSchema,
    KeyRotateSchema,
    KeySchema,
    KeyUpdateSchema,
)
from app.openapi import doc
from app.publishing.service import get_asset

bp = Blueprint("keys", __name__)


@bp.post("/api/publish/assets/<int:asset_id>/api-keys")
@doc(
    "Mint a data-API key; the full key is returned this once. allowed_endpoints: null = every endpoint, [] is a "
    "422; a key above the minter's role ceiling (unmasked, or sensitivity_max above it) needs org.admin (403)",
    body=KeyCreateSchema,
    response=KeyCreatedSchema,
    status=201,
)
@login_required()
def mint_key(asset_id: int):
    user = current_user()
    asset = get_asset(user, asset_id, "project.edit")
    data = KeyCreateSchema().load(json_body())
    key, secret = service.mint_api_key(user, asset, data)
    body = KeyCreatedSchema().dump(key)
    body["key"] = secret
    return body, 201


@bp.get("/api/publish/assets/<int:asset_id>/api-keys")
@doc("The asset's keys (prefix only, never the secret)", response=KeyListSchema)
@login_required()
def list_keys(asset_id: int):
    asset = get_asset(current_user(), asset_id, "project.edit")
    return KeyListSchema().dump({"items": service.list_api_keys(asset)})


@bp.delete("/api/publish/assets/<int:asset_id>/api-keys/<int:key_id>")
@doc("Revoke a key, effective at once on every server", status=204)
@login_required()
def revoke_key(asset_id: int, key_id: int):
    asset = get_asset(current_user(), asset_id, "project.edit")
    service.revoke_api_key(asset, key_id)
    return "", 204


@bp.patch("/api/publish/assets/<int:asset_id>/api-keys/<int:key_id>")
@doc(
    "Change a key's mint fields (validated as at minting); effective on the next call on every server, and no "
    "answer cached under the old settings is served under the new ones",
    body=KeyUpdateSchema(partial=True),
    response=KeySchema,
)
@login_required()
def update_key(asset_id: int, key_id: int):
    user = current_user()
    asset = get_asset(user, asset_id, "project.edit")
    data = KeyUpdateSchema().load(json_body(), partial=True)
    return KeySchema().dump(service.update_api_key(user, asset, key_id, data))


@bp.post("/api/publish/assets/<int:asset_id>/api-keys/<int:key_id>/rotate")
@doc(
    "A new secret for the key, returned this once; the old secret keeps working grace_seconds more (0..86400, "
    "default 0)",
    body=KeyRotateSchema,
    response=KeyCreatedSchema,
)
@login_required()
def rotate_key(asset_id: int, key_id: int):
    asset = get_asset(current_user(), asset_id, "project.edit")
    data = KeyRotateSchema().load(json_body() if request.get_data() else {})
    key, secret = service.rotate_api_key(asset, key_id, data["grace_seconds"])
    body = KeyCreatedSchema().dump(key)
    body["key"] = secret
    return body
