"""ML fixtures: small synthetic frames with numeric, categorical, boolean, id and free-text columns, some missing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.warehouse.engine import ColumnInfo

CUSTOMER_TYPES = {
    "customer_id": "integer",
    "tenure": "integer",
    "monthly": "float",
    "plan": "text",
    "autopay": "boolean",
    "comment": "text",
    "signup": "date",
    "churned": "boolean",
    "spend": "float",
    "segment": "text",
}


def customer_frame(n: int = 240, seed: int = 3) -> pd.DataFrame:
    """Short tenure on the basic plan churns; spend follows tenure and the fee; segment follows the plan."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 60, n).astype(float)
    monthly = rng.normal(50, 12, n).round(2)
    plan = rng.choice(["basic", "standard", "premium"], n)
    autopay = rng.choice([True, False], n)
    churned = (tenure < 15) | ((plan == "basic") & ~autopay)
    spend = tenure * monthly / 10 + rng.normal(0, 5, n)
    segment = np.where(plan == "premium", "gold", np.where(tenure > 30, "silver", "bronze"))
    df = pd.DataFrame(
        {
            "customer_id": np.arange(1000, 1000 + n),
            "tenure": tenure,
            "monthly": monthly,
            "plan": pd.Series(plan, dtype=object),
            "autopay": pd.Series(autopay, dtype=object),
            "comment": [f"customer said thing number {i}" for i in range(n)],
            "signup": [f"2021-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(n)],
            "churned": churned,
            "spend": spend,
            "segment": segment,
        }
    )
    # Missing values in features, as real tables have them; the pipeline imputes them.
    df.loc[df.index % 9 == 0, "tenure"] = np.nan
    df.loc[df.index % 13 == 0, "plan"] = None
    df.loc[df.index % 17 == 0, "autopay"] = None
    return df


@pytest.fixture()
def customers() -> pd.DataFrame:
    return customer_frame()


@pytest.fixture()
def customer_columns() -> list[ColumnInfo]:
    return [ColumnInfo(name, kind) for name, kind in CUSTOMER_TYPES.items()]
