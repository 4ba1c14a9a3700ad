"""Spike: rsl_rl's OnPolicyRunner on our Cartpole/Ant VecTask, CPU: does it learn?"""

import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
from rsl_rl.runners import OnPolicyRunner

from isaacgymenvs.config import load_config
from isaacgymenvs.tasks import make_task
from isaacgymenvs.trainer.rsl_rl_env import RslRlVecEnv

task_name, iters, envs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cfg = load_config([f"task={task_name}", "sim_device=cpu", "rl_device=cpu", f"num_envs={envs}"])
task = make_task(cfg)
hidden = [32, 32] if task_name == "Cartpole" else [256, 128, 64]
train_cfg = {
    "num_steps_per_env": 16 if task_name == "Cartpole" else 32,
    "save_interval": 10**9,
    "obs_groups": {"actor": ["policy"], "critic": ["policy"]},
    "algorithm": {
        "class_name": "PPO",
        "num_learning_epochs": 5,
        "num_mini_batches": 4,
        "clip_param": 0.2,
        "gamma": 0.99,
        "lam": 0.95,
        "value_loss_coef": 1.0,
        "entropy_coef": 0.0 if task_name == "Ant" else 0.005,
        "learning_rate": 3e-4 if task_name == "Ant" else 1e-3,
        "max_grad_norm": 1.0,
        "schedule": "adaptive",
        "desired_kl": 0.01,
    },
    "actor": {
        "class_name": "MLPModel",
        "hidden_dims": hidden,
        "activation": "elu",
        "obs_normalization": True,
        "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": 1.0},
    },
    "critic": {"class_name": "MLPModel", "hidden_dims": hidden, "activation": "elu", "obs_normalization": True},
    "logger": "tensorboard",
}
env = RslRlVecEnv(task, {})
runner = OnPolicyRunner(env, train_cfg, log_dir=None, device="cpu")
rets = []
orig = runner.logger.process_env_step


def hook(rewards, dones, extras, intr):
    r = extras.get("log", {}).get("/episode_return")
    if r is not None:
        rets.append(float(r))
    return orig(rewards, dones, extras, intr)


runner.logger.process_env_step = hook
t = time.time()
runner.learn(iters)
print(
    f"{task_name}: {iters} iterations in {time.time() - t:.0f} s, mean return of the last 50 finished batches {sum(rets[-50:]) / max(len(rets[-50:]), 1):.1f}"
)
policy = runner.get_inference_policy()
print(type(policy).__name__, sorted(runner.alg.save().keys()), list(runner.alg.save()["actor_state_dict"].keys())[:6])
