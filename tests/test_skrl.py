"""library=skrl: a short training publishes through our protocol with skrl's own agent files beside it,
the player and export act exactly as skrl's own agent does, a checkpoint of the other library (either
way) is one sentence with the old policy kept, and a resume continues the iteration count."""

from __future__ import annotations

import json
import re
import sys

import pytest
import torch

from isaacgymenvs import protocol
from tests.conftest import REPO, Lines, run_cli, start_cli

pytest.importorskip("skrl", reason="skrl is not installed (pip install -e '.[skrl]')")

ITERATIONS = 4
ROLLOUTS = 16  # cfg/train/CartpolePPO_skrl.yaml
ENVS = 32
# skrl's own agent_<timestep>.pt every 2 iterations
SKRL_FILES = f"train.agent.experiment.checkpoint_interval={2 * ROLLOUTS}"


def progress_epochs(stdout: str, total: int) -> list[int]:
    found = re.findall(rf"^epoch (\d+)/{total} \| [\d,]+ env steps/s \| mean episode reward \S+", stdout, re.M)
    return [int(epoch) for epoch in found]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An skrl and an rl_games Cartpole run, a few iterations each, trained by the real CLI."""
    parent = tmp_path_factory.mktemp("libraries")
    outputs = {}
    for library in ("skrl", "rl_games"):
        extra = [SKRL_FILES] if library == "skrl" else []
        result = run_cli("task=Cartpole", f"library={library}", f"num_envs={ENVS}", f"max_iterations={ITERATIONS}",
                         "checkpoint_save_freq=2", "sim_device=cpu", "rl_device=cpu", f"experiment={library}",
                         *extra, cwd=parent)  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        outputs[library] = result
    found = [protocol.RunDir(r) for r in (parent / "runs").iterdir()]
    runs = {lib: (next(r for r in found if r.name.startswith(f"{lib}_")), outputs[lib]) for lib in outputs}
    runs["parent"] = parent
    return runs


@pytest.mark.slow
def test_an_skrl_training_publishes_latest_with_its_library_and_counts_iterations(runs):
    run, result = runs["skrl"]
    assert progress_epochs(result.stdout, ITERATIONS) == list(range(1, ITERATIONS + 1))
    assert "[skrl:INFO]" not in result.stdout + result.stderr  # our lines only
    manifest = json.loads(run.latest_manifest.read_text())
    assert (manifest["library"], manifest["task"], manifest["epoch"]) == ("skrl", "Cartpole", ITERATIONS)
    assert manifest["frame"] == ITERATIONS * ROLLOUTS * ENVS  # max_iterations counts PPO iterations
    ckpt = protocol.read_checkpoint_dict(run.latest_checkpoint)  # weights_only: plain types only
    assert {"policy", "value", "optimizer", "observation_preprocessor", "value_preprocessor"} <= set(ckpt)
    assert ckpt["metadata"]["library"] == "skrl"
    assert {p.name for p in run.nn.glob("*.pt")} == {"agent_32.pt", "agent_64.pt", "best_agent.pt"}
    assert not (run.root / "checkpoints").exists() and not list(run.root.glob("*/checkpoints"))
    assert any(run.summaries.iterdir()) and len(run.metrics_file.read_text().splitlines()) == ITERATIONS + 1
    assert f"library=skrl checkpoint=runs/{run.name}/nn/latest.pth" in result.stdout  # the resume hint
    info = protocol.load_checkpoint(run.nn / "agent_32.pt", protocol.CheckpointFit("Cartpole", 4, 1, library="skrl"))
    assert info.epoch == 2  # timestep 32 = 2 iterations of 16 rollout steps


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


def skrl_agent(cfg, task, checkpoint):
    """skrl's own PPO agent (not our subclass) built from the run's config, loaded by skrl's Agent.load."""
    from omegaconf import OmegaConf
    from skrl.agents.torch.ppo import PPO

    from isaacgymenvs import skrl_config

    models, agent = OmegaConf.to_container(cfg.train.models), OmegaConf.to_container(cfg.train.agent)
    spaces = {"observation_space": task.observation_space, "action_space": task.action_space}
    networks = skrl_config.agent_models(models, *spaces.values(), "cpu")
    ppo = PPO(models=networks, device="cpu", cfg=skrl_config.ppo_config(agent, task.observation_space, "cpu"), **spaces)
    ppo.load(str(checkpoint))
    return ppo


