"""Apiary end to end with the Python SDK: upload a CSV, train a churn model, serve four endpoint kinds, call them
(the model also by customer id alone: enrichment, explanations, a caller context).

Run against the server `make run` starts (http://127.0.0.1:8000; the admin is admin@example.com, its password is
printed by make run and kept in var/admin_password):

    APIARY_URL=http://127.0.0.1:8000 APIARY_USERNAME=admin@example.com \\
        APIARY_PASSWORD="$(cat var/admin_password)" python examples/quickstart.py

or with a personal access token: APIARY_TOKEN=... (flags --url, --token, --username, --password, --project override).

Everything it makes has its own names, so it never touches the demo `make run` builds (project `sales`, table
`marts.dim_customer`, service `sales-serving`): the project `quickstart`, the table `uploads.quickstart_customers` in it, the
model `quickstart_churn` and the service `quickstart-<project id>` (service keys are unique across the whole
installation, so the project's id keeps two organizations apart). Running it again reuses the project and the
service, replaces the table's rows, trains a new model version and publishes a new service version.
The `function` endpoint needs an org admin (as any function endpoint does); for other users it is left out.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
from pathlib import Path

from apiary import (
    Client,
    ConflictError,
    NotFoundError,
    enrichment,
    function_endpoint,
    lookup_endpoint,
    model_endpoint,
    predict_body,
    shapley,
    sql_endpoint,
)

TABLE = "uploads.quickstart_customers"
MODEL = "quickstart_churn"
SEGMENT_HANDLER = """def handler(payload):
    tenure = int(payload.get("tenure", 0))
    return {"segment": "new" if tenure < 12 else "loyal", "tenure": tenure}
