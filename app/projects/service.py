"""Projects of an organization."""

from __future__ import annotations

from sqlalchemy import func, select

from app.db import Organization, Project, User
from app.db.columns import parse_id
from app.errors import conflict, not_found
from app.extensions import db


def create_project(
    org_id: int,
    name: str,
    slug: str,
    description: str = "",
    created_by: int | None = None,
    icon: str = "",
    color: str | None = None,
) -> Project:
    if db.session.scalar(select(Project).where(Project.org_id == org_id, Project.slug == slug)):
        raise conflict(f"a project with slug {slug!r} already exists", {"fields": {"slug": ["taken"]}})
    project = Project(
        org_id=org_id,
        name=name,
        slug=slug,
        description=description,
        created_by=created_by,
        icon=icon or "",
        color=color or None,
    )
    db.session.add(project)
    db.session.commit()
    return project


def list_projects(org_id: int) -> list[Project]:
    return list(db.session.scalars(select(Project).where(Project.org_id == org_id).order_by(Project.id)))


def find_project(user: User, id_or_slug: str) -> Project:
    """A project of the user's organization by id or slug; 404 for anything else."""
    stmt = select(Project).where(Project.org_id == user.org_id)
    if id_or_slug.isascii() and id_or_slug.isdigit():
        stmt = stmt.where(Project.id == parse_id(id_or_slug))
    else:
        stmt = stmt.where(Project.slug == id_or_slug)
    project = db.session.scalar(stmt)
    if project is None:
        raise not_found("project")
    return project


def project_by_ref(ref: str, org_name: str | None = None) -> Project:
    """For operators: a project by id or slug in any organization; slugs are unique per organization only, so
    `org_name` settles which one (404 when none matches, 409 when several do)."""
    stmt = select(Project)
    if org_name:
        org = db.session.scalar(select(Organization).where(func.lower(Organization.name) == org_name.lower()))
        if org is None:
            raise not_found(f"organization {org_name!r}")
        stmt = stmt.where(Project.org_id == org.id)
    digits = ref.isascii() and ref.isdigit()
    stmt = stmt.where(Project.id == parse_id(ref)) if digits else stmt.where(Project.slug == ref)
    found = list(db.session.scalars(stmt))
    if not found:
        raise not_found(f"project {ref!r}" + (f" in organization {org_name!r}" if org_name else ""))
    if len(found) > 1:
        raise conflict(f"several organizations have a project {ref!r}; name one with --org")
    return found[0]
