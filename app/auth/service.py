"""Accounts: sign-up, login, users of an organization and personal access tokens."""

from __future__ import annotations

from datetime import timedelta

from flask_jwt_extended import create_access_token
from sqlalchemy import func, select

from app.auth.passwords import hash_password, verify_password
from app.db import Organization, PersonalAccessToken, User
from app.db.columns import utcnow
from app.errors import APIError, not_found
from app.extensions import db
from app.keys.secrets import generate_personal_token, hash_api_key


def _conflict_if_taken(username: str, email: str) -> None:
    taken = db.session.scalar(
        select(User).where((func.lower(User.username) == username.lower()) | (func.lower(User.email) == email.lower()))
    )
    if taken is not None:
        field = "username" if taken.username.lower() == username.lower() else "email"
        raise APIError(409, "conflict", f"{field} is already registered", {"fields": {field: ["already registered"]}})


def register_organization(org_name: str, username: str, email: str, password: str) -> User:
    """A new organization with this user as its admin."""
    if db.session.scalar(select(Organization).where(func.lower(Organization.name) == org_name.lower())):
        raise APIError(409, "conflict", "org_name is already taken", {"fields": {"org_name": ["already taken"]}})
    _conflict_if_taken(username, email)
    org = Organization(name=org_name)
    db.session.add(org)
    db.session.flush()
    user = User(
        org_id=org.id, username=username, email=email.lower(), password_hash=hash_password(password), role="admin"
    )
    db.session.add(user)
    db.session.commit()
    return user


def create_user(org_id: int, username: str, email: str, password: str, role: str, must_reset: bool = False) -> User:
    _conflict_if_taken(username, email)
    user = User(
        org_id=org_id,
        username=username,
        email=email.lower(),
        password_hash=hash_password(password),
        role=role,
        must_reset_password=must_reset,
    )
    db.session.add(user)
    db.session.commit()
    return user


def list_users(org_id: int) -> list[User]:
    return list(db.session.scalars(select(User).where(User.org_id == org_id).order_by(User.id)))


def login(username: str, password: str, expires_minutes: int) -> dict:
    """A JWT for the user named by username or e-mail; 401 on any mismatch, with no hint which part was wrong."""
    user = db.session.scalar(
        select(User).where(
            (func.lower(User.username) == username.lower()) | (func.lower(User.email) == username.lower())
        )
    )
    if not verify_password(user.password_hash if user else None, password) or not user.is_active:
        raise APIError(401, "invalid_credentials", "wrong username or password")
    token = create_access_token(
        identity=str(user.id),
        additional_claims={"org_id": user.org_id, "role": user.role},
        expires_delta=timedelta(minutes=expires_minutes),
    )
    return {
        "access_token": token,
        "token_type": "bearer",
        "must_reset_password": user.must_reset_password,
        "expires_in": expires_minutes * 60,
    }


def create_personal_token(user: User, name: str, expires_days: int | None) -> tuple[PersonalAccessToken, str]:
    """The token row and its secret, which is returned this once and stored only as a hash."""
    minted = generate_personal_token()
    token = PersonalAccessToken(
        user_id=user.id,
        name=name,
        prefix=minted.prefix,
        token_hash=minted.key_hash,
        expires_at=utcnow() + timedelta(days=expires_days) if expires_days else None,
    )
    db.session.add(token)
    db.session.commit()
    return token, minted.key


def list_personal_tokens(user: User) -> list[PersonalAccessToken]:
    stmt = select(PersonalAccessToken).where(PersonalAccessToken.user_id == user.id).order_by(PersonalAccessToken.id)
    return list(db.session.scalars(stmt))


def delete_personal_token(user: User, token_id: int) -> None:
    token = db.session.get(PersonalAccessToken, token_id)
    if token is None or token.user_id != user.id:
        raise not_found("token")
    db.session.delete(token)
    db.session.commit()


def user_for_personal_token(secret: str) -> User | None:
    token = db.session.scalar(select(PersonalAccessToken).where(PersonalAccessToken.token_hash == hash_api_key(secret)))
    if token is None or (token.expires_at is not None and token.expires_at <= utcnow()):
        return None
    now = utcnow()
    # One write a minute at most: enough to show when a token was last used.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        token.last_used_at = now
        db.session.commit()
    return token.user
