"""A deterministic generator of a realistic customer-churn table, with drift knobs.

It stands in for a team's own data so the whole lifecycle runs with no download.
Twelve numeric and four categorical features, an event timestamp and a binary
target (``churned``). Churn depends on price, engagement, support experience and
contract terms, with mild natural seasonality.

Two knobs make the later periods differ from the training period:

* ``covariate_shift`` moves the feature distributions (higher prices, more support
  calls, more month-to-month contracts, less engagement): P(x) changes.
* ``concept_drift`` changes how features relate to churn in winter months, the
  "warm coats in winter" kind: customers become far more price-sensitive and
  contract terms matter less, so P(y | x) changes while P(x) may not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlcore.data.spec import DatasetSpec
from mlcore.example_dataset import EXAMPLE_ID_COLUMN, EXAMPLE_TARGET, EXAMPLE_TIMESTAMP

NUMERIC_FEATURES = (
    "age",
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "num_support_calls",
    "avg_session_minutes",
    "data_usage_gb",
    "num_devices",
    "days_since_last_login",
    "payment_delay_days",
    "discount_pct",
    "satisfaction_score",
)
CATEGORICAL_FEATURES = ("contract_type", "payment_method", "region", "plan_tier")
TARGET = EXAMPLE_TARGET
TIMESTAMP = EXAMPLE_TIMESTAMP
ID_COLUMN = EXAMPLE_ID_COLUMN

CHURN_SPEC = DatasetSpec(
    target=TARGET,
    numeric=NUMERIC_FEATURES,
    categorical=CATEGORICAL_FEATURES,
    timestamp=TIMESTAMP,
    task="classification",
    id_columns=(ID_COLUMN,),
)

_WINTER_MONTHS = (11, 12, 1, 2)


def make_churn(
    n_rows: int = 60_000,
    *,
    start: str = "2025-01-01",
    end: str = "2025-12-31",
    seed: int = 0,
    covariate_shift: float = 0.0,
    concept_drift: float = 0.0,
    missing_rate: float = 0.02,
) -> pd.DataFrame:
    """Generate ``n_rows`` customer records with event times uniform in [start, end].

    The same arguments always give the same table. ``covariate_shift`` and
    ``concept_drift`` are strengths (0 = none, 1 = strong); ``missing_rate`` is
    the share of missing values in ``satisfaction_score`` and
    ``days_since_last_login`` (surveys and login records are incomplete in real data).

    Examples
    --------
    >>> frame = make_churn(1_000, seed=1)
    >>> frame.shape
    (1000, 19)
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}")
    if not 0.0 <= missing_rate < 1.0:
        raise ValueError(f"missing_rate must be in [0, 1), got {missing_rate}")
    rng = np.random.default_rng(seed)
    s = float(covariate_shift)

    t0, t1 = pd.Timestamp(start).value, pd.Timestamp(end).value
    if t1 <= t0:
        raise ValueError(f"end ({end}) must be after start ({start})")
    event_time = pd.to_datetime(np.sort(rng.integers(t0, t1, size=n_rows)))
    month = event_time.month.to_numpy()
    winter = np.isin(month, _WINTER_MONTHS).astype(float)

    contract = _choice(
        rng,
        ["month-to-month", "one-year", "two-year"],
        [0.45 + 0.2 * min(s, 1.5), 0.30 - 0.1 * min(s, 1.5), 0.25 - 0.1 * min(s, 1.5)],
        n_rows,
    )
    payment = _choice(
        rng,
        ["card", "bank_transfer", "electronic_check", "mailed_check"],
        [0.35, 0.25, 0.28 + 0.1 * min(s, 1.5), 0.12 - 0.05 * min(s, 1.5)],
        n_rows,
    )
    region = _choice(rng, ["north", "south", "east", "west"], [0.3, 0.25, 0.25, 0.2], n_rows)
    plan = _choice(rng, ["basic", "standard", "premium"], [0.4, 0.4, 0.2], n_rows)

    age = np.clip(rng.normal(44, 14, n_rows), 18, 90).round()
    tenure = np.clip(
        rng.gamma(2.0, 14.0, n_rows) * np.where(contract == "two-year", 1.6, 1.0), 1, 120
    ).round()
    plan_price = np.select([plan == "basic", plan == "standard"], [35.0, 60.0], 95.0)
    monthly = np.clip(plan_price + rng.normal(0, 9, n_rows) + 9.0 * s, 10, None).round(2)
    discount = np.clip(rng.exponential(4, n_rows) * (contract != "month-to-month"), 0, 40).round(1)
    total = (monthly * tenure * (1 - discount / 100) * rng.uniform(0.95, 1.05, n_rows)).round(2)
    support_calls = rng.poisson(1.2 * (1 + 0.6 * s) * (1 + 0.25 * winter))
    session = np.clip(rng.lognormal(3.3 - 0.25 * s, 0.5, n_rows), 1, None).round(1)
    usage = np.clip(
        rng.gamma(3.0, 4.0, n_rows) * (1 + 0.3 * winter) * np.where(plan == "premium", 1.8, 1.0),
        0,
        None,
    ).round(2)
    devices = 1 + rng.poisson(1.1 + 0.6 * (plan == "premium"))
    last_login = np.clip(rng.exponential(6 * (1 + 0.4 * s), n_rows), 0, 365).round()
    delay = np.clip(rng.exponential(2 + 3 * (payment == "electronic_check"), n_rows), 0, 90).round()
    satisfaction = np.clip(rng.normal(7.2 - 0.35 * support_calls, 1.4), 0, 10).round(1)

    # Churn logit: each term is scaled to roughly unit spread so no single feature dominates.
    price_sensitivity = 0.7 * (1 + 2.5 * concept_drift * winter)
    contract_effect = np.select(
        [contract == "month-to-month", contract == "one-year"], [0.9, -0.2], -1.0
    )
    logit = (
        -1.75
        + price_sensitivity * (monthly - 60) / 25
        + contract_effect * (1 - 0.8 * concept_drift * winter)
        - 0.55 * (tenure - 30) / 25
        + 0.35 * support_calls
        - 0.30 * (satisfaction - 7) / 1.5
        - 0.25 * (session - 27) / 15
        + 0.30 * (last_login - 6) / 8
        + 0.20 * (payment == "electronic_check")
        + 0.10 * (delay - 3) / 4
        - 0.25 * discount / 10
        + 0.15 * winter
    )
    churned = (rng.uniform(size=n_rows) < 1 / (1 + np.exp(-logit))).astype(int)

    frame = pd.DataFrame(
        {
            ID_COLUMN: [f"C{seed:03d}-{i:07d}" for i in range(n_rows)],
            TIMESTAMP: event_time,
            "age": age,
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "total_charges": total,
            "num_support_calls": support_calls.astype(float),
            "avg_session_minutes": session,
            "data_usage_gb": usage,
            "num_devices": devices.astype(float),
            "days_since_last_login": last_login,
            "payment_delay_days": delay,
            "discount_pct": discount,
            "satisfaction_score": satisfaction,
            "contract_type": contract,
            "payment_method": payment,
            "region": region,
            "plan_tier": plan,
            TARGET: churned,
        }
    )
    for column in ("satisfaction_score", "days_since_last_login"):
        frame.loc[rng.uniform(size=n_rows) < missing_rate, column] = np.nan
    return frame


def _choice(
    rng: np.random.Generator, values: list[str], weights: list[float], n: int
) -> np.ndarray:
    p = np.clip(np.asarray(weights, dtype=float), 0.01, None)
    return rng.choice(np.asarray(values, dtype=object), size=n, p=p / p.sum())
