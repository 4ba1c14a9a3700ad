"""The graphed PPO agent against rl_games' stock `a2c_continuous`, on the CPU (same code, no capture).

From the same weights, env seeds and torch RNG, an epoch of each agent must produce the same
rollout (observations, actions, values, log-probs), the same GAE advantages and returns, the same
losses and KL, the same adaptive learning rate and the same new weights and normalisers.
Tolerance: 1e-5 relative + 1e-6 absolute (float32; the only differences are the order of a few
reductions and the learning rate held as a float32 tensor instead of a Python float).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rl_games.torch_runner import Runner

from isaacgymenvs.protocol import RunDir
from isaacgymenvs.tasks import make_task
from isaacgymenvs.trainer import graphed
from isaacgymenvs.trainer.graphed.stats import DeviceAverageMeter
from isaacgymenvs.trainer.observers import MultiObserver, RewardTermsObserver
from isaacgymenvs.trainer.progress import parse_output
from isaacgymenvs.trainer.rlgames_config import rlgames_params
from isaacgymenvs.trainer.rlgames_env import register_task
from tests.conftest import run_cli

RTOL, ATOL = 1e-5, 1e-6


def build_agent(cfg, run: RunDir, algo: str, wrap_config=lambda config: config):
    """rl_games' agent `algo` on cfg's task; `wrap_config` may replace its config dict (two_rank_worker.py)."""
    register_task(lambda: make_task(cfg))
    runner = Runner(algo_observer=MultiObserver([RewardTermsObserver()]))  # the trainer's, minus files
    graphed.register(runner)
    runner.load(rlgames_params(cfg, run))
    runner.params["config"] = wrap_config(runner.params["config"])
    return runner.algo_factory.create(algo, base_name="run", params=runner.params)


C = "train.params.config."
# rl_games options our shipped configs do not set, each a variant the graphed agent must run as stock does
VARIANTS = {
    "Ant": [],
    "Cartpole": [],
    "Cartpole-standard": [f"+{C}schedule_type=standard"],  # the adaptive rate once per mini-epoch
    "Cartpole-linear": [f"{C}lr_schedule=linear"],
    "Cartpole-linear-entropy": [f"{C}lr_schedule=linear", f"+{C}schedule_entropy=True", f"{C}entropy_coef=0.01"],
    "Cartpole-constant": [f"{C}lr_schedule=null"],
    "Cartpole-no-value-norm": [f"{C}normalize_value=False"],
    "Cartpole-no-input-norm": [f"{C}normalize_input=False"],
    "Cartpole-no-clip-value": [f"{C}clip_value=False"],
    "Cartpole-no-bounds": [f"{C}bounds_loss_coef=0"],
    "Cartpole-e-clip": [f"{C}e_clip=0.1"],
    "Cartpole-mini-epochs": [f"{C}mini_epochs=2", f"{C}minibatch_size=64"],
    "Cartpole-no-advantage-norm": [f"{C}normalize_advantage=False"],
    "Cartpole-no-truncate": [f"{C}truncate_grads=False"],
    "Cartpole-weight-decay": [f"+{C}weight_decay=0.01"],
    "Cartpole-minibatch-per-env": [f"~{C}minibatch_size", f"+{C}minibatch_size_per_env=4"],  # 32 envs x 4
}


@pytest.fixture(params=list(VARIANTS))
def agents(request, make_cfg, tmp_path):
    """(stock, graphed) agents with identical weights and envs; Cartpole clips gradients, Ant does not;
    the other variants each change one rl_games option."""
    task = request.param.partition("-")[0]
    cfg = make_cfg(task, "num_envs=32", f"{C}minibatch_size=128", "seed=3", *VARIANTS[request.param])
    return agent_pair(cfg, tmp_path)


def agent_pair(cfg, tmp_path):
    """Stock a2c_continuous and the graphed agent on two copies of cfg's task, with the same weights, reset."""
    stock = build_agent(cfg, RunDir(tmp_path / "stock"), "a2c_continuous")
    new = build_agent(cfg, RunDir(tmp_path / "new"), graphed.ALGO_NAME)
    new.model.load_state_dict(stock.model.state_dict())
    for agent in (stock, new):
        agent.init_tensors()
        agent.obs = agent.env_reset()
    return stock, new


