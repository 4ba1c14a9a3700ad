"""protocol.experiments: which run `experiment=` names (exact, then the matching rules, newest by
the timestamp in the name, never by string order)."""

from __future__ import annotations

import pytest

from isaacgymenvs import protocol
from isaacgymenvs.errors import UserError


def make_runs(tmp_path, *names):
    for name in names:
        (tmp_path / name / "nn").mkdir(parents=True)
    return tmp_path


def test_exact_and_newest_partial_match_by_timestamp_not_by_name(tmp_path):
    runs = make_runs(tmp_path, "Ant_b_2026-01-01_00-00-00", "Ant_a_2026-06-01_00-00-00", "Cartpole_2026-07-01_00-00-00")
    assert protocol.resolve_experiment(runs, "Ant").name == "Ant_a_2026-06-01_00-00-00"
    assert protocol.resolve_experiment(runs, "Ant_b_2026-01-01_00-00-00").name == "Ant_b_2026-01-01_00-00-00"
    assert protocol.resolve_experiment(runs, "Cart").name == "Cartpole_2026-07-01_00-00-00"


def test_experiment_missing_or_unmatched_is_one_sentence(tmp_path):
    runs = make_runs(tmp_path, "Ant_2026-01-01_00-00-00")
    with pytest.raises(UserError, match=r"needs experiment=.*most recent runs: Ant_2026-01-01_00-00-00"):
        protocol.resolve_experiment(runs, "")
    with pytest.raises(UserError, match=r"No run .* matches experiment=Dog; candidates: Ant_2026"):
        protocol.resolve_experiment(runs, "Dog")


def test_matching_prefers_the_trainers_prefix_then_starts_with_then_any_case(tmp_path):
    runs = make_runs(tmp_path, "AntWatch_2026-09-01_00-00-00", "Ant_2026-01-01_00-00-00",
                     "my_ant_experiment_2026-10-01_00-00-00", "ant_lower_2026-08-01_00-00-00")  # fmt: skip
    # experiment=Ant trains Ant_<time>: that run wins over the newer AntWatch_ one.
    match = protocol.match_experiment(runs, "Ant")
    assert (match.run.name, match.how) == ("Ant_2026-01-01_00-00-00", "prefix")
    assert sorted(r.name for r in match.others) == [
        "AntWatch_2026-09-01_00-00-00", "ant_lower_2026-08-01_00-00-00", "my_ant_experiment_2026-10-01_00-00-00"
    ]  # fmt: skip
    assert match.describe("Ant").startswith(
        "run Ant_2026-01-01_00-00-00 (newest run named Ant_<time>; 3 other runs matched: "
    )
    assert protocol.match_experiment(runs, "AntW").run.name == "AntWatch_2026-09-01_00-00-00"
    # Case-sensitive first: 'ant' picks ant_lower over the newer AntWatch_ and my_ant_experiment_.
    match = protocol.match_experiment(runs, "ant")
    assert (match.run.name, match.how) == ("ant_lower_2026-08-01_00-00-00", "starts with")
    match = protocol.match_experiment(runs, "antw")
    assert (match.run.name, match.how) == ("AntWatch_2026-09-01_00-00-00", "starts with (any case)")
    match = protocol.match_experiment(runs, "ANT_L")
    assert (match.run.name, match.how) == ("ant_lower_2026-08-01_00-00-00", "starts with (any case)")
    match = protocol.match_experiment(runs, "EXPERIMENT")
    assert (match.run.name, match.how, match.others) == ("my_ant_experiment_2026-10-01_00-00-00",
                                                         "contains (any case)", ())  # fmt: skip
    assert "0 other runs matched)" in match.describe("EXPERIMENT")
    assert protocol.match_experiment(runs, "Ant_2026-01-01_00-00-00").exact


def test_runs_are_listed_newest_first_by_timestamp_and_only_with_nn(tmp_path):
    make_runs(tmp_path, "Ant_2026-01-02_00-00-00", "Ant_2025-12-31_00-00-00", "Ant_2026-01-10_00-00-00")
    (tmp_path / "Ant_2027-01-01_00-00-00").mkdir()  # no nn/: not a run
    assert [r.name for r in protocol.list_runs(tmp_path)] == [
        "Ant_2026-01-10_00-00-00", "Ant_2026-01-02_00-00-00", "Ant_2025-12-31_00-00-00"
    ]  # fmt: skip
    assert protocol.list_runs(tmp_path / "absent") == []


def test_a_run_that_is_not_usable_yet_is_not_matched(tmp_path):
    runs = make_runs(tmp_path, "Ant_2026-01-01_00-00-00", "Ant_2026-02-01_00-00-00")
    ready = lambda run: run.name.startswith("Ant_2026-01")  # noqa: E731
    assert protocol.match_experiment(runs, "Ant", ready).run.name == "Ant_2026-01-01_00-00-00"
    assert protocol.match_experiment(runs, "Ant", lambda run: False) is None
