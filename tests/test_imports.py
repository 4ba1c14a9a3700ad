"""Each process imports what its mode needs: start-up time is paid in imports (benchmarks/startup.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GUI_AND_EXTRAS = ("viser", "mjviser", "PySide6", "onnx", "onnxruntime", "onnxscript", "wandb")
TRAINING_STACK = ("rl_games.torch_runner", "rl_games.algos_torch.a2c_continuous", "tensorboardX", "tensorboard")


def modules_after(code: str, cwd: Path) -> set[str]:
    script = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, cwd=cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    return set(result.stdout.split())


def test_the_trainer_imports_no_gui_no_exporter_no_wandb_and_no_compiler_on_the_cpu(tmp_path):
    loaded = modules_after(
        "from isaacgymenvs.config import load_config\n"
        "cfg = load_config(['task=Ant', 'sim_device=cpu', 'rl_device=cpu'])\n"
        "import isaacgymenvs.cli, isaacgymenvs.trainer.train\n"
        "from rl_games.torch_runner import Runner\n"
        "from isaacgymenvs.tasks import make_task\n"
        "make_task(cfg)\n",
        tmp_path,
    )
    assert not {m.split(".")[0] for m in loaded} & set(GUI_AND_EXTRAS), sorted(loaded & set(GUI_AND_EXTRAS))
    # rl_games' test network's @torch.compile pulled inductor in at import (1.8 s of a 3.8 s start)
    assert "torch._inductor.compile_fx" not in loaded


def test_a_headless_player_imports_no_training_stack_and_no_gui(tmp_path):
    loaded = modules_after(
        "from isaacgymenvs.config import load_config\n"
        "cfg = load_config(['task=Ant', 'mode=play', 'headless=True'])\n"
        "import isaacgymenvs.cli, isaacgymenvs.player.play\n"
        "from isaacgymenvs.policy import Policy\n"
        "from isaacgymenvs.tasks import make_task\n"
        "make_task(cfg)\n",
        tmp_path,
    )
    unwanted = set(GUI_AND_EXTRAS) | set(TRAINING_STACK)
    assert not {m for m in loaded if m in unwanted or m.split(".")[0] in unwanted}, sorted(loaded & unwanted)
