"""What CLI commands act on: an organization by name, a published asset by key, the user acting on an asset;
and running a service call with its APIError as the command's one-line failure."""

from __future__ import annotations

import click
from sqlalchemy import func, select

from app.db import Organization, PublishedAsset, User
from app.errors import APIError
from app.extensions import db


def org_by_name(name: str, create: bool) -> Organization:
    org = db.session.scalar(select(Organization).where(func.lower(Organization.name) == name.lower()))
    if org is None and create:
        org = Organization(name=name)
        db.session.add(org)
        db.session.commit()
    if org is None:
        raise click.ClickException(f"no organization named {name!r}")
    return org


def asset_by_key(asset_key: str) -> PublishedAsset:
    asset = db.session.scalar(select(PublishedAsset).where(PublishedAsset.asset_key == asset_key))
    if asset is None:
        raise click.ClickException(f"no asset with key {asset_key!r}")
    return asset


def asset_actor(asset: PublishedAsset, email: str | None) -> User:
    """The user the command acts as: --user, else the organization's first admin."""
    stmt = select(User).where(User.org_id == asset.org_id, User.is_active.is_(True))
    if email:
        stmt = stmt.where(func.lower(User.email) == email.lower())
    else:
        stmt = stmt.where(User.role == "admin").order_by(User.id)
    user = db.session.scalars(stmt).first()
    if user is None:
        raise click.ClickException(f"no {'user ' + email if email else 'admin'} in the asset's organization")
    return user


def call_service(fn):
    try:
        return fn()
    except APIError as err:
        raise click.ClickException(err.message) from None
