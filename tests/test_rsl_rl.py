"""library=rsl_rl: a short training publishes through our protocol, the player acts exactly as rsl_rl's
own inference does, and a checkpoint of the other library (either way) is one sentence, old policy kept."""

from __future__ import annotations

import json
import re
import sys

import pytest
import torch

from isaacgymenvs import protocol
from tests.conftest import run_cli

pytest.importorskip("rsl_rl", reason="rsl-rl-lib is not installed (pip install -e '.[rsl_rl]')")

ITERATIONS = 4


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An rsl_rl and an rl_games Cartpole run, a few iterations each, trained by the real CLI."""
    parent = tmp_path_factory.mktemp("libraries")
    outputs = {}
    for library in ("rsl_rl", "rl_games"):
        result = run_cli("task=Cartpole", f"library={library}", "num_envs=32", f"max_iterations={ITERATIONS}",
                         "checkpoint_save_freq=2", "sim_device=cpu", "rl_device=cpu", f"experiment={library}",
                         cwd=parent)  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        outputs[library] = result
    found = [protocol.RunDir(r) for r in (parent / "runs").iterdir()]
    return {lib: (next(r for r in found if r.name.startswith(f"{lib}_")), outputs[lib]) for lib in outputs}


@pytest.mark.slow
def test_an_rsl_rl_training_publishes_latest_with_its_library(runs):
    run, result = runs["rsl_rl"]
    progress = re.findall(
        rf"^epoch (\d+)/{ITERATIONS} \| [\d,]+ env steps/s \| mean episode reward \S+", result.stdout, re.M
    )
    assert [int(p) for p in progress] == list(range(1, ITERATIONS + 1))
    assert "Actor Model" not in result.stdout and "Learning iteration" not in result.stdout  # our lines only
    manifest = json.loads(run.latest_manifest.read_text())
    assert (manifest["library"], manifest["task"], manifest["epoch"]) == ("rsl_rl", "Cartpole", ITERATIONS)
    ckpt = protocol.read_checkpoint_dict(run.latest_checkpoint)  # weights_only: plain types only
    assert {"actor_state_dict", "critic_state_dict", "optimizer_state_dict"} <= set(ckpt)
    assert ckpt["iter"] == ITERATIONS and ckpt["metadata"]["library"] == "rsl_rl"
    assert (run.nn / "model_0.pt").is_file() and (run.nn / f"model_{ITERATIONS - 1}.pt").is_file()
    assert any(run.summaries.iterdir()) and run.metrics_file.is_file()
    assert f"library=rsl_rl checkpoint=runs/{run.name}/nn/latest.pth" in result.stdout  # the resume hint
    info = protocol.load_checkpoint(run.nn / "model_0.pt", protocol.CheckpointFit("Cartpole", 4, 1, library="rsl_rl"))
    assert info.epoch == 1  # rsl_rl's 'iter' is the index of the iteration just finished


def player_core(run):
    from isaacgymenvs.config import load_config
    from isaacgymenvs.player.play import build_core, with_run_config

    cfg = with_run_config(load_config(["mode=play", "num_envs=3", "sim_device=cpu", "rl_device=cpu"]), run, False)
    messages: list[str] = []
    return build_core(cfg, run, use_events=False, log=messages.append), messages, cfg


def load_now(core) -> None:
    """One synchronous follower check of latest.pth, then the swap between steps."""
    core.follower._check(force=True)
    core.apply_ready_weights()


@pytest.mark.slow
def test_the_player_acts_as_rsl_rl_inference_does(runs):
    from omegaconf import OmegaConf
    from rsl_rl.runners import OnPolicyRunner
    from tensordict import TensorDict

    from isaacgymenvs.trainer.rsl_rl_env import RslRlVecEnv

    run, _ = runs["rsl_rl"]
    core, _, cfg = player_core(run)
    load_now(core)
    assert core.policy.library == "rsl_rl" and core.policy.loaded

    runner = OnPolicyRunner(RslRlVecEnv(core.task, {}), OmegaConf.to_container(cfg.train.runner), None, "cpu")
    runner.load(str(run.latest_checkpoint))
    inference = runner.get_inference_policy("cpu")
    obs = torch.randn(64, core.task.num_obs, generator=torch.Generator().manual_seed(0)) * 3
    with torch.inference_mode():
        expected = inference(TensorDict({"policy": obs}, batch_size=[64]))
    assert torch.equal(core.policy.act(obs), torch.clamp(expected, -1.0, 1.0))
    assert core.policy.act(obs).abs().max() > 0  # a trained policy, not the zeros of an empty one


@pytest.mark.slow
@pytest.mark.parametrize(("player", "other"), [("rsl_rl", "rl_games"), ("rl_games", "rsl_rl")])
def test_a_checkpoint_of_the_other_library_is_one_sentence_and_the_old_policy_stays(runs, player, other):
    run, _ = runs[player]
    core, messages, _ = player_core(run)
    load_now(core)
    before = {k: v.clone() for k, v in core.policy.model.state_dict().items()}
    good = run.latest_checkpoint.read_bytes()
    try:
        protocol.atomic_write_bytes(run.latest_checkpoint, runs[other][0].latest_checkpoint.read_bytes())
        load_now(core)
        after = core.policy.model.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert core.follower.error == f"latest.pth is an {other} checkpoint and this run's policy is an {player} one"
        assert messages[-1] == f"Keeping the current policy: {core.follower.error}"
    finally:
        protocol.atomic_write_bytes(run.latest_checkpoint, good)


def test_a_missing_rsl_rl_is_one_sentence_and_exit_2(tmp_path, monkeypatch, capsys):
    from isaacgymenvs.cli import main

    monkeypatch.setitem(sys.modules, "rsl_rl", None)  # import rsl_rl now raises ImportError
    code = main(["task=Cartpole", "library=rsl_rl", "sim_device=cpu", f"train_dir={tmp_path / 'runs'}"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == "Error: library=rsl_rl needs rsl-rl-lib, which is not installed; pip install -e '.[rsl_rl]'."
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_the_catalogue_lists_rsl_rl_files_with_their_epochs_and_marks_the_other_library(runs):
    import shutil

    from isaacgymenvs.panel.catalog import CheckpointCatalog, run_info

    run, _ = runs["rsl_rl"]
    foreign = run.nn / "last_Cartpole_ep_2_rew_10.0.pth"  # an rl_games periodic file, in the rsl_rl run
    shutil.copy(runs["rl_games"][0].latest_checkpoint, foreign)
    (run.nn / ".model_9.pt.tmp-1-1").write_bytes(b"")  # a writer's temp file is never listed
    try:
        entries = {e.name: e for e in CheckpointCatalog(run, run_info(run)).scan()}
    finally:
        foreign.unlink()
        (run.nn / ".model_9.pt.tmp-1-1").unlink()
    last = f"model_{ITERATIONS - 1}.pt"
    assert set(entries) == {"latest.pth", "model_0.pt", last, foreign.name}
    epochs = [entries[n].epoch for n in ("model_0.pt", last, "latest.pth")]
    assert epochs == [1, ITERATIONS, ITERATIONS]  # model_<it>.pt holds <it> + 1 finished iterations
    assert all(entries[n].problem is None for n in ("latest.pth", "model_0.pt", last))
    assert entries["model_0.pt"].relative == "nn/model_0.pt"
    refused = f"{foreign.name} is an rl_games checkpoint and this run's policy is an rsl_rl one"
    assert entries[foreign.name].problem == refused


@pytest.mark.slow
def test_manual_loads_an_rsl_rl_model_file_and_auto_follows_latest_again(runs):
    run, _ = runs["rsl_rl"]
    core, _, _ = player_core(run)
    load_now(core)
    try:
        assert (core.follower.loaded.path.name, core.follower.loaded.epoch) == ("latest.pth", ITERATIONS)

        protocol.write_state(run, "manual", "nn/model_0.pt")  # what a panel's Load Selected writes
        core.follower._read_state()
        core.apply_ready_weights()
        saved = protocol.read_checkpoint_dict(run.nn / "model_0.pt")["actor_state_dict"]
        weights = core.policy.model.state_dict()
        assert all(torch.equal(weights[k], saved[k]) for k in saved)
        core.follower._write_status()
        status = protocol.read_status(run)
        assert (status["mode"], status["checkpoint"], status["epoch"], status["phase"]) == (
            "manual", "model_0.pt", 1, "loaded"
        )  # fmt: skip

        protocol.write_state(run, "auto")
        core.follower._read_state()
        core.apply_ready_weights()
        latest = protocol.read_checkpoint_dict(run.latest_checkpoint)["actor_state_dict"]
        weights = core.policy.model.state_dict()
        assert all(torch.equal(weights[k], latest[k]) for k in latest)
        core.follower._write_status()
        status = protocol.read_status(run)
        assert (status["mode"], status["checkpoint"], status["epoch"]) == ("auto", "latest.pth", ITERATIONS)
    finally:
        protocol.state_file(run).unlink(missing_ok=True)
        protocol.status_file(run).unlink(missing_ok=True)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.*is deprecated:DeprecationWarning")
def test_export_of_an_rsl_rl_run_acts_as_rsl_rl_inference_does(runs):
    np = pytest.importorskip("numpy")
    onnxruntime = pytest.importorskip("onnxruntime")
    from omegaconf import OmegaConf
    from rsl_rl.runners import OnPolicyRunner
    from tensordict import TensorDict

    from isaacgymenvs.errors import UserError
    from isaacgymenvs.export import export_checkpoint
    from isaacgymenvs.trainer.rsl_rl_env import RslRlVecEnv

    run, _ = runs["rsl_rl"]
    core, _, cfg = player_core(run)
    for checkpoint in (run.latest_checkpoint, run.nn / "model_0.pt"):
        files = export_checkpoint(run, checkpoint)
        assert [p.name for p in files] == [
            f"{checkpoint.stem}.onnx",
            f"{checkpoint.stem}.pt",
            f"{checkpoint.stem}.json",
        ]
        meta = json.loads(files.description.read_text())
        assert (meta["library"], meta["task"], meta["outputs"]) == ("rsl_rl", "Cartpole", {"actions": ["batch", 1]})
        assert "EmpiricalNormalization" in meta["observations"]["normalizer"]
        obs_clip, action_clip = meta["observations"]["clip"][1], meta["actions"]["clip"][1]

        runner = OnPolicyRunner(RslRlVecEnv(core.task, {}), OmegaConf.to_container(cfg.train.runner), None, "cpu")
        runner.load(str(checkpoint))
        inference = runner.get_inference_policy("cpu")
        obs = torch.randn(256, core.task.num_obs, generator=torch.Generator().manual_seed(1)) * 4
        with torch.inference_mode():  # the player's pipeline: the task's observation clip, the mean, the action clip
            clipped = torch.clamp(obs, -obs_clip, obs_clip)
            expected = torch.clamp(
                inference(TensorDict({"policy": clipped}, batch_size=[256])), -action_clip, action_clip
            )
        assert expected.abs().max() > 0
        session = onnxruntime.InferenceSession(str(files.onnx), providers=["CPUExecutionProvider"])
        from_onnx = session.run(["actions"], {"obs": obs.numpy().astype(np.float32)})[0]
        assert np.abs(from_onnx - expected.numpy()).max() <= 1e-5
        with torch.no_grad():
            from_script = torch.jit.load(str(files.torchscript))(obs)
        assert float((from_script - expected).abs().max()) <= 1e-5

    from isaacgymenvs.panel.catalog import export_selected

    ok, message = export_selected(run, f"nn/model_{ITERATIONS - 1}.pt")  # the panels' Export button
    assert ok and (run.root / "exported" / f"model_{ITERATIONS - 1}.onnx").is_file(), message
    with pytest.raises(UserError, match=r"^export_values=True is offered for rl_games runs only; run .* rsl_rl\.$"):
        export_checkpoint(run, run.latest_checkpoint, with_values=True)
