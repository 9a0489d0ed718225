"""Retention-campaign simulation: whom to contact, within a budget, to save the most expected revenue.

Contacting customer i costs `cost`; a contacted churner stays with probability `effectiveness`. Its
expected saving is p_i · value_i · effectiveness − cost. Customers are taken in decreasing order of
saving, only where it is positive, while the budget lasts. Every contact costs the same, so the best set
of n contacts is the n largest savings and this greedy choice is optimal (a knapsack with equal weights);
with per-customer costs it would only be an approximation. Ties keep row order, so the choice is
deterministic. p must be calibrated probabilities: the money figures are expectations under them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spark_ml.churn import revenue

# Benchmark defaults, stated rather than measured (no campaign data): contacting a customer (a call or
# an offer) costs 25 in the data's currency, one contacted churner in five is kept (effectiveness 0.20),
# and the budget covers 500 contacts.
COST_PER_CONTACT = 25.0
EFFECTIVENESS = 0.20
BUDGET = 12_500.0


@dataclass(frozen=True)
class Campaign:
    contacted: np.ndarray       # row positions, in the order chosen (highest expected saving first)
    baseline_loss: float        # Σ p · value over everyone: expected revenue lost without a campaign
    churners_prevented: float   # Σ p · effectiveness over the contacted (expected)
    revenue_saved: float        # Σ p · value · effectiveness over the contacted (expected, before cost)
    cost: float                 # contacts × cost per contact

    @property
    def contacts(self) -> int:
        return len(self.contacted)

    @property
    def net(self) -> float:
        """Revenue saved net of the campaign's cost."""
        return self.revenue_saved - self.cost

    @property
    def roi(self) -> float | None:
        """Net / cost; None when nothing was spent."""
        return self.net / self.cost if self.cost > 0 else None

    def as_dict(self) -> dict:
        return {"baseline_loss": self.baseline_loss, "contacts": self.contacts,
                "churners_prevented": self.churners_prevented, "revenue_saved": self.revenue_saved,
                "cost": self.cost, "net": self.net, "roi": self.roi}


def simulate(p, value, budget: float = BUDGET, cost: float = COST_PER_CONTACT,
             effectiveness: float = EFFECTIVENESS) -> Campaign:
    """Choose whom to contact and report the campaign's expected figures."""
    if budget < 0 or cost < 0 or not 0 <= effectiveness <= 1:
        raise ValueError("budget and cost must be >= 0 and effectiveness in [0, 1]")
    loss = revenue.at_risk(p, value)
    saving = loss * effectiveness - cost
    order = np.argsort(-saving, kind="stable")  # stable: ties keep row order
    worth_it = order[saving[order] > 0]
    affordable = len(worth_it) if cost == 0 else math.floor(budget / cost + 1e-9)
    chosen = worth_it[:affordable]
    p = np.asarray(p, dtype=float)
    return Campaign(contacted=chosen, baseline_loss=float(loss.sum()),
                    churners_prevented=float(p[chosen].sum() * effectiveness),
                    revenue_saved=float(loss[chosen].sum() * effectiveness), cost=float(len(chosen) * cost))
