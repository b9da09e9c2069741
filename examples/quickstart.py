"""Apiary end to end with the Python SDK: upload a CSV, train a churn model, serve it with a lookup, call both.

Run against a server (`make run` serves one on http://127.0.0.1:5000):

    APIARY_URL=http://127.0.0.1:5000 APIARY_USERNAME=admin APIARY_PASSWORD=... python examples/quickstart.py

or with a personal access token: APIARY_TOKEN=... (flags --url, --token, --username, --password, --project override).
Running it again reuses the project and the service and replaces the data, so it is safe to repeat.
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

from apiary import Client, ConflictError, NotFoundError, lookup_endpoint, model_endpoint


def write_customers(path: Path, n: int = 200) -> Path:
    """A small customer table: short tenure on the basic plan tends to churn."""
    rng = random.Random(42)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["customer_key", "name", "tenure", "plan", "monthly", "churned"])
        for key in range(1, n + 1):
            tenure, plan = rng.randint(1, 60), rng.choice(["basic", "premium"])
            churned = int((tenure < 18 and plan == "basic") or rng.random() < 0.03)
            writer.writerow([key, f"Customer {key}", tenure, plan, round(rng.uniform(10, 90), 2), churned])
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("APIARY_URL", "http://127.0.0.1:5000"))
    parser.add_argument("--token", default=os.environ.get("APIARY_TOKEN"))
    parser.add_argument("--username", default=os.environ.get("APIARY_USERNAME"))
    parser.add_argument("--password", default=os.environ.get("APIARY_PASSWORD"))
    parser.add_argument("--project", default=os.environ.get("APIARY_PROJECT", "sales"), help="project slug")
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
        try:
            project = client.get_project(args.project)
        except NotFoundError:
            project = client.create_project(args.project.replace("-", " ").title(), args.project)
        show("project", {"id": project.id, "slug": project.slug})

        # 0. data and a model: upload a CSV we write ourselves, train a churn classifier on it
        with tempfile.TemporaryDirectory() as tmp:
            csv_path = write_customers(Path(tmp) / "dim_customer.csv")
            dataset = project.upload_file("marts.dim_customer", csv_path, replace=True)
        show("dataset", {"name": dataset.name, "rows": dataset.row_count, "columns": dataset.column_names})
        trained = project.train_model(
            "churn",
            input_table="marts.dim_customer",
            target_column="churned",
            task_type="classification",
            algorithm="logistic_regression",
            features=["tenure", "plan", "monthly"],
        )
        show("model", {"model_id": trained.model_id, "metrics": trained.metrics})

        # 1. create (draft) with two endpoints
        endpoints = [
            lookup_endpoint("customer", "marts.dim_customer", "customer_key"),
            model_endpoint("churn_risk", model_id=trained.model_id),
        ]
        try:
            svc = project.create_api_service("sales-serving", "Sales serving", endpoints=endpoints)
        except ConflictError:
            svc = next(s for s in project.list_api_services() if s.asset_key == "sales-serving")
            svc.set_endpoints(endpoints)

        # 2. publish: now the endpoints are callable
        svc.publish()
        show("service", {"id": svc.id, "asset_key": svc.asset_key, "version": svc.published_version})

        # 3. mint a key: allowed_endpoints=None reaches every endpoint
        key = svc.create_key(name="app")
        show("key prefix", key.prefix)

        # 4. call the model endpoint (the dk_… secret is on key.key, shown once)
        out = svc.call("churn_risk", {"features": {"tenure": 8, "plan": "basic", "monthly": 30}}, api_key=key.key)
        show("predictions", out["predictions"])

        # lookup endpoints are GET + query params
        row = svc.call("customer", api_key=key.key, method="GET", params={"id": 42})
        show("customer 42", row["rows"])

        # dry-run an endpoint without any key
        dry = svc.test("churn_risk", {"features": {"tenure": 8, "plan": "basic", "monthly": 30}})
        show("dry run", dry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
