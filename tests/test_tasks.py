"""Every registered task builds, resets and steps: shapes, finiteness, resets and time-outs."""

from __future__ import annotations

import pytest
import torch

from isaacgymenvs.tasks import TASKS, make_task

EXPECTED = {"Ant": (60, 8), "Anymal": (48, 12), "Humanoid": (108, 21), "Cartpole": (4, 1)}


@pytest.mark.parametrize("name", sorted(TASKS))
@pytest.mark.parametrize("policy", ["zero", "random"])
def test_task_steps(make_cfg, name, policy):
    task = make_task(make_cfg(name, "num_envs=16"))
    num_obs, num_actions = EXPECTED[name]
    assert (task.num_obs, task.num_actions) == (num_obs, num_actions)
    assert task.observation_space.shape == (num_obs,) and task.action_space.shape == (num_actions,)
    obs = task.reset()["obs"]
    assert obs.shape == (16, num_obs) and obs.dtype == torch.float32
    for _ in range(60):
        actions = torch.zeros(16, num_actions) if policy == "zero" else torch.rand(16, num_actions) * 4 - 2
        obs_dict, rew, done, extras = task.step(actions)
        obs = obs_dict["obs"]
        assert obs.shape == (16, num_obs) and rew.shape == (16,) and done.shape == (16,)
        assert done.dtype == torch.bool and extras["time_outs"].shape == (16,)
        assert torch.isfinite(obs).all() and torch.isfinite(rew).all()
        assert obs.abs().max() <= task.clip_obs
    # Actions are clipped to clipActions before they reach the motors.
    assert task.actions.abs().max() <= task.clip_actions


@pytest.mark.parametrize("name", sorted(TASKS))
def test_time_out_is_reported_and_resets(make_cfg, name):
    task = make_task(make_cfg(name, "num_envs=4", "task.env.episodeLength=6"))
    task.reset()
    for step in range(1, 6):
        _, _, done, extras = task.step(torch.zeros(4, task.num_actions))
        if step < 5:
            assert not extras["time_outs"].any()
    # At progress == episodeLength - 1 every env that did not fail times out and is reset.
    assert torch.equal(done, torch.ones(4, dtype=torch.bool))
    assert extras["time_outs"].all()
    assert (task.progress_buf == 0).all()


def test_ant_falls_over_terminates(make_cfg):
    task = make_task(make_cfg("Ant", "num_envs=2"))
    task.reset()
    qpos = torch.tensor(task.model.qpos0, dtype=torch.float32).repeat(2, 1)
    qpos[:, 2] = 0.2  # torso below terminationHeight
    task.physics.reset(torch.ones(2, dtype=torch.bool), qpos, torch.zeros(2, task.model.nv))
    _, rew, done, extras = task.step(torch.zeros(2, 8))
    assert done.all() and not extras["time_outs"].any()
    assert torch.allclose(rew, torch.full((2,), -2.0))
    # The returned observation is the first of the new episode: torso back at start height, and
    # nothing simulated yet, so the foot sensors and the previous actions read zero.
    assert (task.obs_buf[:, 0] > 0.35).all()
    assert (task.obs_buf[:, 28:60] == 0).all()


def test_finished_episodes_sum_the_weighted_terms(make_cfg):
    """extras['episode_terms'] sums each weighted term over the episodes that ended, per step."""
    task = make_task(make_cfg("Cartpole", "num_envs=3", "task.env.episodeLength=6"))
    task.reset()
    names = task.term_names
    total_reward = torch.zeros(3)
    for _ in range(5):
        _, rew, done, extras = task.step(torch.zeros(3, 1))
        total_reward += rew
        finished = extras["episode_terms"]
        assert finished.names == names
    # A zero-force cartpole started near upright survives 5 steps: every env times out together.
    assert done.all() and int(finished.count) == 3
    alive = names.index("alive")
    weight = task.reward_weights["alive"]
    assert float(finished.term_sums[alive]) == pytest.approx(3 * 5 * weight)
    # The weighted terms add up to the rewards the envs received.
    assert float(finished.term_sums.sum()) == pytest.approx(float(total_reward.sum()), rel=1e-5)
    # The returns were cleared with the reset, and a step with no finished episode reports zero.
    assert (task.episode_sums == 0).all()
    _, _, done, extras = task.step(torch.zeros(3, 1))
    assert not done.any() and int(extras["episode_terms"].count) == 0
    assert (extras["episode_terms"].term_sums == 0).all()


