"""Hostile and broken inputs against the real protocol functions: property-based fuzzing of the
state-file reader, the checkpoint validator and the panel's catalogue, plus special files,
symlinks, temp files and write errors. Nothing here may raise anything but the documented
refusal, block, or read outside the run directory.
"""

from __future__ import annotations

import errno
import json
import math
import os
import threading
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isaacgymenvs import protocol
from isaacgymenvs.protocol import CheckpointInfo, CheckpointRejected

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
FUZZ_FILES = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


def call_with_timeout(fn, timeout: float = 5.0):  # noqa: ANN001, ANN201
    """fn() in a daemon thread; fails the test if it blocks (a FIFO opened for reading would)."""
    result: dict = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as err:  # noqa: BLE001
            result["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{fn} blocked for more than {timeout} s"
    if "error" in result:
        raise result["error"]
    return result["value"]


@pytest.fixture
def run(tmp_path):
    run = protocol.create_run_dir(tmp_path / "runs", "Cartpole")
    (run.nn / "a.pth").write_bytes(b"x")
    return run


# --- the state file ----------------------------------------------------------------------------

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


def deep(depth: int, opener: str) -> str:
    if opener == "[":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


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


@FUZZ
@given(depth=st.integers(min_value=17, max_value=200_000), kind=st.sampled_from(["[", "{", "mixed"]))
def test_deep_nesting_is_refused_before_parsing(run, depth, kind):
    if kind == "mixed":
        text = '{"mode": ' + "[{" * (depth // 2) + '"x"' + "}]" * (depth // 2) + "}"
    else:
        text = deep(depth, kind)
    raw = text.encode()
    protocol.state_file(run).write_bytes(raw)
    state, warning = call_with_timeout(lambda: protocol.read_state(run))
    expected = "nested deeper than 16 levels" if len(raw) <= protocol.JSON_MAX_BYTES else "more than the 65536 allowed"
    assert state is None and expected in warning


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
    from panel.catalog import player_summary

    protocol.status_file(run).unlink()
    protocol.status_file(run).write_text(
        json.dumps({"heartbeat": math.inf, "phase": "loaded"}).replace("Infinity", "1e999")
    )
    assert player_summary(run)[0] == "player not running"


# --- checkpoints ---------------------------------------------------------------------------------

GOOD_MODEL = {
    "running_mean_std.running_mean": torch.zeros(4),
    "running_mean_std.running_var": torch.ones(4),
    "a2c_network.mu.weight": torch.zeros(1, 8),
}

odd_number = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)
fill = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 3e38]),  # hypothesis' floats seldom pick these alone
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.integers(-(2**31), 2**31),
)
tensor = st.one_of(
    st.builds(lambda shape, v: torch.full(shape, v), st.lists(st.integers(0, 5), max_size=3).map(tuple), fill),
    st.sampled_from([torch.tensor(1.0), torch.zeros(4, dtype=torch.int64), torch.zeros(4, dtype=torch.bool),
                     torch.tensor([math.nan] * 4), torch.zeros(4, 1), torch.zeros(1, 8, dtype=torch.float16),
                     torch.zeros(4, dtype=torch.complex64)]),
)  # fmt: skip
model_value = st.one_of(tensor, odd_number)
model_key = st.one_of(
    st.sampled_from(list(GOOD_MODEL) + ["_orig_mod.a2c_network.mu.weight", "running_mean_std.running_var"]),
    st.text(max_size=10),
    st.integers(),
)
replaced_tensor = st.builds(
    lambda key, v, scalar: {**GOOD_MODEL, key: torch.full(() if scalar else GOOD_MODEL[key].shape, v)},
    st.sampled_from(list(GOOD_MODEL)),
    fill,
    st.booleans(),
)
model_dict = st.one_of(
    replaced_tensor,  # the right names and shapes, odd values: NaN, inf, negative variance, 0-d tensors
    st.builds(lambda extra: {**GOOD_MODEL, **extra}, st.dictionaries(model_key, tensor, max_size=2)),
    st.builds(lambda extra: {**GOOD_MODEL, **extra}, st.dictionaries(model_key, model_value, max_size=2)),
    st.dictionaries(model_key, model_value, max_size=5),
    odd_number,
)
metadata = st.one_of(
    odd_number,
    st.fixed_dictionaries(
        {},
        optional={
            "task": st.one_of(st.just("Cartpole"), st.just("Ant"), odd_number),
            "epoch": odd_number,
            "frame": odd_number,
            "mean_reward": odd_number,
        },
    ),
)
checkpoint_like = st.one_of(
    st.fixed_dictionaries(
        {"model": model_dict}, optional={"metadata": metadata, "epoch": odd_number, "frame": odd_number}
    ),
    odd_number,
)


