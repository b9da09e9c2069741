"""Data-API key routes, under their asset."""

from flask import Blueprint

from app.auth.permissions import current_user, login_required
from app.http import json_body
from app.keys import service
from app.keys.schemas import KeyCreatedSchema, KeyCreateSchema, KeyListSchema
from app.openapi import doc
from app.publishing.service import get_asset

bp = Blueprint("keys", __name__)


@bp.post("/api/publish/assets/<int:asset_id>/api-keys")
@doc("Mint a data-API key; the full key is returned this once. allowed_endpoints: null = every endpoint, [] is a "
     "422; a key above the minter's role ceiling (unmasked, or sensitivity_max above it) needs org.admin (403)",
     body=KeyCreateSchema, response=KeyCreatedSchema, status=201)  # fmt: skip
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
