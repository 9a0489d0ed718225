"""Money at risk: expected customer value and expected revenue at risk = p(churn) × expected value.

Expected customer value is the revenue a customer brings over the next `horizon_months` if they stay.
From what each data set has:
- Telco (a subscription): monthly charges × horizon (`from_monthly`).
- the platform (orders): average order value × monthly order rate × horizon, the rate taken from the
  last 90 days' completed orders (`from_orders`).
The horizon caps the value instead of guessing a lifetime: a 12-month value is what a retention budget
for the year can be weighed against, and needs no survival model.
"""
from __future__ import annotations

import numpy as np

HORIZON_MONTHS = 12
DAYS_PER_MONTH = 365.25 / 12


def from_monthly(monthly_revenue, horizon_months: float = HORIZON_MONTHS) -> np.ndarray:
    """Expected value of a subscriber: monthly revenue × horizon (months)."""
    return np.asarray(monthly_revenue, dtype=float) * horizon_months


def from_orders(avg_order_value, orders_90d, horizon_months: float = HORIZON_MONTHS) -> np.ndarray:
    """Expected value of a buyer: average order value × orders per month (from the last 90 days) × horizon.
    No completed order (average order value missing) is worth 0."""
    aov = np.nan_to_num(np.asarray(avg_order_value, dtype=float), nan=0.0)
    per_month = np.asarray(orders_90d, dtype=float) / (90 / DAYS_PER_MONTH)
    return aov * per_month * horizon_months


def at_risk(p, value) -> np.ndarray:
    """Expected revenue at risk per customer: p(churn) × expected value (p must be calibrated)."""
    p, value = np.asarray(p, dtype=float), np.asarray(value, dtype=float)
    if p.shape != value.shape or np.any((p < 0) | (p > 1)) or np.any(value < 0):
        raise ValueError("p must be probabilities and value non-negative, of one shape")
    return p * value
