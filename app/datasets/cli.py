"""`flask datasets upload|list|indexes`: load CSV files into a project's datasets from the command line, show a
dataset's indexes; `grant-schema`, `revoke-schema`, `schema-grants`: which warehouse schemas an organization may
register tables from."""

from __future__ import annotations

import json
import os
import sys

import click
from flask import Flask, current_app

from app.cli_base import CliGroup, echo_json, json_option
from app.cli_targets import org_by_name
from app.datasets.grants import grant_schema, revoke_schema, schema_grants
from app.datasets.indexing import dataset_indexes
from app.datasets.schemas import DatasetListSchema
from app.datasets.service import (
    dataset_view,
    get_dataset,
    list_datasets,
    upload_dataset,
)
from app.db import Organization
from app.errors import APIError
from app.extensions import db, warehouse
from app.projects.service import project_by_ref

datasets_cli = CliGroup(
    "datasets", help="Datasets of a project; the warehouse schemas an organization may register from."
)


def _project(ref: str, org_name: str | None):
    try:
        return project_by_ref(ref, org_name)
    except APIError as err:
        raise click.ClickException(err.message) from None


class ProgressReader:
    """A binary file that advances a click progress bar as it is read."""

    def __init__(self, raw, bar):
        self.raw, self.bar = raw, bar

    def read(self, size=-1):
        chunk = self.raw.read(size)
        self.bar.update(len(chunk))
        return chunk

    def __getattr__(self, name):
        return getattr(self.raw, name)


@datasets_cli.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--name",
    help="Dataset name, schema.table or table (default: the file's name, in `uploads`); "
    "unlike API uploads, any schema.",
)
@click.option("--project", "project_ref", required=True, help="Project id or slug.")
@click.option("--org", "org_name", help="Organization name (needed when several have the slug).")
@click.option("--replace", is_flag=True, help="Overwrite the dataset when it exists.")
@click.option("--friendly-name", help="Display name.")
@click.option("--description", help="What the data is.")
def upload_command(file, name, project_ref, org_name, replace, friendly_name, description):
    """Load a CSV FILE into a project's dataset, inferring column types."""
    project = _project(project_ref, org_name)
    size = os.path.getsize(file)
    try:
        with (
            open(file, "rb") as raw,
            click.progressbar(length=size, label=f"reading {os.path.basename(file)}", file=sys.stderr) as bar,
        ):
            dataset = upload_dataset(
                warehouse.get(),
                project,
                ProgressReader(raw, bar),
                file,
                name=name,
                friendly_name=friendly_name,
                description=description,
                replace=replace,
                schema_prefix=current_app.config["WAREHOUSE_SCHEMA_PREFIX"],
                max_bytes=current_app.config["UPLOAD_MAX_BYTES"],
                any_schema=True,  # the operator: API uploads go only to UPLOAD_SCHEMAS and granted schemas
            )
    except APIError as err:
        raise click.ClickException(err.message) from None
    columns = ", ".join(f"{c['name']} {c['type']}" for c in dataset.columns)
    click.echo(f"loaded {dataset.row_count} rows into {dataset.name} (project {project.slug}): {columns}")


@datasets_cli.command("list")
@click.option("--project", "project_ref", required=True, help="Project id or slug.")
@click.option("--org", "org_name", help="Organization name (needed when several have the slug).")
@json_option
def list_command(project_ref, org_name, as_json):
    """List a project's datasets: name, source, rows, columns.

    \b
    Example:
      flask datasets list --project sales --json
    """
    if as_json:
        views = [dataset_view(d) for d in list_datasets(_project(project_ref, org_name))]
        echo_json(DatasetListSchema().dump({"items": views}))
        return
    for dataset in list_datasets(_project(project_ref, org_name)):
        rows = "?" if dataset.row_count is None else dataset.row_count
        click.echo(f"{dataset.name}\t{dataset.source}\t{rows} rows\t{len(dataset.columns)} columns")


@datasets_cli.command("indexes")
@click.argument("name")
@click.option("--project", "project_ref", required=True, help="Project id or slug.")
@click.option("--org", "org_name", help="Organization name (needed when several have the slug).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: [{name, columns, origin, unique, status, error}].")
def indexes_command(name, project_ref, org_name, as_json):
    """Show the indexes of dataset NAME's warehouse table: those Apiary builds when a service with lookups or eq
    filters on it is published (origin apiary), and the others (existing)."""
    try:
        indexes = dataset_indexes(get_dataset(_project(project_ref, org_name), name))
    except APIError as err:
        raise click.ClickException(err.message) from None
    if as_json:
        click.echo(json.dumps(indexes, indent=2))
        return
    if not indexes:
        click.echo(f"{name} has no indexes")
    for ix in indexes:
        line = f"{ix['name']}\t{', '.join(ix['columns'])}\t{ix['origin']}\t{ix['status']}"
        click.echo(line + (f"\t{ix['error']}" if ix["error"] else ""))


def _org_id(name: str) -> int:
    return org_by_name(name, create=False).id


@datasets_cli.command("grant-schema")
@click.argument("org_name")
@click.argument("schema")
def grant_schema_command(org_name, schema):
    """Let organization ORG_NAME register the existing tables of warehouse SCHEMA, and upload into it."""
    try:
        granted = grant_schema(_org_id(org_name), schema)
    except APIError as err:
        raise click.ClickException(err.message) from None
    click.echo(f"{org_name} may register tables of {schema}" + ("" if granted else " (already could)"))


@datasets_cli.command("revoke-schema")
@click.argument("org_name")
@click.argument("schema")
def revoke_schema_command(org_name, schema):
    """Take back a grant; datasets the organization already registered stay."""
    if not revoke_schema(_org_id(org_name), schema):
        raise click.ClickException(f"{org_name} has no grant of schema {schema}")
    click.echo(f"{org_name} may no longer register tables of {schema}")


@datasets_cli.command("schema-grants")
@click.option("--org", "org_name", help="Only this organization.")
def schema_grants_command(org_name):
    """List the schema grants: organization, schema."""
    for grant in schema_grants(_org_id(org_name) if org_name else None):
        click.echo(f"{db.session.get(Organization, grant.org_id).name}\t{grant.schema_name}")


def register_datasets_cli(app: Flask) -> None:
    app.cli.add_command(datasets_cli)