def assert_close(a, b, what: str) -> None:
    a, b = torch.as_tensor(a).float(), torch.as_tensor(b).float()
    assert a.shape == b.shape, f"{what}: shapes {a.shape} vs {b.shape}"
    torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL, msg=lambda m: f"{what}: {m}")


def test_one_rollout_matches_stock(agents):
    stock, new = agents
    torch.manual_seed(11)
    with torch.no_grad():
        batch = stock.play_steps()
    torch.manual_seed(11)
    new.play_steps()
    for stock_key, new_key in [("obses", "obses"), ("actions", "actions"), ("neglogpacs", "neglogpacs"),
                               ("values", "values"), ("mus", "mus"), ("sigmas", "sigmas")]:  # fmt: skip
        flat = new.buffers[new_key].transpose(0, 1).reshape(batch[stock_key].shape)
        assert_close(batch[stock_key], flat, stock_key)
    assert_close(stock.experience_buffer.tensor_dict["rewards"], new.buffers["rewards"], "shaped rewards")
    # Advantages and returns (GAE, value normalisation, advantage normalisation).
    stock.set_train()
    stock.prepare_dataset(batch)
    new._prepare()
    for key in ("returns", "advantages", "old_values", "old_logp_actions", "obs", "actions", "mu", "sigma"):
        assert_close(stock.dataset.values_dict[key], new.ds[key], key)
    assert new.game_rewards.current_size == stock.game_rewards.current_size
    if stock.game_rewards.current_size:
        assert_close(stock.game_rewards.get_mean(), new.game_rewards.get_mean(), "mean episode return")
        assert_close(stock.game_lengths.get_mean(), new.game_lengths.get_mean(), "mean episode length")


def epoch_side_by_side(stock, new, epoch: int) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """One epoch of each agent from the same torch seed: (what, stock's mean, the graphed agent's
    mean) of its losses, entropy and KL (on the CPU; the GPU test uses it too)."""
    results = []
    for agent in (stock, new):
        torch.manual_seed(100 + epoch)
        agent.epoch_num += 1
        results.append(agent.train_epoch())
    (_, _, _, _, sa, sc, sb, se, skl, _, _), (_, _, _, _, na, nc, nb, ne, nkl, _, _) = results
    pairs = [("a_loss", sa, na), ("c_loss", sc, nc), ("b_loss", sb, nb), ("entropy", se, ne), ("kl", skl, nkl)]
    return [(what, torch_mean_list(s).detach().cpu(), torch_mean_list(n).detach().cpu()) for what, s, n in pairs]


def test_training_epochs_match_stock(agents):
    stock, new = agents
    for epoch in range(3):
        for what, s, n in epoch_side_by_side(stock, new, epoch):
            assert_close(s, n, f"epoch {epoch}: {what}")
        assert new.last_lr == pytest.approx(stock.last_lr, rel=1e-5), f"epoch {epoch}: learning rate"
    new_state, stock_state = new.model.state_dict(), stock.model.state_dict()
    assert new_state.keys() == stock_state.keys()
    for key in stock_state:
        assert_close(stock_state[key], new_state[key], f"weights {key}")
    # The schedule moved the rate (else the test would not check it), and the entropy coefficient.
    if stock.config.get("lr_schedule") in ("adaptive", "linear"):
        assert stock.last_lr != pytest.approx(float(stock.config["learning_rate"]))
    assert new.entropy_coef == pytest.approx(stock.entropy_coef)


def torch_mean_list(values: list) -> torch.Tensor:
    return (
        torch.mean(torch.stack([torch.as_tensor(v).float().mean() for v in values]).flatten())
        if values
        else torch.zeros(())
    )


def test_checkpoint_state_loads_into_the_stock_agent_and_back(agents):
    stock, new = agents
    torch.manual_seed(5)
    new.epoch_num = 1
    new.train_epoch()
    state = new.get_full_state_weights()
    for group in state["optimizer"]["param_groups"]:
        assert isinstance(group["lr"], float) and group["capturable"] is False
    stock.set_full_state_weights(state)
    assert all(torch.equal(v, stock.model.state_dict()[k]) for k, v in state["model"].items())
    new.set_full_state_weights(stock.get_full_state_weights())
    assert float(new._lr) == pytest.approx(float(new.last_lr))