def check_info(info: CheckpointInfo) -> None:
    assert isinstance(info, CheckpointInfo)
    assert all(isinstance(k, str) for k in info.model)
    assert all(bool(torch.isfinite(v).all()) for v in info.model.values() if v.is_floating_point())
    assert info.model["running_mean_std.running_mean"].shape == (4,)
    assert info.model["a2c_network.mu.weight"].shape[0] == 1
    for number in (info.epoch, info.frame, info.mean_reward):
        assert number is None or (isinstance(number, (int, float)) and math.isfinite(number))


def refused_or_valid(check) -> None:  # noqa: ANN001
    try:
        info = check()
    except CheckpointRejected as err:
        assert str(err) and "\n" not in str(err)
        return
    check_info(info)


@FUZZ_FILES
@given(ckpt=checkpoint_like)
def test_fuzz_checkpoint_dicts_through_files(tmp_path_factory, ckpt):
    path = tmp_path_factory.mktemp("c") / "fuzz.pth"
    torch.save(ckpt, path)
    refused_or_valid(lambda: protocol.load_checkpoint(path, "Cartpole", 4, 1))


@FUZZ
@given(ckpt=checkpoint_like)
def test_fuzz_checkpoint_dicts_in_memory(ckpt):
    """Faster and broader than through files: the validator itself turns any object into info or a refusal."""
    refused_or_valid(lambda: protocol.validate_checkpoint(ckpt, Path("mem.pth"), "Cartpole", 4, 1))


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"running_mean_std.running_var": torch.tensor([1.0, math.nan, 1.0, 1.0])}, "non-finite values"),
        ({"a2c_network.mu.weight": torch.full((1, 8), math.inf)}, "non-finite values"),
        ({"running_mean_std.running_var": torch.tensor([1.0, -1.0, 1.0, 1.0])}, "negative normaliser variance"),
        ({"running_mean_std.running_mean": torch.tensor(0.0)}, "0-dimensional running_mean_std.running_mean"),
        ({5: torch.zeros(2)}, "name is not a string"),
        ({"\n": torch.tensor(math.nan)}, r"non-finite values \(NaN or inf\) in '\\n'$"),  # found by the fuzzer
    ],
)
def test_issue_cases_are_refused_with_a_reason(tmp_path, change, reason):
    path = tmp_path / "bad.pth"
    torch.save({"model": {**GOOD_MODEL, **change}, "metadata": {"task": "Cartpole"}}, path)
    with pytest.raises(CheckpointRejected, match=reason) as err:
        protocol.load_checkpoint(path, "Cartpole", 4, 1)
    assert "\n" not in str(err.value)  # one line, whatever the key


@pytest.mark.parametrize("epoch", [math.nan, math.inf, -math.inf, 2**200, "7", [1]])
def test_odd_epochs_in_metadata_are_unknown_not_a_crash(tmp_path, epoch):
    path = tmp_path / "odd.pth"
    torch.save({"model": GOOD_MODEL, "metadata": {"task": "Cartpole", "epoch": epoch, "mean_reward": math.nan}}, path)
    info = protocol.load_checkpoint(path, "Cartpole", 4, 1)
    assert info.epoch in (None, 2**200) and info.mean_reward is None