"""


def write_customers(path: Path, n: int = 200) -> Path:
    """A small customer table: short tenure on the basic plan tends to churn."""
    rng = random.Random(42)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["customer_key", "region", "tenure", "plan", "monthly", "churned"])
        for key in range(1, n + 1):
            tenure, plan = rng.randint(1, 60), rng.choice(["basic", "premium"])
            churned = int((tenure < 18 and plan == "basic") or rng.random() < 0.03)
            region = rng.choice(["EU", "US", "APAC"])
            writer.writerow([key, region, tenure, plan, round(rng.uniform(10, 90), 2), churned])
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("APIARY_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("APIARY_TOKEN"))
    parser.add_argument("--username", default=os.environ.get("APIARY_USERNAME"), help="user name or e-mail")
    parser.add_argument("--password", default=os.environ.get("APIARY_PASSWORD"))
    parser.add_argument("--project", default=os.environ.get("APIARY_PROJECT", "quickstart"), help="project slug")
    args = parser.parse_args(argv)
    if not args.token and not (args.username and args.password):
        parser.error("set APIARY_TOKEN, or APIARY_USERNAME and APIARY_PASSWORD (or pass the flags)")
    return args


def show(label: str, value: object) -> None:
    print(f"{label}: {json.dumps(value, default=str)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.token:
        client = Client(base_url=args.url, token=args.token)
    else:
        client = Client(base_url=args.url, username=args.username, password=args.password)

    with client:
        is_admin = client.me().get("role") == "admin"
        try:
            project = client.get_project(args.project)
        except NotFoundError:
            project = client.create_project(args.project.replace("-", " ").title(), args.project)
        show("project", {"id": project.id, "slug": project.slug})

        # 0. data and a model: upload a CSV we write ourselves, train a churn classifier on it
        with tempfile.TemporaryDirectory() as tmp:
            csv_path = write_customers(Path(tmp) / "customers.csv")
            dataset = project.upload_file(TABLE, csv_path, replace=True)
        show("dataset", {"name": dataset.name, "rows": dataset.row_count, "columns": dataset.column_names})
        trained = project.train_model(
            MODEL,
            input_table=TABLE,
            target_column="churned",
            task_type="classification",
            algorithm="logistic_regression",
            features=["tenure", "plan", "monthly"],
        )
        show("model", {"model_id": trained.model_id, "metrics": trained.metrics})

        # 1. a service (a draft) with the four endpoint kinds
        schema, table = TABLE.split(".")
        endpoints = [
            lookup_endpoint("customer", TABLE, "customer_key"),
            model_endpoint("churn_risk", model_id=trained.model_id),
            # the same model scored from a customer id alone: the features are looked up in the table (enrichment),
            # an unknown id is answered {"ignored": true} in its place, and each row is explained (top 2 features)
            model_endpoint(
                "churn_by_id",
                model_id=trained.model_id,
                enrichments=[
                    enrichment(
                        TABLE,
                        on={"customer_id": "customer_key"},
                        columns={"tenure": "tenure", "plan": "plan", "monthly": "monthly"},
                        not_found="ignore",
                    )
                ],
                return_enriched=True,
                explanations=shapley(2),
            ),
            sql_endpoint(
                "top_tenure",
                {
                    "source": {"schema": schema, "table": table},
                    "columns": ["customer_key", "region", "plan", "tenure"],
                    "filters": [{"column": "region", "op": "eq", "param": "region"}],
                    "order_by": [{"column": "tenure", "dir": "desc"}],
                    "pagination": {"default_limit": 10, "max_limit": 100},
                },
            ),
        ]
        if is_admin:  # only org admins may create or change a function endpoint
            endpoints.append(function_endpoint("segment", SEGMENT_HANDLER))
        asset_key = f"quickstart-{project.id}"
        try:
            svc = project.create_api_service(asset_key, "Quickstart", endpoints=endpoints)
        except ConflictError:  # made by an earlier run: edit its draft
            svc = next((s for s in project.list_api_services() if s.asset_key == asset_key), None)
            if svc is None:
                print(f"the service key {asset_key!r} is taken outside project {project.slug!r}", file=sys.stderr)
                return 1
            svc.set_endpoints(endpoints)

        # 2. publish: now the endpoints are callable
        svc.publish()
        show(
            "service",
            {
                "id": svc.id,
                "asset_key": svc.asset_key,
                "version": svc.published_version,
                "endpoints": [e["id"] for e in svc.endpoints],
            },
        )

        # 3. mint a key: allowed_endpoints=None reaches every endpoint
        key = svc.create_key(name="quickstart")
        show("key prefix", key.prefix)

        # 4. call each endpoint (the dk_… secret is on key.key, shown once)
        out = svc.call("churn_risk", {"features": {"tenure": 8, "plan": "basic", "monthly": 30}}, api_key=key.key)
        show("predictions", out["predictions"])

        # a batch by customer id: looked-up features (`enriched`), an ignored row, explanations per row where
        # base + contributions + others = the churn probability; the `context` is never scored, only audited
        by_id = predict_body(rows=[{"customer_id": 42}, {"customer_id": 99999}], context={"source": "quickstart"})
        out = svc.call("churn_by_id", by_id, api_key=key.key)
        show("by customer id", {k: out[k] for k in ("predictions", "probabilities", "enriched", "explanations")})

        # lookup and sql endpoints are GET + query params
        row = svc.call("customer", api_key=key.key, method="GET", params={"id": 42})
        show("customer 42", row["rows"])
        top = svc.call("top_tenure", api_key=key.key, method="GET", params={"region": "EU", "limit": 3})
        show("top tenure EU", top["rows"])

        # function endpoints take any JSON body
        if is_admin:
            show("segment", svc.call("segment", {"tenure": 5}, api_key=key.key)["result"])

        # dry-run an endpoint's draft with your login, no key
        dry = svc.test("churn_risk", {"features": {"tenure": 8, "plan": "basic", "monthly": 30}})
        show("dry run", dry)
        show("dry run with context", svc.test("churn_by_id", by_id)["context"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
