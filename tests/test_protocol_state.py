"""protocol.state: the state file (panels -> player) and the status file (player -> panels), read
like files a hostile user wrote: property-based fuzzing, special files, links, seq monotonicity."""

from __future__ import annotations

import json
import math
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isaacgymenvs import protocol
from tests.conftest import call_with_timeout

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


def test_state_file_round_trip_and_seq(run):
    assert protocol.read_state(run) == (None, None)
    first = protocol.write_state(run, "manual", "nn/a.pth")
    assert protocol.read_state(run) == (first, None) and first.seq == 1
    second = protocol.write_state(run, "auto")
    assert second.seq == 2 and protocol.read_state(run)[0].checkpoint is None


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["auto", "manual", "nn/a.pth", "../x.pth", "/etc/passwd", "nn/missing.pth", "nn/" + "a" * 2000]),
)


json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


state_like = st.fixed_dictionaries(
    {},
    optional={
        "mode": st.one_of(st.sampled_from(["auto", "manual"]), json_value),
        "checkpoint": st.one_of(st.sampled_from(["nn/a.pth", "nn/missing.pth", "nn/link_out.pth"]), json_value),
        "seq": json_value,
    },
)


def assert_state_contract(run, raw: bytes) -> None:
    state, warning = call_with_timeout(lambda: protocol.read_state(run))
    if state is None:
        assert warning is None and raw is None or isinstance(warning, str) and warning and "\n" not in warning
        return
    assert warning is None and state.mode in ("auto", "manual") and isinstance(state.seq, int)
    if state.mode == "manual":
        path = protocol.checkpoint_in_run(run, state.checkpoint)
        assert path is not None and path.is_file() and path.is_relative_to(run.root.resolve())


@FUZZ
@given(value=state_like)
def test_fuzz_state_objects(tmp_path_factory, value):
    run = protocol.create_run_dir(tmp_path_factory.mktemp("s") / "runs", "Cartpole")
    (run.nn / "a.pth").write_bytes(b"x")
    raw = json.dumps(value).encode()
    protocol.state_file(run).write_bytes(raw)
    assert_state_contract(run, raw)


@FUZZ
@given(raw=st.binary(max_size=300) | json_value.map(lambda v: json.dumps(v).encode()))
def test_fuzz_state_bytes(tmp_path_factory, raw):
    run = protocol.create_run_dir(tmp_path_factory.mktemp("b") / "runs", "Cartpole")
    protocol.state_file(run).write_bytes(raw)
    assert_state_contract(run, raw)


def test_special_huge_and_odd_state_files_never_block(run):
    path = protocol.state_file(run)
    os.mkfifo(path)
    assert call_with_timeout(lambda: protocol.read_state(run)) == (None, f"{path.name} is not a regular file")
    path.unlink()
    path.mkdir()
    assert (
        "regular file" in call_with_timeout(lambda: protocol.read_state(run))[1]
        or "cannot" in protocol.read_state(run)[1]
    )
    path.rmdir()
    path.write_bytes(b" " * (protocol.JSON_MAX_BYTES + 1))
    assert "more than the 65536 allowed" in protocol.read_state(run)[1]
    path.unlink()
    path.symlink_to("/dev/zero")  # endless, and outside the run: a link is never followed
    assert (
        call_with_timeout(lambda: protocol.read_state(run))[1]
        == f"{path.name} is a symbolic link, which is not followed"
    )
    path.unlink()
    secret = run.root.parent / "secret.json"
    secret.write_text('{"mode": "auto", "seq": 1}')
    path.symlink_to(secret)  # even a valid file outside the run is not read
    assert protocol.read_state(run) == (None, f"{path.name} is a symbolic link, which is not followed")
    path.unlink()
    path.write_text(json.dumps({"mode": "manual", "checkpoint": "nn/missing.pth", "seq": 4}))
    assert protocol.read_state(run) == (None, f"{path.name} names 'nn/missing.pth', which does not exist")
    path.write_text(json.dumps({"mode": "manual", "checkpoint": "nn/" + "b" * 3000 + ".pth", "seq": 4}))
    assert "characters (at most 1024 bytes)" in protocol.read_state(run)[1]
    (run.nn / "dir.pth").mkdir()
    path.write_text(json.dumps({"mode": "manual", "checkpoint": "nn/dir.pth", "seq": 4}))
    assert protocol.read_state(run)[1].endswith("which is not a regular file")
    # The seq of an unusable file still counts: a new write never goes back in seq.
    assert protocol.write_state(run, "auto").seq == 5


def test_status_and_manifest_readers_refuse_the_same(run):
    for make in (os.mkfifo, lambda p: p.write_text("[" * 10_000), lambda p: p.write_bytes(b"\xff" * 10)):
        path = protocol.status_file(run)
        path.unlink(missing_ok=True)
        make(path)
        assert call_with_timeout(lambda: protocol.read_status(run)) is None
    from isaacgymenvs.panel.catalog import player_summary

    protocol.status_file(run).unlink()
    protocol.status_file(run).write_text(
        json.dumps({"heartbeat": math.inf, "phase": "loaded"}).replace("Infinity", "1e999")
    )
    assert player_summary(run)[0] == "player not running"


def test_write_state_refuses_what_it_would_not_read(run):
    import pytest

    with pytest.raises(ValueError, match="unknown mode"):
        protocol.write_state(run, "follow")
    refused = r"is not a \.pth file, rsl_rl's model_<it>\.pt or skrl's agent_<timestep>\.pt or best_agent\.pt inside"
    with pytest.raises(ValueError, match=refused):
        protocol.write_state(run, "manual", "../outside.pth")
    assert protocol.read_state(run) == (None, None)  # nothing was written


def test_status_round_trip_carries_a_heartbeat(run):
    protocol.write_status(run, {"phase": "loaded", "epoch": 3})
    status = protocol.read_status(run)
    assert status["phase"] == "loaded" and status["epoch"] == 3 and isinstance(status["heartbeat"], float)