def test_numpy_number_scalars_load_but_object_scalars_do_not(tmp_path):
    import numpy as np

    path = tmp_path / "np.pth"
    torch.save({"model": GOOD_MODEL, "last_mean_rewards": np.float32(2.5), "epoch": np.int64(3)}, path)
    info = protocol.load_checkpoint(path, "Cartpole", 4, 1)
    assert info.epoch == 3

    class Evil:
        def __reduce__(self):
            return (np._core.multiarray.scalar, (np.dtype("O"), b"\0" * 8))

    torch.save({"model": GOOD_MODEL, "x": Evil()}, path)
    with pytest.raises(CheckpointRejected, match="torn or not a checkpoint"):
        protocol.load_checkpoint(path, "Cartpole", 4, 1)


def test_special_files_as_checkpoints_are_refused_without_blocking(run, tmp_path):
    os.mkfifo(run.nn / "fifo.pth")
    with pytest.raises(CheckpointRejected, match="not a regular file"):
        call_with_timeout(lambda: protocol.load_checkpoint(run.nn / "fifo.pth", "Cartpole", 4, 1))
    outside = tmp_path / "outside.pth"
    torch.save({"model": GOOD_MODEL}, outside)
    run.latest_checkpoint.symlink_to(outside)
    assert protocol.load_checkpoint(run.latest_checkpoint, "Cartpole", 4, 1)  # loadable as a file...
    with pytest.raises(CheckpointRejected, match="latest.pth leads outside the run directory"):
        protocol.load_checkpoint_in_run(run, run.latest_checkpoint, "Cartpole", 4, 1)  # ...but not as the run's


# --- the panel's catalogue -----------------------------------------------------------------------

hostile_entry = st.sampled_from(["fifo", "dir", "link_out", "link_loop", "garbage", "nan", "scalar_mean", "good",
                                 "empty", "link_dangling"])  # fmt: skip


def make_hostile(run, name: str, kind: str, outside: Path) -> None:
    path = run.nn / f"{name}.pth"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    elif kind == "link_out":
        path.symlink_to(outside)
    elif kind == "link_loop":
        path.symlink_to(path)
    elif kind == "link_dangling":
        path.symlink_to(run.nn / "nowhere.pth")
    elif kind == "garbage":
        path.write_bytes(os.urandom(100))
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        model = dict(GOOD_MODEL)
        if kind == "nan":
            model["a2c_network.mu.weight"] = torch.full((1, 8), math.nan)
        elif kind == "scalar_mean":
            model["running_mean_std.running_mean"] = torch.tensor(1.0)
        torch.save({"model": model, "metadata": {"task": "Cartpole", "epoch": 1}}, path)


@FUZZ_FILES
@given(kinds=st.lists(hostile_entry, min_size=1, max_size=8))
def test_fuzz_catalog_scan_never_raises_or_blocks(tmp_path_factory, kinds):
    from panel.catalog import CheckpointCatalog, RunInfo

    parent = tmp_path_factory.mktemp("cat")
    run = protocol.create_run_dir(parent / "runs", "Cartpole")
    outside = parent / "outside.pth"
    torch.save({"model": GOOD_MODEL}, outside)
    for i, kind in enumerate(kinds):
        make_hostile(run, f"{kind}{i}", kind, outside)
    catalog = CheckpointCatalog(run, RunInfo("Cartpole", 4, 1))
    entries = call_with_timeout(catalog.scan)
    by_name = {e.name: e for e in entries}
    for i, kind in enumerate(kinds):
        entry = by_name.get(f"{kind}{i}.pth")
        if kind in ("link_dangling", "link_loop"):
            assert entry is None  # nothing to stat behind the name: not listed
            continue
        assert entry is not None, (kind, by_name)
        assert (entry.problem is None) == (kind == "good"), (kind, entry.problem)
        if kind == "link_out":
            assert "leads outside the run directory" in entry.problem


# --- temp files ------------------------------------------------------------------------------------


