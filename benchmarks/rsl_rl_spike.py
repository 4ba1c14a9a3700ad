"""Spike (issue 27): rsl_rl's OnPolicyRunner on our Cartpole/Ant VecTask, on the CPU: does it learn?

python benchmarks/rsl_rl_spike.py Cartpole 200 256     # task, iterations, num_envs
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rsl_rl.runners import OnPolicyRunner

from isaacgymenvs.config import load_config
from isaacgymenvs.tasks import make_task
from isaacgymenvs.trainer.rsl_rl_env import RslRlVecEnv


def train_cfg(task_name: str) -> dict:
    ant = task_name == "Ant"
    hidden = [256, 128, 64] if ant else [32, 32]
    algorithm = {
        "class_name": "PPO", "num_learning_epochs": 5, "num_mini_batches": 4, "clip_param": 0.2, "gamma": 0.99,
        "lam": 0.95, "value_loss_coef": 1.0, "entropy_coef": 0.0 if ant else 0.005,
        "learning_rate": 3e-4 if ant else 1e-3, "max_grad_norm": 1.0, "schedule": "adaptive", "desired_kl": 0.01,
    }  # fmt: skip
    model = {"class_name": "MLPModel", "hidden_dims": hidden, "activation": "elu", "obs_normalization": True}
    return {
        "num_steps_per_env": 32 if ant else 16,
        "save_interval": 10**9,
        "obs_groups": {"actor": ["policy"], "critic": ["policy"]},
        "algorithm": algorithm,
        "actor": {**model, "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": 1.0}},
        "critic": model,
        "logger": "tensorboard",
    }


def main() -> None:
    task_name, iterations, envs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cfg = load_config([f"task={task_name}", "sim_device=cpu", "rl_device=cpu", f"num_envs={envs}"])
    runner = OnPolicyRunner(RslRlVecEnv(make_task(cfg), {}), train_cfg(task_name), log_dir=None, device="cpu")
    returns, process = [], runner.logger.process_env_step

    def record(rewards, dones, extras, intrinsic):
        value = extras.get("log", {}).get("/episode_return")
        if value is not None:
            returns.append(float(value))
        return process(rewards, dones, extras, intrinsic)

    runner.logger.process_env_step = record
    start = time.time()
    runner.learn(iterations)
    last = returns[-50:]
    print(f"{task_name}: {iterations} iterations in {time.time() - start:.0f} s, "
          f"mean return of the last {len(last)} finishing steps {sum(last) / max(len(last), 1):.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