@pytest.mark.parametrize("counts", [[0, 3, 0, 250, 7], [1, 1, 1], [120, 0, 5]])
def test_device_meter_matches_rl_games_average_meter(counts):
    from rl_games.algos_torch.torch_ext import AverageMeter

    gen = torch.Generator().manual_seed(0)
    stock, ours = AverageMeter(1, 100), DeviceAverageMeter(1, 100)
    for k in counts:
        values = torch.randn(300, 1, generator=gen)
        mask = torch.zeros(300, dtype=torch.bool)
        mask[torch.randperm(300, generator=gen)[:k]] = True
        stock.update(values[mask.nonzero(as_tuple=False)])  # rl_games indexes with nonzero()
        ours.update_masked(values, mask)
        assert ours.current_size == stock.current_size
        np.testing.assert_allclose(ours.get_mean(), stock.get_mean(), rtol=1e-6, atol=1e-7)


def test_unknown_agent_name_is_one_sentence(make_cfg):
    from isaacgymenvs.errors import UserError

    with pytest.raises(UserError, match="train.params.algo.name=ppo_magic is not an agent here"):
        make_cfg("Ant", "train.params.algo.name=ppo_magic")


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("freeze_critic=True", "train.params.config.freeze_critic=True: a frozen critic"),
        ("epochs_between_resets=10", "train.params.config.epochs_between_resets=10: periodic env resets"),
        ("use_action_masks=True", "train.params.config.use_action_masks=True: action masks"),
        ("learning_rte=0.001", "train.params.config.learning_rte=0.001 is not an option graphed_a2c_continuous knows"),
    ],
)
def test_an_option_the_graphed_agent_would_run_differently_is_refused_in_one_sentence(make_cfg, option, expected):
    from isaacgymenvs.errors import UserError

    with pytest.raises(UserError) as refused:
        make_cfg("Ant", f"+train.params.config.{option}")
    assert str(refused.value).startswith(expected) and "\n" not in str(refused.value)
    assert str(refused.value).endswith("; train.params.algo.name=a2c_continuous runs it.")
    make_cfg("Ant", f"+train.params.config.{option}", "train.params.algo.name=a2c_continuous")  # stock runs it
    make_cfg("Ant", "+train.params.config.freeze_critic=False")  # an option turned off is no difference


