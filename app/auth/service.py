"""Accounts: sign-up, login, users of an organization and personal access tokens."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta

from flask_jwt_extended import create_access_token
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from app.auth.passwords import COMMON_PASSWORD, hash_password, is_common_password, verify_password
from app.db import Organization, PersonalAccessToken, User
from app.db.columns import utcnow
from app.errors import APIError, conflict, invalid, not_found
from app.extensions import db
from app.secrets import generate_personal_token, hash_api_key


def _account_taken(username: str, email: str) -> bool:
    taken = db.session.scalar(
        select(User.id).where(
            (func.lower(User.username) == username.lower()) | (func.lower(User.email) == email.lower())
        )
    )
    return taken is not None


def _conflict(fields: tuple[str, ...], message: str) -> APIError:
    return conflict(message, {"fields": {field: [message] for field in fields}})


def _conflict_if_taken(username: str, email: str) -> None:
    if _account_taken(username, email):
        # One message for both: which of the two is taken would tell a stranger who has an account here.
        raise _conflict(("username", "email"), "username or e-mail is already registered")


# Sign-up: one answer whichever of the three is taken, so organization names cannot be listed either.
SIGNUP_CONFLICT = "organization name, username or e-mail is already registered"


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
    org_taken = db.session.scalar(select(Organization.id).where(func.lower(Organization.name) == org_name.lower()))
    if org_taken is not None or _account_taken(username, email):
        raise _conflict(("org_name", "username", "email"), SIGNUP_CONFLICT)
    password_hash = hash_password(password)
    try:
        org = Organization(name=org_name)
        db.session.add(org)
        db.session.flush()
        user = User(org_id=org.id, username=username, email=email.lower(), password_hash=password_hash, role="admin")
        db.session.add(user)
        db.session.commit()
    except IntegrityError:  # a concurrent sign-up took one of the names between the check and the insert
        db.session.rollback()
        raise _conflict(("org_name", "username", "email"), SIGNUP_CONFLICT) from None
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
    user: User, name: str, expires_days: int | None, not_after: datetime | None = None, parent_id: int | None = None
) -> tuple[PersonalAccessToken, str]:
    """The token row and its secret, which is returned this once and stored only as a hash.

    `not_after` is the expiry of the token the caller authenticated with: a token never outlives the one that minted
    it (a 1-day token cannot mint a never-expiring one). `parent_id` is that token's id (None when minted from a
    login): revoking the parent revokes this one too."""
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
        parent_id=parent_id,
    )
    db.session.add(token)
    db.session.commit()
    return token, minted.key


def list_personal_tokens(user: User) -> list[PersonalAccessToken]:
    stmt = select(PersonalAccessToken).where(PersonalAccessToken.user_id == user.id).order_by(PersonalAccessToken.id)
    return list(db.session.scalars(stmt))


def _descendant_ids(token_id: int) -> list[int]:
    """The token and every token minted from it, at any depth (one recursive query)."""
    pat = PersonalAccessToken
    tree = select(pat.id).where(pat.id == token_id).cte("token_tree", recursive=True)
    tree = tree.union(select(pat.id).where(pat.parent_id == tree.c.id))
    return list(db.session.scalars(select(tree.c.id)))


def delete_personal_token(user: User, token_id: int) -> None:
    """Revoke the token and all its descendants: a stolen token's children die with it."""
    token = db.session.get(PersonalAccessToken, token_id)
    if token is None or token.user_id != user.id:
        raise not_found("token")
    ids = _descendant_ids(token.id)
    db.session.execute(delete(PersonalAccessToken).where(PersonalAccessToken.id.in_(ids)))
    db.session.commit()


def _ancestors_live(token: PersonalAccessToken) -> bool:
    """Whether every token above this one (its parent, the parent's parent, ...) still exists, is the same user's
    and has not expired: a chain never outlives its root, even if a row was removed without the cascade."""
    if token.parent_id is None:
        return True
    pat = PersonalAccessToken
    up = select(pat.id, pat.parent_id, pat.user_id, pat.expires_at).where(pat.id == token.parent_id)
    up = up.cte("token_ancestors", recursive=True)
    up = up.union(select(pat.id, pat.parent_id, pat.user_id, pat.expires_at).where(pat.id == up.c.parent_id))
    rows = db.session.execute(select(up.c.id, up.c.parent_id, up.c.user_id, up.c.expires_at)).all()
    found = {row.id for row in rows}
    if token.parent_id not in found:
        return False
    now = utcnow()
    return all(
        row.user_id == token.user_id
        and (row.expires_at is None or row.expires_at > now)
        and (row.parent_id is None or row.parent_id in found)
        for row in rows
    )


def user_for_personal_token(secret: str) -> User | None:
    token = personal_token_for(secret)
    return token.user if token is not None else None


def personal_token_for(secret: str) -> PersonalAccessToken | None:
    """The unexpired token with this secret whose ancestors are all live (its last use noted), or None."""
    token = db.session.scalar(select(PersonalAccessToken).where(PersonalAccessToken.token_hash == hash_api_key(secret)))
    if token is None or (token.expires_at is not None and token.expires_at <= utcnow()):
        return None
    if not _ancestors_live(token):
        return None
    now = utcnow()
    # One write a minute at most: enough to show when a token was last used.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        token.last_used_at = now
        db.session.commit()
    return token
