"""Training throughput as the benchmarks read it: steady rates and alternating pairs of runs.

Rates are averaged harmonically (every epoch does the same work, so this is total steps over total
time). Separate GPU runs of the same training differ by +/-12%, so two settings are compared by
alternating them and taking the ratio of the medians, which cancels the machine's drift;
`benchmarks/interleave.py` compares them inside one run instead.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field


def mean_rate(rates: list[float]) -> float:
    """Env steps/s over epochs of equal work (harmonic mean); NaN for none."""
    return len(rates) / sum(1.0 / r for r in rates) if rates else float("nan")


def steady_rate(rates: list[float], skip: float = 0.1) -> float:
    """mean_rate after the first `skip` fraction of epochs (at least one: warm-up, start-up)."""
    return mean_rate(rates[max(1, int(len(rates) * skip)) :])


@dataclass
class Alternated:
    """Rates of two settings measured in alternating runs (first, second, first, second, ...)."""

    first: list[float] = field(default_factory=list)
    second: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """Median of the second setting's rates over the median of the first's."""
        return statistics.median(self.second) / statistics.median(self.first)

    @property
    def pair_ratios(self) -> list[float]:
        return [b / a for a, b in zip(self.first, self.second, strict=True)]

    def summary(self, first: str, second: str) -> str:
        """'median <first> R1, <second> R2 env steps/s; ratio R2/R1', the settings named as given."""
        return (
            f"median {first} {statistics.median(self.first):,.0f}, {second} {statistics.median(self.second):,.0f} "
            f"env steps/s; ratio {self.ratio:.4f}"
        )


def alternate(
    pairs: int,
    first: Callable[[], float],
    second: Callable[[], float],
    report: Callable[[int, float, float], None] | None = None,
) -> Alternated:
    """Run `first` then `second` `pairs` times (each returns a rate); `report(pair, a, b)` after each pair."""
    result = Alternated()
    for pair in range(1, pairs + 1):
        result.first.append(first())
        result.second.append(second())
        if report is not None:
            report(pair, result.first[-1], result.second[-1])
    return result