def test_reset_randomisation_within_bounds(make_cfg):
    task = make_task(make_cfg("Ant", "num_envs=64"))
    task.reset()
    dof = torch.from_numpy(task.physics._qpos[:, 7:]).float()
    default = task.start_qpos[7:]
    assert ((dof - default).abs() <= 0.2 + 1e-5).all()
    assert (dof >= task.dof_lower - 1e-5).all() and (dof <= task.dof_upper + 1e-5).all()
    assert dof.std(0).min() > 0.01  # really randomised per env
    vel = torch.from_numpy(task.physics._qvel).float()
    assert (vel[:, :6] == 0).all() and (vel[:, 6:].abs() <= 0.1 + 1e-6).all()


@pytest.mark.parametrize("name", sorted(TASKS))
def test_seeded_rollouts_are_reproducible(make_cfg, name):
    def rollout(seed):
        torch.manual_seed(123)  # same action sequence in every rollout
        task = make_task(make_cfg(name, "num_envs=8", f"seed={seed}"))
        obs = [task.reset()["obs"]]
        for _ in range(40):
            obs.append(task.step(torch.rand(8, task.num_actions) * 2 - 1)[0]["obs"])
        return torch.stack(obs)

    first, second, other = rollout(3), rollout(3), rollout(4)
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


@pytest.mark.slow
def test_compiled_task_math_matches_eager(make_cfg):
    """compile_task (on by default for CUDA) must not change what the task computes."""

    def rollout(compile_task):
        torch.manual_seed(0)
        task = make_task(make_cfg("Ant", "num_envs=32", f"compile_task={compile_task}"))
        obs, rewards = [task.reset()["obs"]], []
        if compile_task:  # compiled in the background from the first reset: use it from the first step
            assert task.math_compiler.wait(600) and task.math_compiler.error is None, task.math_compiler.error
        for _ in range(20):
            o, r, _, _ = task.step(torch.rand(32, 8) * 2 - 1)
            obs.append(o["obs"])
            rewards.append(r)
        assert compile_task == ("_features" in vars(task))  # the compiled function replaced the method
        return torch.stack(obs), torch.stack(rewards)

    eager, compiled = rollout(False), rollout(True)
    assert torch.allclose(eager[0], compiled[0], atol=1e-5) and torch.allclose(eager[1], compiled[1], atol=1e-5)


def test_task_math_compiles_in_the_background_while_the_task_steps_eagerly(make_cfg, monkeypatch, capsys):
    """torch.compile took ~7 s of a warm H200 start-up before the first epoch: the task now steps
    eagerly while a thread compiles, and the compiled functions replace the eager ones between two
    steps; a failed compile leaves the eager math and says so."""
    import threading

    from isaacgymenvs.tasks import compile_math

    release, compiled_calls = threading.Event(), []

    def slow_compile(fn, **options):
        def compiled(*args):
            compiled_calls.append(fn.__name__)
            return fn(*args)

        assert release.wait(30) and options == {"dynamic": False}
        return compiled

    monkeypatch.setattr(compile_math.torch, "compile", slow_compile)
    task = make_task(make_cfg("Cartpole", "num_envs=8", "compile_task=True"))
    task.reset()
    for _ in range(3):  # still compiling: the eager math steps
        task.step(torch.zeros(8, 1))
    assert "_features" not in vars(task) and compiled_calls == []
    release.set()
    assert task.math_compiler.wait(30)
    assert compiled_calls == ["_features", "_score", "_observe"]  # the warm-up call, in the thread
    task.step(torch.zeros(8, 1))
    assert task.math_compiler is None and vars(task)["_features"].__name__ == "compiled"
    # one step, compiled; no env reset, so the features scored are the ones observed
    assert not task.reset_buf.any() and compiled_calls[3:] == ["_features", "_score", "_observe"]
    assert "Task math compiled in " in capsys.readouterr().out

    def broken_compile(fn, **options):
        raise RuntimeError("no C++ compiler\nmore lines")

    monkeypatch.setattr(compile_math.torch, "compile", broken_compile)
    task = make_task(make_cfg("Cartpole", "num_envs=8", "compile_task=True"))
    task.reset()
    assert task.math_compiler.wait(30)
    task.step(torch.zeros(8, 1))
    assert task.math_compiler is None and "_features" not in vars(task)
    out = capsys.readouterr().out
    assert "Warning: compiling the task math failed (RuntimeError: no C++ compiler); it stays eager" in out


