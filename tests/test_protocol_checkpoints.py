"""protocol.checkpoints: any object or file turns into a checked CheckpointInfo or one
CheckpointRejected sentence; no code from a file runs, no special file blocks, no link leaves the run."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isaacgymenvs import protocol
from isaacgymenvs.protocol import CheckpointInfo, CheckpointRejected
from tests.conftest import CARTPOLE, call_with_timeout, good_model

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
FUZZ_FILES = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
GOOD_MODEL = good_model()


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


def refused_or_valid(check) -> None:
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
    refused_or_valid(lambda: protocol.load_checkpoint(path, CARTPOLE))


@FUZZ
@given(ckpt=checkpoint_like)
def test_fuzz_checkpoint_dicts_in_memory(ckpt):
    """Faster and broader than through files: the validator itself turns any object into info or a refusal."""
    refused_or_valid(lambda: protocol.validate_checkpoint(ckpt, Path("mem.pth"), CARTPOLE))


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
        protocol.load_checkpoint(path, CARTPOLE)
    assert "\n" not in str(err.value)  # one line, whatever the key


@pytest.mark.parametrize("epoch", [math.nan, math.inf, -math.inf, 2**200, "7", [1]])
def test_odd_epochs_in_metadata_are_unknown_not_a_crash(tmp_path, epoch):
    path = tmp_path / "odd.pth"
    torch.save({"model": GOOD_MODEL, "metadata": {"task": "Cartpole", "epoch": epoch, "mean_reward": math.nan}}, path)
    info = protocol.load_checkpoint(path, CARTPOLE)
    assert info.epoch in (None, 2**200) and info.mean_reward is None


def test_numpy_number_scalars_load_but_object_scalars_do_not(tmp_path):
    import numpy as np

    path = tmp_path / "np.pth"
    torch.save({"model": GOOD_MODEL, "last_mean_rewards": np.float32(2.5), "epoch": np.int64(3)}, path)
    info = protocol.load_checkpoint(path, CARTPOLE)
    assert info.epoch == 3

    class Evil:
        def __reduce__(self):
            return (np._core.multiarray.scalar, (np.dtype("O"), b"\0" * 8))

    torch.save({"model": GOOD_MODEL, "x": Evil()}, path)
    with pytest.raises(CheckpointRejected, match="torn or not a checkpoint"):
        protocol.load_checkpoint(path, CARTPOLE)


def test_special_files_as_checkpoints_are_refused_without_blocking(run, tmp_path):
    os.mkfifo(run.nn / "fifo.pth")
    with pytest.raises(CheckpointRejected, match="not a regular file"):
        call_with_timeout(lambda: protocol.load_checkpoint(run.nn / "fifo.pth", CARTPOLE))
    outside = tmp_path / "outside.pth"
    torch.save({"model": GOOD_MODEL}, outside)
    run.latest_checkpoint.symlink_to(outside)
    assert protocol.load_checkpoint(run.latest_checkpoint, CARTPOLE)  # loadable as a file...
    with pytest.raises(CheckpointRejected, match="latest.pth is a symbolic link, which is not followed"):
        protocol.load_checkpoint_in_run(run, run.latest_checkpoint, CARTPOLE)  # ...but not as the run's


@FUZZ
@given(
    values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=20),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.complex64]),
)
def test_fast_finite_check_agrees_with_isfinite(values, dtype):
    tensor = torch.tensor(values, dtype=torch.float32).to(dtype)
    assert protocol.all_finite(tensor) == bool(torch.isfinite(tensor).all())


@pytest.mark.parametrize(
    "name, fields",
    [
        ("last_Ant_ep_120_rew_3012.5.pth", (120, 3012.5)),
        ("last_Ant_ep_7_rew__-10.04_.pth", (7, -10.04)),
        ("last_Ant_ep_7_rew_1e-3.pth", (7, 0.001)),
        ("Ant.pth", (None, None)),
        ("latest.pth", (None, None)),
    ],
)
def test_rl_games_file_names_give_epoch_and_reward(name, fields):
    assert protocol.rl_games_name_fields(name) == fields


def test_compiled_model_keys_are_read_as_plain_ones(tmp_path):
    path = tmp_path / "compiled.pth"
    torch.save({"model": {f"_orig_mod.{k}": v for k, v in GOOD_MODEL.items()}}, path)
    assert set(protocol.load_checkpoint(path, CARTPOLE).model) == set(GOOD_MODEL)


def cartpole_network():
    from omegaconf import OmegaConf

    from isaacgymenvs.config import load_config
    from isaacgymenvs.policy import Policy

    cfg = load_config(["task=Cartpole", "sim_device=cpu", "rl_device=cpu"])
    train = OmegaConf.to_container(cfg.train, resolve=True)
    return cfg, Policy(train, 4, 1, "cpu", stochastic=False)


def refused_variants(good: dict) -> dict[str, dict]:
    """What the held-out check found listed as loadable and then refused by the player at swap time."""
    wider = {k: v for k, v in good.items()}
    first = next(k for k in good if k.endswith("actor_mlp.0.weight"))
    wider[first] = torch.zeros(good[first].shape[0] * 2, good[first].shape[1])
    value_head = dict(good, **{"a2c_network.value.weight": torch.zeros(2, good["a2c_network.value.weight"].shape[1])})
    no_sigma = {k: v for k, v in good.items() if k != "a2c_network.sigma"}
    square_sigma = dict(good, **{"a2c_network.sigma": torch.zeros(8, 8)})
    return {"wider": wider, "value_head": value_head, "no_sigma": no_sigma, "square_sigma": square_sigma}


def test_a_network_mismatch_names_the_first_entry_and_both_shapes():
    _, policy = cartpole_network()
    good = {k: v.clone() for k, v in policy.model.state_dict().items()}
    assert protocol.network_mismatch(good, policy.shapes()) is None
    variants = refused_variants(good)
    mismatch = {name: protocol.network_mismatch(model, policy.shapes()) for name, model in variants.items()}
    hidden = good[next(k for k in good if k.endswith("actor_mlp.0.weight"))].shape[0]
    assert f"of shape [{2 * hidden}, 4]; the network's is [{hidden}, 4]" in mismatch["wider"]
    assert mismatch["value_head"].startswith("has 'a2c_network.value.weight' of shape [2, ")
    assert mismatch["no_sigma"] == "has no 'a2c_network.sigma' (the network's is [1])"
    assert mismatch["square_sigma"] == "has 'a2c_network.sigma' of shape [8, 8]; the network's is [1]"
    with pytest.raises(RuntimeError, match=r"its weights do not fit the network: it has 'a2c_network.sigma' of shape"):
        policy.load(variants["square_sigma"])  # the player's swap-time refusal says which entry, not "Error(s)"


def test_the_catalogue_marks_what_the_player_would_refuse(tmp_path):
    from isaacgymenvs.panel.catalog import CheckpointCatalog, run_info

    cfg, policy = cartpole_network()
    run = protocol.create_run_dir(tmp_path / "runs", "Cartpole")
    protocol.write_params(run, cfg)
    good = {k: v.clone() for k, v in policy.model.state_dict().items()}
    torch.save({"model": good, "metadata": {"task": "Cartpole", "epoch": 1}}, run.nn / "good.pth")
    for name, model in refused_variants(good).items():
        torch.save({"model": model, "metadata": {"task": "Cartpole", "epoch": 1}}, run.nn / f"{name}.pth")
    entries = {e.name: e for e in CheckpointCatalog(run, run_info(run)).scan()}
    assert entries["good.pth"].problem is None
    for name in refused_variants(good):
        assert entries[f"{name}.pth"].problem.startswith(f"{name}.pth has "), entries[f"{name}.pth"].problem


@pytest.mark.slow
def test_a_1gb_file_with_an_extra_tensor_is_refused_without_reading_it(tmp_path):
    import subprocess
    import sys

    run = protocol.create_run_dir(tmp_path / "runs", "Cartpole")
    model = dict(GOOD_MODEL, extra=torch.zeros(256 * 1024**2))  # 1 GiB of float32 beside a valid policy
    torch.save({"model": model, "metadata": {"task": "Cartpole", "epoch": 1}}, run.latest_checkpoint)
    del model
    code = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from isaacgymenvs import protocol\n"
        "run = protocol.RunDir(Path(sys.argv[1]))\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    protocol.load_checkpoint_in_run(run, run.latest_checkpoint, protocol.CheckpointFit('Cartpole', 4, 1))\n"
        "except protocol.CheckpointRejected as err:\n"
        "    print(err)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(run.root)], capture_output=True, text=True, timeout=120)
    refusal, grown_mb = result.stdout.splitlines()
    assert refusal.startswith("latest.pth holds 1024 MB of tensors, more than the 256 MB"), result.stderr[-2000:]
    assert int(grown_mb) < 150, f"the player grew by {grown_mb} MB to refuse it"