def test_stale_temps_of_dead_writers_are_removed_when_a_run_is_opened(run):
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [run.nn / f".latest.pth.tmp-{dead.pid}-1", run.root / f".{protocol.STATE_FILE}.tmp-{dead.pid}-2"]
    live = run.nn / f".latest.pth.tmp-{os.getpid()}-3"
    old_live = run.nn / f".latest.json.tmp-{os.getpid()}-4"
    for path in (*stale, live, old_live):
        path.write_bytes(b"half")
    os.utime(old_live, (time.time() - 3600, time.time() - 3600))
    from panel.catalog import CheckpointCatalog, RunInfo

    CheckpointCatalog(run, RunInfo("Cartpole", 4, 1))  # the panel opening the run cleans up
    assert not any(p.exists() for p in stale) and not old_live.exists()
    assert live.exists()  # a writer of this machine that still runs keeps its temp


# --- writing: disk full as torch reports it ----------------------------------------------------------


def test_torch_save_runtime_error_is_the_documented_warning(run, monkeypatch, capsys):
    from isaacgymenvs.trainer.publisher import CheckpointPublisher

    publisher = CheckpointPublisher(run)
    publisher.submit({"model": {"w": torch.ones(3)}}, {"epoch": 1})
    publisher.flush()
    before = run.latest_checkpoint.read_bytes()

    def full(*args, **kwargs):  # noqa: ANN002, ANN003
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full)
    publisher.submit({"model": {"w": torch.ones(3) * 2}}, {"epoch": 2})
    publisher.flush()
    monkeypatch.undo()
    publisher.submit({"model": {"w": torch.ones(3) * 3}}, {"epoch": 3})  # the writer thread lives on
    publisher.close()
    assert publisher.failures == 1 and publisher.published == 2
    err = capsys.readouterr().err
    assert f"Warning: could not publish {run.latest_checkpoint} (" in err and "training goes on" in err
    assert torch.load(run.latest_checkpoint, weights_only=True)["metadata"]["epoch"] == 3
    assert before != run.latest_checkpoint.read_bytes()


def test_tensorboard_write_errors_neither_kill_nor_hang_training(tmp_path, capsys):
    from tensorboardX import SummaryWriter

    from isaacgymenvs.trainer.rlgames_io import guard_summary_writer

    writer = SummaryWriter(str(tmp_path / "summaries"), max_queue=2)
    assert guard_summary_writer(writer)
    records = writer.file_writer.event_writer._ev_writer._py_recordio_writer

    def disk_full(*args):  # noqa: ANN002
        raise OSError(errno.ENOSPC, "No space left on device")

    records.write = records.flush = disk_full
    start = time.monotonic()
    call_with_timeout(lambda: [writer.add_scalar("x", i, i) for i in range(200)], timeout=30)
    assert time.monotonic() - start < 30
    assert writer.file_writer.event_writer._worker.is_alive()
    err = capsys.readouterr().err
    assert err.count("TensorBoard cannot write to") == 1 and "training goes on" in err


@FUZZ
@given(
    values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=20),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.complex64]),
)
def test_fast_finite_check_agrees_with_isfinite(values, dtype):
    tensor = torch.tensor(values, dtype=torch.float32).to(dtype)
    assert protocol.all_finite(tensor) == bool(torch.isfinite(tensor).all())


@FUZZ
@given(
    status=st.dictionaries(
        st.sampled_from(["mode", "checkpoint", "epoch", "reward", "loaded_at", "error", "phase"]),
        st.one_of(json_value, st.just("<b>x</b><img src=y>"), st.just(1e308), st.floats()),
    )
)
def test_panel_status_line_renders_any_status(status):
    pytest.importorskip("PySide6")
    from panel.catalog import status_html

    text = status_html("loaded", status)
    assert isinstance(text, str) and "<img" not in text  # the player's values are escaped, never markup


def test_nothing_is_written_through_a_link_out_of_the_run(run, tmp_path):
    from isaacgymenvs.errors import UserError

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "metrics.csv").write_text("mine\n")
    run.metrics_file.symlink_to(outside / "metrics.csv")
    with pytest.raises(OSError):
        protocol.append_metrics(run, 1, 10, 1.0, 0.0)
    assert (outside / "metrics.csv").read_text() == "mine\n"
    (run.root / "videos").symlink_to(outside)
    with pytest.raises(UserError, match="videos leads outside the run directory"):
        protocol.output_dir_in_run(run, "videos")
    assert protocol.output_dir_in_run(run, "eval") == run.root / "eval"