@pytest.mark.slow
def test_a_run_that_ends_while_the_task_math_compiles_exits_cleanly(tmp_path):
    """Exiting while inductor compiled aborted in C++ ('terminate called without an active exception')."""
    from tests.conftest import run_cli

    result = run_cli("task=Cartpole", "num_envs=16", "max_iterations=2", "compile_task=True", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr[-2000:]
    assert "Waiting for the task-math compile to finish before exiting" in result.stdout or (
        "Task math compiled in" in result.stdout
    )


def test_the_trainer_compiles_the_task_math_only_after_the_graphed_agent_captured_on_cuda(make_cfg, monkeypatch):
    """Inductor compiling beside a CUDA-graph capture invalidated the capture on an H200: with the
    graphed agent on CUDA the compile is deferred until every step is captured (CPU: at once)."""
    from types import SimpleNamespace

    from isaacgymenvs.tasks import compile_math
    from isaacgymenvs.trainer.graphed.agent import GraphedA2CAgent
    from isaacgymenvs.trainer.observers import CompileAfterCapture

    monkeypatch.setattr(compile_math.torch, "compile", lambda fn, **options: fn)
    task = make_task(make_cfg("Cartpole", "num_envs=8", "compile_task=True"))
    agent = object.__new__(GraphedA2CAgent)  # only what the observer reads of a graphed agent on CUDA
    agent.vec_env, agent.ppo_device, agent.capture_seconds = SimpleNamespace(task=task), "cuda:0", 0.0
    observer = CompileAfterCapture()
    observer.after_init(agent)
    task.reset()
    observer.after_steps()  # epoch 1, nothing captured yet
    assert not task.math_compiler.running and not task.math_compiler.wait(0.2)
    agent.capture_seconds = 2.05  # every step is a graph now
    observer.after_steps()
    assert task.math_compiler.wait(30) and task.math_compiler.error is None

    cpu_task = make_task(make_cfg("Cartpole", "num_envs=8", "compile_task=True"))
    agent.vec_env, agent.ppo_device = SimpleNamespace(task=cpu_task), "cpu"
    CompileAfterCapture().after_init(agent)
    cpu_task.reset()  # nothing to capture on the CPU: compiled from the first reset
    assert cpu_task.math_compiler.wait(30)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_a_cpu_step_computes_features_once_unless_an_env_resets_and_observes_the_state_after_resets(make_cfg, name):
    task = make_task(make_cfg(name, "num_envs=4", "task.env.episodeLength=6", "sim_device=cpu", "rl_device=cpu"))
    task.reset()
    features, calls = task._features, []
    task._features = lambda state: calls.append(1) or features(state)
    for step in range(1, 6):  # the 5th step times every env out (episodeLength - 1)
        calls.clear()
        obs = task.step(torch.zeros(4, task.num_actions))[0]["obs"]
        reset = bool(task.reset_buf.any())
        assert len(calls) == (2 if reset else 1), (step, reset, len(calls))
        expected = torch.clamp(task._observe(features(task.physics.state())), -task.clip_obs, task.clip_obs)
        assert torch.equal(obs, expected), step  # the observation is of the state after the resets
    assert reset
