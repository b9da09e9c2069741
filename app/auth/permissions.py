"""Who the caller is and what they may do: bearer authentication, roles and project scoping, in one place."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from flask import g, request
from flask_jwt_extended import get_jwt_identity, verify_jwt_in_request
from sqlalchemy import select

from app.auth.service import personal_token_for
from app.db import Project, User
from app.db.columns import parse_id
from app.errors import APIError, forbidden, not_found, unauthorized
from app.extensions import db
from app.secrets import PERSONAL_TOKEN_PREFIX

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({"org.admin", "project.view", "project.edit"}),
    "designer": frozenset({"project.view", "project.edit"}),
    "analyst": frozenset({"project.view"}),
    "viewer": frozenset({"project.view"}),
}


def has_permission(user: User, permission: str) -> bool:
    return permission in ROLE_PERMISSIONS.get(user.role, frozenset())


def _authenticate() -> User:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("missing or malformed Authorization header (expected 'Bearer <token>')")
    token = token.strip()
    if token.startswith(PERSONAL_TOKEN_PREFIX):
        personal = personal_token_for(token)
        user = personal.user if personal is not None else None
        g.credential_expires_at = personal.expires_at if personal is not None else None
        g.credential_token_id = personal.id if personal is not None else None
    else:
        verify_jwt_in_request()
        identity = get_jwt_identity()
        user = db.session.get(User, int(identity)) if str(identity).isdigit() else None
    if user is None or not user.is_active:
        raise unauthorized("invalid or expired credentials")
    org_header = request.headers.get("X-Org-Id")
    if org_header is not None and org_header.strip() != str(user.org_id):
        raise forbidden("X-Org-Id does not match your organization")
    return user


def credential_expires_at():
    """When the personal access token this request authenticated with expires (None: a JWT, or a token that never
    expires)."""
    current_user()
    return g.get("credential_expires_at")


def credential_token_id() -> int | None:
    """The id of the personal access token this request authenticated with (None: a JWT)."""
    current_user()
    return g.get("credential_token_id")


def current_user() -> User:
    user = getattr(g, "user", None)
    if user is None:
        user = g.user = _authenticate()
    return user


def require_permission(user: User, permission: str) -> None:
    if not has_permission(user, permission):
        raise forbidden(f"your role ({user.role}) lacks the {permission} permission")


def login_required(permission: str | None = None) -> Callable:
    """Authenticate the bearer token; with `permission`, also require that org-level permission."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            user = current_user()
            if permission:
                require_permission(user, permission)
            return view(*args, **kwargs)

        return wrapper

    return decorator


def get_project_for(user: User, project_id: int) -> Project:
    """The project if it belongs to the user's organization; 404 otherwise (never reveal other orgs)."""
    project = db.session.get(Project, project_id)
    if project is None or project.org_id != user.org_id:
        raise not_found("project")
    return project


def project_in_scope(permission: str = "project.view", required: bool = True) -> Project | None:
    """The project named by X-Project-Id, checked against the caller's organization and `permission`."""
    user = current_user()
    raw = request.headers.get("X-Project-Id")
    if raw is None or raw.strip() == "":
        if required:
            raise APIError(
                400, "validation_error", "X-Project-Id header is required", {"fields": {"X-Project-Id": ["required"]}}
            )
        return None
    raw = raw.strip()
    if raw.isascii() and raw.isdigit():
        project_id = parse_id(raw)
        if project_id is None:
            raise not_found("project")
        project = get_project_for(user, project_id)
    else:  # a slug, as /api/projects/{id_or_slug} takes it; slugs are unique within an organization
        project = db.session.scalar(select(Project).where(Project.org_id == user.org_id, Project.slug == raw))
        if project is None:
            raise not_found("project")
    require_permission(user, permission)
    return project
