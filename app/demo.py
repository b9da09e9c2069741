"""`flask demo`: the seed's end-to-end example as data (a dataset, a trained model, a published service, a key)."""

from __future__ import annotations

import io
import random

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from app.cli_base import OneLineCommand
from app.datasets.service import upload_dataset
from app.db import Organization, Project, PublishedAsset
from app.errors import APIError
from app.extensions import db, warehouse
from app.keys.service import mint_api_key
from app.projects.service import create_project
from app.publishing.service import create_asset, publish_asset
from app.registry.cli import org_admin, train

SERVICE_KEY = "sales-serving"
SCORE_HANDLER = """def handler(payload):
    tenure = payload.get("tenure", 0)
    return {"segment": "new" if tenure < 12 else "loyal", "tenure": tenure}
"""


def customers_csv(rows: int = 500, seed: int = 42) -> bytes:
    """A small customer table where short-tenure basic-plan customers churn."""
    rng = random.Random(seed)
    out = io.StringIO()
    out.write("customer_key,name,email,phone,region,plan,tenure,monthly_fee,churned\n")
    for i in range(1, rows + 1):
        tenure, plan = rng.randint(1, 72), rng.choice(["basic", "standard", "premium"])
        churned = int((tenure < 18 and plan == "basic") or rng.random() < 0.07)
        out.write(
            f"{i},Customer {i},customer{i}@example.com,+1-555-{rng.randint(1000, 9999)},"
            f"{rng.choice(['EU', 'US', 'APAC'])},{plan},{tenure},{rng.uniform(9, 99):.2f},{churned}\n"
        )
    return out.getvalue().encode()


def build_demo(org_name: str) -> tuple[dict, str]:
    """Create everything of the example in `org_name`; returns (service summary, the key's secret)."""
    org = db.session.scalar(select(Organization).where(Organization.name == org_name))
    if org is None:
        raise click.ClickException(f"no organization named {org_name!r}; create its admin first (flask users create)")
    admin = org_admin(org.id)
    project = db.session.scalar(select(Project).where(Project.org_id == org.id, Project.slug == "sales"))
    project = project or create_project(org.id, "Sales", "sales", "The API Services example", created_by=admin.id)
    click.echo("loading marts.dim_customer ...")
    upload_dataset(
        warehouse.get(),
        project,
        io.BytesIO(customers_csv()),
        "dim_customer.csv",
        name="marts.dim_customer",
        friendly_name="Customers",
        replace=True,
        schema_prefix=current_app.config["WAREHOUSE_SCHEMA_PREFIX"],
        created_by=admin.id,
    )
    outcome = train(
        project,
        "marts.dim_customer",
        "churned",
        "classification",
        "random_forest",
        "churn_risk",
        ["tenure", "plan", "monthly_fee", "region"],
    )
    if outcome["status"] != "success":
        raise click.ClickException(f"training failed: {outcome.get('error')}")
    endpoints = [
        {"id": "customer", "kind": "lookup", "dataset": "marts.dim_customer", "key_column": "customer_key"},
        {"id": "churn_risk", "kind": "model", "model_id": outcome["model_id"]},
        {
            "id": "top_tenure",
            "kind": "sql",
            "query": {
                "source": {"schema": "marts", "table": "dim_customer"},
                "columns": ["customer_key", "region", "plan", "tenure"],
                "filters": [{"column": "region", "op": "eq", "param": "region"}],
                "order_by": [{"column": "tenure", "dir": "desc"}],
                "pagination": {"default_limit": 10, "max_limit": 100},
            },
        },
        {"id": "segment", "kind": "function", "handler": SCORE_HANDLER},
    ]
    asset = create_asset(
        admin,
        project,
        {
            "asset_type": "api_service",
            "asset_key": SERVICE_KEY,
            "title": "Sales serving",
            "description": "The seed example",
            "config": {"endpoints": endpoints},
        },
    )
    version = publish_asset(admin, asset, "demo")
    _key, secret = mint_api_key(
        admin,
        asset,
        {
            "name": "demo",
            "rate_limit": 600,
            "expires_days": 30,
            "masking_level": "masked",
            "sensitivity_max": "high",
            "allowed_columns": [],
            "allowed_endpoints": None,
            "row_scope": None,
        },
    )
    return {"asset_id": asset.id, "version": version, "model_id": outcome["model_id"], "project_id": project.id}, secret


@click.command("demo", cls=OneLineCommand)
@with_appcontext
@click.option("--org", "org_name", default="Apiary", show_default=True, help="Organization to build the example in.")
@click.option("--if-missing", is_flag=True, help="Do nothing when the example service already exists.")
@click.option("--base-url", default="http://127.0.0.1:8000", show_default=True, help="Used in the printed examples.")
def demo_command(org_name, if_missing, base_url):
    """Build the API Services example: dataset, trained churn model, published service, and a key.

    \b
    Example:
      flask demo --org Acme --if-missing
    """
    if db.session.scalar(select(PublishedAsset.id).where(PublishedAsset.asset_key == SERVICE_KEY)):
        if if_missing:
            click.echo(f"the demo service {SERVICE_KEY!r} already exists")
            return
        raise click.ClickException(f"an asset {SERVICE_KEY!r} already exists")
    try:
        summary, secret = build_demo(org_name)
    except APIError as err:
        raise click.ClickException(err.message) from None
    url = f"{base_url}/api/service/{SERVICE_KEY}"
    click.echo(f"""
Demo ready: service {SERVICE_KEY} (asset {summary["asset_id"]}, version {summary["version"]}), model {summary["model_id"]}.
API key (shown once): {secret}

  curl -s "{url}/customer?id=42" -H "X-API-Key: {secret}"
  curl -s -X POST "{url}/churn_risk" -H "X-API-Key: {secret}" -H 'Content-Type: application/json' \\
       -d '{{"features": {{"tenure": 8, "plan": "basic", "monthly_fee": 20.0, "region": "EU"}}}}'
  curl -s "{url}/top_tenure?region=EU&limit=3" -H "X-API-Key: {secret}"
  curl -s -X POST "{url}/segment" -H "X-API-Key: {secret}" -H 'Content-Type: application/json' -d '{{"tenure": 5}}'
""")


def register_demo_cli(app: Flask) -> None:
    app.cli.add_command(demo_command)