@pytest.mark.slow
def test_the_refusal_is_exit_2_before_any_training(tmp_path):
    result = run_cli("task=Cartpole", "sim_device=cpu", "rl_device=cpu", "+train.params.config.freeze_critic=True",
                     cwd=tmp_path, timeout=120)  # fmt: skip
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "freeze_critic=True: a frozen critic" in lines[0], lines
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["a2c_continuous", graphed.ALGO_NAME])
def test_max_frames_and_minibatch_size_per_env_run_as_stock(algo, tmp_path):
    """max_frames stops both agents after the same epoch (3 x 32 envs x 16 steps = 1536 frames);
    minibatch_size_per_env alone gave a KeyError traceback before; naming neither is one sentence."""
    common = ("task=Cartpole", "num_envs=32", "max_iterations=10", f"train.params.algo.name={algo}")
    result = run_cli(*common, f"+{C}max_frames=1536", f"~{C}minibatch_size", f"+{C}minibatch_size_per_env=4",
                     cwd=tmp_path, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert [p.epoch for p in parse_output(result.stdout)] == [1, 2, 3]
    refused = run_cli(*common, f"~{C}minibatch_size", cwd=tmp_path, timeout=120)
    assert refused.returncode == 2 and refused.stderr.strip() == (
        "Error: train.params.config needs minibatch_size or minibatch_size_per_env."
    )


def test_every_rank_runs_the_linear_schedule(make_cfg, tmp_path):
    """rl_games clears lr_schedule on ranks > 0 (rank 0 broadcasts its rate); this agent broadcasts
    nothing, so a rank without the schedule kept the initial rate while rank 0 decayed."""
    from rl_games.common import schedulers

    from isaacgymenvs.trainer.graphed.schedule import restore_schedule

    cfg = make_cfg("Cartpole", "num_envs=32", f"{C}lr_schedule=linear", "max_iterations=50")
    new = build_agent(cfg, RunDir(tmp_path / "new"), graphed.ALGO_NAME)
    assert isinstance(new.scheduler, schedulers.LinearScheduler)
    new.scheduler = schedulers.IdentityScheduler()  # what rl_games leaves on a rank > 0
    restore_schedule(new, "linear")
    assert isinstance(new.scheduler, schedulers.LinearScheduler) and new.scheduler.max_steps == new.max_epochs


def test_a_tensor_rebound_after_capture_is_refused_before_the_next_epoch(make_cfg, tmp_path):
    """A captured graph keeps using the memory it recorded: rl_games' reset path reassigns its episode
    tensors (epochs_between_resets), and the meters would silently go wrong."""
    cfg = make_cfg("Cartpole", "num_envs=32")
    new = build_agent(cfg, RunDir(tmp_path / "new"), graphed.ALGO_NAME)
    new.init_tensors()
    step = new._after_env_step
    step.record()  # what a capture on CUDA does (the CPU runs the steps eagerly)
    step.verify()
    new.current_rewards.add_(1.0)  # in place: the same memory
    step.verify()
    new.current_rewards = new.current_rewards.clone()  # rebound, as rl_games' reset path does
    with pytest.raises(RuntimeError, match=r"_after_env_step_fn: current_rewards rebound after the CUDA graph"):
        step.verify()


def test_two_cpu_ranks_stay_identical_and_match_stock_multi_gpu(tmp_path):
    """multi_gpu on two CPU ranks (gloo; tests/two_rank_worker.py): after three epochs both ranks of
    the graphed agent hold the same weights and rate, and each equals stock rl_games' two-rank run
    for the adaptive and the linear schedule (for schedule_type=standard stock's own replicas drift;
    ours stay identical). Before, a rank > 0 kept the initial rate under lr_schedule=linear while
    rank 0 decayed, and the replicas drifted."""
    import socket
    import subprocess
    import sys

    from tests.conftest import REPO, cli_env, kill_group, spawn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    variants = ["adaptive", "linear", "standard"]
    ranks = [
        spawn(
            [sys.executable, "-m", "tests.two_rank_worker", str(tmp_path), *variants],
            REPO,
            cli_env(
                RANK=str(r),
                LOCAL_RANK=str(r),
                WORLD_SIZE="2",
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(port),
                OMP_NUM_THREADS="1",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        for r in range(2)
    ]
    try:
        outputs = [proc.communicate(timeout=240)[0] for proc in ranks]
    finally:
        for proc in ranks:
            kill_group(proc)
    assert [proc.returncode for proc in ranks] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    for variant in variants:
        r0, r1 = (torch.load(tmp_path / f"{variant}.rank{r}.pt") for r in range(2))
        network = [k for k in r0["new"] if k.startswith("a2c_network.")]  # normalisers stay each rank's own
        for key in network:
            assert_close(r0["new"][key], r1["new"][key], f"{variant}: rank 0 vs rank 1 weights {key}")
        assert r0["new_lr"] == r1["new_lr"], variant
        assert any(not torch.equal(r0["new"][k], r1["new"][k]) for k in r0["new"] if "running_mean" in k)
        if variant == "standard":
            # rl_games 1.6.5 itself drifts here: after each minibatch a rank > 0 sets the optimizer back
            # to its own never-scheduled rate, and only the mini-epoch's broadcast corrects it.
            assert any(not torch.allclose(r0["stock"][k], r1["stock"][k]) for k in network)
            continue
        for key in r0["new"]:
            for rank, saved in enumerate((r0, r1)):
                assert_close(saved["stock"][key], saved["new"][key], f"{variant}: rank {rank} stock vs graphed {key}")
        assert r0["new_lr"] == pytest.approx(r0["stock_lr"], rel=1e-6), variant
        assert r1["new_optimizer_lr"] == r1["stock_lr"], variant  # the float32-rounded broadcast rate
        assert r0["stock_lr"] != pytest.approx(3e-4, rel=1e-3), f"{variant}: the rate never moved"
