"""Auth routes: login, me, sign-up, users and personal access tokens."""

from flask import Blueprint, current_app, request

from app.auth import service
from app.auth.permissions import credential_expires_at, credential_token_id, current_user, login_required
from app.auth.schemas import (
    AuthFailurePageSchema,
    AuthFailureQuerySchema,
    LoginResultSchema,
    LoginSchema,
    MeSchema,
    RegisterResultSchema,
    RegisterSchema,
    TokenCreatedSchema,
    TokenCreateSchema,
    TokenListSchema,
    UserCreateSchema,
    UserListSchema,
    UserSchema,
)
from app.auth.throttle import throttle_login_account, throttle_login_address, throttle_signup_address
from app.errors import APIError
from app.http import json_body
from app.keys.auth_failures import list_auth_failures
from app.openapi import doc

bp = Blueprint("auth", __name__)


@bp.post("/api/auth/login")
@doc(
    "Log in with username (or e-mail) and password; throttled per client address and per account (429 with "
    "Retry-After)",
    body=LoginSchema,
    response=LoginResultSchema,
    auth=False,
)
def login():
    throttle_login_address()
    data = LoginSchema().load(json_body())
    minutes = current_app.config["JWT_EXPIRES_MINUTES"]
    result = service.login(data["username"], data["password"], minutes, before_verify=throttle_login_account)
    return LoginResultSchema().dump(result)


@bp.get("/api/auth/me")
@doc("The calling user", response=MeSchema)
@login_required()
def me():
    return MeSchema().dump(current_user())


@bp.post("/api/auth/register")
@doc(
    "Self-service sign-up: a new organization with this user as its admin (usernames without @, no common "
    "passwords; throttled per client address)",
    body=RegisterSchema,
    response=RegisterResultSchema,
    status=201,
    auth=False,
)
def register():
    if not current_app.config["ALLOW_SIGNUP"]:
        raise APIError(403, "signup_disabled", "self-service sign-up is turned off on this server")
    throttle_signup_address()
    data = RegisterSchema().load(json_body())
    user = service.register_organization(**data)
    return RegisterResultSchema().dump({"user_id": user.id, "org_id": user.org_id}), 201


@bp.post("/api/users")
@doc("Add a user to the caller's organization (org admin)", body=UserCreateSchema, response=UserSchema, status=201)
@login_required("org.admin")
def create_user():
    data = UserCreateSchema().load(json_body())
    user = service.create_user(current_user().org_id, **data)
    return UserSchema().dump(user), 201


@bp.get("/api/users")
@doc("Users of the caller's organization (org admin)", response=UserListSchema)
@login_required("org.admin")
def list_users():
    return UserListSchema().dump({"items": service.list_users(current_user().org_id)})


@bp.get("/api/auth/audit")
@doc(
    "Refused API keys aimed at the caller's organization (org admin): unknown, revoked, expired or another asset's "
    "keys, one record per client address, key prefix, route and reason per minute with its attempt count",
    response=AuthFailurePageSchema,
    query={"reason": "", "since": "ISO 8601", "until": "ISO 8601", "limit": "1..1000", "offset": ">= 0"},
)
@login_required("org.admin")
def auth_audit():
    filters = AuthFailureQuerySchema().load(request.args.to_dict())
    return AuthFailurePageSchema().dump(list_auth_failures(current_user().org_id, filters))


@bp.post("/api/auth/tokens")
@doc(
    "Mint a personal access token; the secret is returned once; minted with a personal access token, it expires "
    "no later than that token, records it as `parent_id`, and is revoked with it",
    body=TokenCreateSchema,
    response=TokenCreatedSchema,
    status=201,
)
@login_required()
def create_token():
    data = TokenCreateSchema().load(json_body())
    token, secret = service.create_personal_token(
        current_user(),
        data["name"],
        data["expires_days"],
        not_after=credential_expires_at(),
        parent_id=credential_token_id(),
    )
    result = TokenCreatedSchema().dump(token)
    result["token"] = secret
    return result, 201


@bp.get("/api/auth/tokens")
@doc("The caller's personal access tokens (never the secrets)", response=TokenListSchema)
@login_required()
def list_tokens():
    return TokenListSchema().dump({"items": service.list_personal_tokens(current_user())})


@bp.delete("/api/auth/tokens/<int:token_id>")
@doc(
    "Revoke one of the caller's personal access tokens and every token minted from it (children, their children, ...)",
    status=204,
)
@login_required()
def delete_token(token_id: int):
    service.delete_personal_token(current_user(), token_id)
    return "", 204
