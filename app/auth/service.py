"""Accounts: sign-up, login, users of an organization and personal access tokens."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta

from flask_jwt_extended import create_access_token
from sqlalchemy import func, select

from app.auth.passwords import COMMON_PASSWORD, hash_password, is_common_password, verify_password
from app.db import Organization, PersonalAccessToken, User
from app.db.columns import utcnow
from app.errors import APIError, invalid, not_found
from app.extensions import db
from app.keys.secrets import generate_personal_token, hash_api_key


def _conflict_if_taken(username: str, email: str) -> None:
    taken = db.session.scalar(
        select(User.id).where(
            (func.lower(User.username) == username.lower()) | (func.lower(User.email) == email.lower())
        )
    )
    if taken is not None:
        # One message for both: which of the two is taken would tell a stranger who has an account here.
        message = "username or e-mail is already registered"
        raise APIError(409, "conflict", message, {"fields": {"username": [message], "email": [message]}})


def _check_new_account(username: str, password: str) -> None:
    """The rules the schemas enforce, again for callers that skip them (the CLI)."""
    if "@" in username:
        raise invalid("username", "must not contain @ (log in with the e-mail address instead)")
    if is_common_password(password):
        raise invalid("password", COMMON_PASSWORD)


def suggest_username(email: str) -> str:
    """A free username made from the e-mail's local part (usernames may not contain `@`)."""
    base = re.sub(r"[^A-Za-z0-9_.-]", "_", email.split("@", 1)[0])[:70] or "user"
    base = base if len(base) >= 3 else f"{base}_user"
    candidate, n = base, 1
    while db.session.scalar(select(User.id).where(func.lower(User.username) == candidate.lower())) is not None:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def register_organization(org_name: str, username: str, email: str, password: str) -> User:
    """A new organization with this user as its admin."""
    _check_new_account(username, password)
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
    _check_new_account(username, password)
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


def user_by_login(identifier: str) -> User | None:
    """The account a login names. An identifier with `@` is an e-mail first: usernames cannot contain `@` any more,
    and one made before that rule must not shadow the account that owns the address."""
    ident = identifier.lower()
    if "@" in ident:
        user = db.session.scalar(select(User).where(func.lower(User.email) == ident))
        if user is not None:
            return user
    return db.session.scalar(select(User).where(func.lower(User.username) == ident))


def authenticate_user(
    identifier: str, password: str, before_verify: Callable[[str], None] | None = None
) -> User | None:
    """The active user whose login and password match, else None. `before_verify(account)` runs before the costly
    hash check with a stable name of the account (its id, or the identifier when there is none): the throttle."""
    user = user_by_login(identifier)
    if before_verify is not None:
        before_verify(f"user:{user.id}" if user is not None else f"name:{identifier.lower()}")
    if not verify_password(user.password_hash if user else None, password) or not user.is_active:
        return None
    return user


def login(
    username: str, password: str, expires_minutes: int, before_verify: Callable[[str], None] | None = None
) -> dict:
    """A JWT for the user named by username or e-mail; 401 on any mismatch, with no hint which part was wrong."""
    user = authenticate_user(username, password, before_verify)
    if user is None:
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


def revoke_console_sessions(user: User) -> None:
    """Sign the user out of every console session: cookies carry the generation they were issued under."""
    user.session_generation = (user.session_generation or 0) + 1
    db.session.commit()


def create_personal_token(
    user: User, name: str, expires_days: int | None, not_after: datetime | None = None
) -> tuple[PersonalAccessToken, str]:
    """The token row and its secret, which is returned this once and stored only as a hash.

    `not_after` is the expiry of the token the caller authenticated with: a token never outlives the one that minted
    it (a 1-day token cannot mint a never-expiring one)."""
    minted = generate_personal_token()
    expires_at = utcnow() + timedelta(days=expires_days) if expires_days else None
    if not_after is not None and (expires_at is None or expires_at > not_after):
        expires_at = not_after
    token = PersonalAccessToken(
        user_id=user.id,
        name=name,
        prefix=minted.prefix,
        token_hash=minted.key_hash,
        expires_at=expires_at,
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
    token = personal_token_for(secret)
    return token.user if token is not None else None


def personal_token_for(secret: str) -> PersonalAccessToken | None:
    """The unexpired token with this secret (its last use noted), or None."""
    token = db.session.scalar(select(PersonalAccessToken).where(PersonalAccessToken.token_hash == hash_api_key(secret)))
    if token is None or (token.expires_at is not None and token.expires_at <= utcnow()):
        return None
    now = utcnow()
    # One write a minute at most: enough to show when a token was last used.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        token.last_used_at = now
        db.session.commit()
    return token
