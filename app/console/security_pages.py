"""Org admins' view of refused API keys aimed at their organization (what `GET /api/auth/audit` answers)."""

from __future__ import annotations

from flask import render_template, request

from app.auth.permissions import require_permission
from app.auth.schemas import AuthFailureQuerySchema
from app.console.blueprint import bp, console_user, signed_in
from app.console.forms import FormErrors, load, page_links, text
from app.keys.auth_failures import list_auth_failures

PAGE_SIZE = 50
REASON_LABELS = {
    "missing_key": "No key sent",
    "invalid_key": "Unknown key",
    "key_revoked": "Revoked key",
    "key_expired": "Expired key",
    "wrong_asset": "Another asset's key",
}


@bp.get("/security/refused-keys")
@signed_in
def refused_keys():
    user = console_user()
    require_permission(user, "org.admin")
    values = {name: text(request.args, name) for name in ("reason", "since", "until", "offset")}
    errors = FormErrors()
    query = {k: v for k, v in values.items() if v}
    filters = load(AuthFailureQuerySchema(), {**query, "limit": PAGE_SIZE}, errors)
    empty = {"items": [], "total": 0, "attempts": 0, "offset": 0, "limit": PAGE_SIZE}
    page = list_auth_failures(user.org_id, filters) if filters is not None else empty
    pages = page_links(page, query, PAGE_SIZE)
    status = 422 if errors else 200
    return render_template(
        "console/refused_keys.html", page=page, values=values, errors=errors, reasons=REASON_LABELS, pages=pages
    ), status
