"""`flask datasets upload|list`: load CSV files into a project's datasets from the command line."""

from __future__ import annotations

import os
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.errors import APIError

datasets_cli = AppGroup("datasets", help="Datasets of a project.")


def _project(ref: str, org_name: str | None):
    from app.projects.service import project_by_ref

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
@click.option("--name", help="Dataset name, schema.table or table (default: the file's name, in `uploads`).")
@click.option("--project", "project_ref", required=True, help="Project id or slug.")
@click.option("--org", "org_name", help="Organization name (needed when several have the slug).")
@click.option("--replace", is_flag=True, help="Overwrite the dataset when it exists.")
@click.option("--friendly-name", help="Display name.")
@click.option("--description", help="What the data is.")
def upload_command(file, name, project_ref, org_name, replace, friendly_name, description):
    """Load a CSV FILE into a project's dataset, inferring column types."""
    from app.datasets.service import upload_dataset
    from app.extensions import warehouse

    project = _project(project_ref, org_name)
    size = os.path.getsize(file)
    try:
        with open(file, "rb") as raw, click.progressbar(length=size, label=f"reading {os.path.basename(file)}",
                                                         file=sys.stderr) as bar:  # fmt: skip
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
            )
    except APIError as err:
        raise click.ClickException(err.message) from None
    columns = ", ".join(f"{c['name']} {c['type']}" for c in dataset.columns)
    click.echo(f"loaded {dataset.row_count} rows into {dataset.name} (project {project.slug}): {columns}")


@datasets_cli.command("list")
@click.option("--project", "project_ref", required=True, help="Project id or slug.")
@click.option("--org", "org_name", help="Organization name (needed when several have the slug).")
def list_command(project_ref, org_name):
    """List a project's datasets: name, source, rows, columns."""
    from app.datasets.service import list_datasets

    for dataset in list_datasets(_project(project_ref, org_name)):
        rows = "?" if dataset.row_count is None else dataset.row_count
        click.echo(f"{dataset.name}\t{dataset.source}\t{rows} rows\t{len(dataset.columns)} columns")


def register_datasets_cli(app: Flask) -> None:
    app.cli.add_command(datasets_cli)
