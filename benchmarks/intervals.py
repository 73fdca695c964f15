"""One rule for every benchmark table's interval over seeds: mean ± Student-t 95% half-width."""

from __future__ import annotations

import math
import statistics

__all__ = ["T_95", "mean_ci", "t95"]

# Two-sided 95% quantiles of Student's t, t(0.975; df), by degrees of freedom.
T_95 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
    9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120,
    17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064,
    25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042,
}  # fmt: skip


def t95(df: int) -> float:
    """The two-sided 95% Student-t quantile for ``df`` degrees of freedom (1 to 30)."""
    if df not in T_95:
        raise ValueError(f"no 95% t quantile tabled for {df} degrees of freedom (1 to 30)")
    return T_95[df]


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and 95% CI half-width over seeds (Student t); the half-width is NaN below 2 values."""
    if len(values) < 2:
        return (values[0] if values else math.nan), math.nan
    sd = statistics.stdev(values)
    return statistics.fmean(values), t95(len(values) - 1) * sd / math.sqrt(len(values))
