"""Which run `experiment=` names: exact run names, else the newest run of the best matching rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from isaacgymenvs.errors import UserError
from isaacgymenvs.protocol.rundir import RUN_NAME_RE, RunDir, run_timestamp


def list_runs(train_dir: str | Path) -> list[RunDir]:
    """Run directories under `train_dir`, newest first (timestamp in the name, else ctime).

    Never sorted by plain name: 'Ant_ep_99' after 'Ant_ep_1000' is the classic trap.
    """
    parent = Path(train_dir)
    if not parent.is_dir():
        return []

    def created(path: Path) -> float:
        stamp = run_timestamp(path.name)
        return stamp.timestamp() if stamp else path.stat().st_ctime

    runs = [p for p in parent.iterdir() if p.is_dir() and (p / "nn").is_dir()]
    return [RunDir(p) for p in sorted(runs, key=created, reverse=True)]


@dataclass(frozen=True)
class RunMatch:
    """The run `experiment=` chose, how it matched, and every other run that matched too."""

    run: RunDir
    how: str  # "exact", "prefix", "starts with", "starts with (any case)" or "contains (any case)"
    others: tuple[RunDir, ...]

    @property
    def exact(self) -> bool:
        """An exact run name never switches to another run; a partial one follows the newest."""
        return self.how == "exact"

    def describe(self, experiment: str) -> str:
        """One line for the console: the run chosen, why, and how many others matched."""
        if self.exact:
            return f"run {self.run.name}"
        why = {
            "prefix": f"newest run named {experiment}_<time>",
            "starts with": f"newest run whose name starts with '{experiment}'",
            "starts with (any case)": f"newest run whose name starts with '{experiment}' in any case",
            "contains (any case)": f"newest run whose name contains '{experiment}' (no name starts with it)",
        }[self.how]
        others = f"{len(self.others)} other run{'s' if len(self.others) != 1 else ''} matched"
        shown = ", ".join(r.name for r in self.others[:3]) + (", ..." if len(self.others) > 3 else "")
        return f"run {self.run.name} ({why}; {others}{': ' + shown if shown else ''})"


def _match_tiers(experiment: str) -> list[tuple[str, Callable[[str], bool]]]:
    """The matching rules, best first (see docs/protocol.md)."""
    low = experiment.lower()

    def prefix(name: str) -> bool:
        match = RUN_NAME_RE.match(name)
        return match is not None and match["prefix"] == experiment

    return [
        ("prefix", prefix),
        ("starts with", lambda name: name.startswith(experiment)),
        ("starts with (any case)", lambda name: name.lower().startswith(low)),
        ("contains (any case)", lambda name: low in name.lower()),
    ]


def match_experiment(
    train_dir: str | Path, experiment: str, usable: Callable[[RunDir], bool] = lambda run: True
) -> RunMatch | None:
    """The run `experiment` names: an exact run name, else the newest run of the best matching rule.

    Rules, best first: the name is `<experiment>_<timestamp>` (what `experiment=X` in training
    creates); the name starts with `experiment`; starts with it in any case; contains it in any
    case. Newest means the timestamp in the name, never string order. `usable` filters runs that
    are not ready (a player needs params/config.yaml).
    """
    exact = RunDir(Path(train_dir) / experiment)
    if experiment and "/" not in experiment and exact.nn.is_dir() and usable(exact):
        return RunMatch(exact, "exact", ())
    runs = [r for r in list_runs(train_dir) if usable(r)]
    matched = [r for r in runs if experiment.lower() in r.name.lower()]
    for how, rule in _match_tiers(experiment):
        chosen = next((r for r in runs if rule(r.name)), None)
        if chosen is not None:
            return RunMatch(chosen, how, tuple(r for r in matched if r != chosen))
    return None


def resolve_experiment(train_dir: str | Path, experiment: str) -> RunDir:
    """The run `experiment` names (see `match_experiment`); a one-sentence UserError if none."""
    runs = list_runs(train_dir)
    recent = ", ".join(r.name for r in runs[:5]) or f"none in {train_dir}/"
    if not experiment:
        raise UserError(
            f"Play mode needs experiment=<run name or part of it> (or task=<Task> for its newest run); "
            f"most recent runs: {recent}."
        )
    match = match_experiment(train_dir, experiment)
    if match is None:
        raise UserError(f"No run in {train_dir}/ matches experiment={experiment}; candidates: {recent}.")
    return match.run