def skrl_mean_actions(agent, obs: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return agent.act(obs, None, timestep=0, timesteps=1)[1]["mean_actions"]


@pytest.mark.slow
def test_the_player_acts_as_skrl_inference_does(runs):
    run, _ = runs["skrl"]
    core, _, cfg = player_core(run)
    load_now(core)
    assert core.policy.library == "skrl" and core.policy.loaded
    agent = skrl_agent(cfg, core.task, run.latest_checkpoint)
    obs = torch.randn(64, core.task.num_obs, generator=torch.Generator().manual_seed(0)) * 3
    expected = torch.clamp(skrl_mean_actions(agent, obs), -1.0, 1.0)
    assert torch.equal(core.policy.act(obs), expected)
    assert core.policy.act(obs).abs().max() > 0  # a trained policy, not the zeros of an empty one


@pytest.mark.slow
@pytest.mark.parametrize(("player", "other"), [("skrl", "rl_games"), ("rl_games", "skrl")])
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


def test_a_missing_skrl_is_one_sentence_and_exit_2(tmp_path, monkeypatch, capsys):
    from isaacgymenvs.cli import main

    monkeypatch.setitem(sys.modules, "skrl", None)  # import skrl now raises ImportError
    code = main(["task=Cartpole", "library=skrl", "sim_device=cpu", f"train_dir={tmp_path / 'runs'}"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == "Error: library=skrl needs skrl, which is not installed; pip install -e '.[skrl]'."
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_the_catalogue_lists_skrl_files_with_their_epochs_and_marks_the_other_library(runs):
    import shutil

    from isaacgymenvs.panel.catalog import CheckpointCatalog, run_info

    run, _ = runs["skrl"]
    foreign = run.nn / "last_Cartpole_ep_2_rew_10.0.pth"  # an rl_games periodic file, in the skrl run
    shutil.copy(runs["rl_games"][0].latest_checkpoint, foreign)
    (run.nn / ".agent_96.pt.tmp-1-1").write_bytes(b"")  # a writer's temp file is never listed
    try:
        entries = {e.name: e for e in CheckpointCatalog(run, run_info(run)).scan()}
    finally:
        foreign.unlink()
        (run.nn / ".agent_96.pt.tmp-1-1").unlink()
    assert set(entries) == {"latest.pth", "agent_32.pt", "agent_64.pt", "best_agent.pt", foreign.name}
    assert [entries[n].epoch for n in ("agent_32.pt", "agent_64.pt", "latest.pth")] == [2, 4, ITERATIONS]
    assert entries["best_agent.pt"].epoch in (2, 4)
    assert all(entries[n].problem is None for n in ("latest.pth", "agent_32.pt", "agent_64.pt", "best_agent.pt"))
    assert entries["agent_32.pt"].relative == "nn/agent_32.pt"
    refused = f"{foreign.name} is an rl_games checkpoint and this run's policy is an skrl one"
    assert entries[foreign.name].problem == refused


@pytest.mark.slow
def test_manual_loads_an_skrl_agent_file_and_auto_follows_latest_again(runs):
    run, _ = runs["skrl"]
    core, _, _ = player_core(run)
    load_now(core)
    try:
        protocol.write_state(run, "manual", "nn/agent_32.pt")  # what a panel's Load Selected writes
        core.follower._read_state()
        core.apply_ready_weights()
        saved = protocol.read_checkpoint_dict(run.nn / "agent_32.pt")["policy"]
        weights = core.policy.model.policy.state_dict()
        assert all(torch.equal(weights[k], saved[k]) for k in saved)
        core.follower._write_status()
        status = protocol.read_status(run)
        assert (status["mode"], status["checkpoint"], status["epoch"], status["phase"]) == (
            "manual", "agent_32.pt", 2, "loaded"
        )  # fmt: skip

        protocol.write_state(run, "auto")
        core.follower._read_state()
        core.apply_ready_weights()
        latest = protocol.read_checkpoint_dict(run.latest_checkpoint)["policy"]
        weights = core.policy.model.policy.state_dict()
        assert all(torch.equal(weights[k], latest[k]) for k in latest)
    finally:
        protocol.state_file(run).unlink(missing_ok=True)
        protocol.status_file(run).unlink(missing_ok=True)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.*is deprecated:DeprecationWarning")
def test_export_of_an_skrl_run_acts_as_skrl_inference_does(runs):
    np = pytest.importorskip("numpy")
    onnxruntime = pytest.importorskip("onnxruntime")
    from isaacgymenvs.errors import UserError
    from isaacgymenvs.export import export_checkpoint

    run, _ = runs["skrl"]
    core, _, cfg = player_core(run)
    files = export_checkpoint(run, run.latest_checkpoint)
    assert [p.name for p in files] == ["latest.onnx", "latest.pt", "latest.json"]
    meta = json.loads(files.description.read_text())
    assert (meta["library"], meta["task"], meta["outputs"]) == ("skrl", "Cartpole", {"actions": ["batch", 1]})
    assert "RunningStandardScaler" in meta["observations"]["normalizer"]
    obs_clip, action_clip = meta["observations"]["clip"][1], meta["actions"]["clip"][1]

    agent = skrl_agent(cfg, core.task, run.latest_checkpoint)
    obs = torch.randn(256, core.task.num_obs, generator=torch.Generator().manual_seed(1)) * 4
    clipped = torch.clamp(obs, -obs_clip, obs_clip)  # the task's observation clip, then skrl, then the action clip
    expected = torch.clamp(skrl_mean_actions(agent, clipped), -action_clip, action_clip)
    assert expected.abs().max() > 0
    session = onnxruntime.InferenceSession(str(files.onnx), providers=["CPUExecutionProvider"])
    from_onnx = session.run(["actions"], {"obs": obs.numpy().astype(np.float32)})[0]
    assert np.abs(from_onnx - expected.numpy()).max() <= 1e-5
    with torch.no_grad():
        from_script = torch.jit.load(str(files.torchscript))(obs)
    assert float((from_script - expected).abs().max()) <= 1e-5
    with pytest.raises(UserError, match=r"^export_values=True is offered for rl_games runs only; run .* skrl\.$"):
        export_checkpoint(run, run.latest_checkpoint, with_values=True)


@pytest.mark.slow
def test_resume_continues_the_iterations_and_skrl_s_timesteps(runs):
    run, _ = runs["skrl"]
    total = ITERATIONS + 2
    result = run_cli("task=Cartpole", "library=skrl", f"num_envs={ENVS}", f"max_iterations={total}",
                     "checkpoint_save_freq=2", "sim_device=cpu", "rl_device=cpu", "experiment=resumed",
                     f"checkpoint={run.latest_checkpoint}", SKRL_FILES, cwd=runs["parent"])  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert progress_epochs(result.stdout, total) == [ITERATIONS + 1, total]
    resumed = protocol.RunDir(next((runs["parent"] / "runs").glob("resumed_*")))
    assert json.loads(resumed.latest_manifest.read_text())["epoch"] == total
    assert {p.name for p in resumed.nn.glob("agent_*.pt")} == {f"agent_{total * ROLLOUTS}.pt"}


@pytest.mark.slow
def test_a_resume_with_nothing_left_or_of_the_other_library_is_one_sentence(runs, capsys):
    from isaacgymenvs.cli import main

    train_dir = f"train_dir={runs['parent'] / 'refused'}"
    args = ["task=Cartpole", "library=skrl", "sim_device=cpu", train_dir]
    assert main([*args, f"max_iterations={ITERATIONS}", f"checkpoint={runs['skrl'][0].latest_checkpoint}"]) == 2
    done = capsys.readouterr().err
    assert f"is at iteration {ITERATIONS} and max_iterations={ITERATIONS} counts all iterations" in done
    assert main([*args, f"checkpoint={runs['rl_games'][0].latest_checkpoint}"]) == 2
    foreign = capsys.readouterr().err
    assert "is an rl_games checkpoint and this run's policy is an skrl one" in foreign
    assert len((done + foreign).strip().splitlines()) == 2  # one sentence each, no traceback
    assert not (runs["parent"] / "refused").exists()  # refused before a run directory is written


@pytest.mark.slow
def test_sigterm_publishes_the_last_finished_iteration(tmp_path):
    import signal

    trainer = start_cli("task=Cartpole", "library=skrl", f"num_envs={ENVS}", "max_iterations=100000",
                        "checkpoint_save_freq=1000", "sim_device=cpu", "rl_device=cpu", cwd=tmp_path)  # fmt: skip
    lines = Lines(trainer)
    lines.wait_for("epoch 3/100000", 120)
    trainer.send_signal(signal.SIGTERM)  # what `kill`, SLURM preemption and container stops send
    assert trainer.wait(timeout=60) == 128 + signal.SIGTERM
    output = lines.rest()
    last = progress_epochs(output, 100000)[-1]
    (manifest,) = tmp_path.glob("runs/Cartpole_*/nn/latest.json")
    assert json.loads(manifest.read_text())["epoch"] == last  # no publish was due (freq 1000): this is the last one
    assert "Published latest.pth 1 times" in output and "Traceback" not in output


def test_skrl_checkpoints_are_told_apart_by_their_keys():
    from isaacgymenvs.protocol.policy_weights import checkpoint_library, model_sizes, model_weights

    policy = {"net_container.0.weight": torch.zeros(32, 4), "log_std_parameter": torch.zeros(1)}
    scaler = {"running_mean": torch.zeros(4), "running_variance": torch.ones(4), "current_count": torch.ones(())}
    ckpt = {"policy": policy, "value": {}, "observation_preprocessor": scaler}  # skrl's own file, no metadata
    assert checkpoint_library(ckpt) == "skrl"
    weights = model_weights(ckpt, "agent_16.pt", "skrl")
    assert set(weights) == {f"policy.{k}" for k in policy} | {f"observation_preprocessor.{k}" for k in scaler}
    assert model_sizes(weights, "agent_16.pt", "skrl") == (4, 1)
    with pytest.raises(protocol.CheckpointRejected, match="is an skrl checkpoint and this run's policy is an rsl_rl"):
        model_weights(ckpt, "agent_16.pt", "rsl_rl")


def test_mini_batches_cpu_applies_only_when_training_on_the_cpu():
    from omegaconf import OmegaConf

    from isaacgymenvs import skrl_config

    agent = OmegaConf.to_container(OmegaConf.load(REPO / "cfg" / "train" / "AntPPO_skrl.yaml").agent)
    space = skrl_config.spaces(60, 8)[0]
    assert skrl_config.ppo_config(agent, space, "cpu").mini_batches == agent["mini_batches_cpu"] == 1
    assert skrl_config.ppo_config(agent, space, "cuda:0").mini_batches == agent["mini_batches"] == 2


@pytest.mark.parametrize(
    ("override", "sentence"),
    [
        ("+train.agent.bogus=1", "train.agent is not skrl's PPO config"),
        ("train.models.policy.class=Foo", "train.models.policy.class=Foo is not offered"),
        ("train.agent.experiment.checkpoint_interval=auto", "train.agent.experiment.checkpoint_interval=auto must be"),
    ],
)
def test_a_train_config_skrl_cannot_use_is_one_sentence_before_any_file(tmp_path, capsys, override, sentence):
    from isaacgymenvs.cli import main

    code = main(["task=Cartpole", "library=skrl", "sim_device=cpu", f"train_dir={tmp_path / 'runs'}", override])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"Error: {sentence}") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("library", "train", "picks"), [("skrl", "AntPPO", "AntPPO_skrl"), ("rl_games", "AntPPO_skrl", "AntPPO")]
)
def test_a_train_config_of_another_library_names_the_file_library_picks(library, train, picks):
    from isaacgymenvs.config import load_config
    from isaacgymenvs.errors import UserError

    wrong = "rl_games" if library == "skrl" else "skrl"
    with pytest.raises(UserError) as refused:
        load_config(["task=Ant", f"library={library}", f"train={train}", "sim_device=cpu"])
    assert str(refused.value) == (
        f"library={library} but the train config is for {wrong}; drop train= "
        f"(library={library} picks cfg/train/<Task>PPO{picks.removeprefix('AntPPO')}.yaml)."
    )
