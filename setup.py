"""Install: pip install -e .   (GPU physics: '.[gpu]'; mode=export: '.[export]'; library=rsl_rl: '.[rsl_rl]';
library=skrl: '.[skrl]'; tests: '.[test]')."""

from setuptools import find_packages, setup

RSL_RL = ["rsl-rl-lib==5.5.1"]  # library=rsl_rl (tensordict and GitPython come with it)
# library=skrl: skrl's own requirements (gymnasium, packaging, tensorboard, tqdm) are ours or come with it;
# tensorboardX (rl_games') writes the run's summaries.
SKRL = ["skrl==2.1.1"]
EXPORT = ["onnx>=1.23", "onnxscript>=0.7", "onnxruntime>=1.32"]  # tested: 1.23.2, 0.7.2, 1.32.0

setup(
    name="isaacgymenvs-mujoco",
    version="0.1.0",
    description="IsaacGymEnvs-style GPU-parallel robot RL on MuJoCo: train headless, watch the policy live.",
    python_requires=">=3.10",
    # One top-level package: the panel is isaacgymenvs.panel, never a top-level `panel` (HoloViz's name).
    packages=find_packages(include=["isaacgymenvs", "isaacgymenvs.*"]),
    package_data={"isaacgymenvs": ["assets/mjcf/*.xml"]},
    install_requires=[
        "rl-games==1.6.5",
        "torch>=2.13,<2.14",  # the version CI tests (.ci/run): a newcomer got 2.14 while CI ran 2.13
        "mujoco==4.0.0",
        "hydra-core>=1.3.2,<1.4",
        "omegaconf>=2.3,<2.4",
        "gymnasium>=0.29.1",
        "tensorboard>=2.8",
        "watchdog>=4.0",
        "filelock>=3.12",
        # 6.12.0 mis-counts references to None/True/False on Python 3.11 (crashes after minutes);
        # tests/test_qt_bindings.py guards this.
        "PySide6-Essentials>=6.6,<6.12",
        "imageio-ffmpeg>=0.5",
        "numpy>=1.26",
        # viewer=web (the default player on a machine without a display): viser serves a three.js page
        # whose client ships inside its wheel; mjviser converts mesh/heightfield geoms for it.
        "viser>=1.1.1,<1.2",
        "mjviser==0.0.14",
        "trimesh>=4",
    ],
    entry_points={
        "console_scripts": [
            "isaacgymenvs-train=isaacgymenvs.cli:main",  # = python isaacgymenvs/train_play.py
            "isaacgymenvs-panel=isaacgymenvs.panel.app:main",  # = python isaacgymenvs/checkpoint_control_panel.py
        ]
    },
    extras_require={
        "gpu": ["mujoco-warp==4.0.0", "warp-lang==1.19.0"],
        "wandb": ["wandb>=0.19"],
        "rsl_rl": RSL_RL,
        "skrl": SKRL,
        # mode=export and the panel's Export button: torch.onnx's exporter needs onnx + onnxscript; the
        # export is checked in onnxruntime before its files are written.
        "export": EXPORT,
        "test": [
            "pytest>=8",
            "pytest-qt>=4.4",
            "pytest-timeout>=2.2",
            "ruff>=0.6",
            "pillow>=10",
            "hypothesis>=6.100",
            # drives Debian's chromium (.ci/run installs it) for the web viewer's browser tests
            "playwright>=1.49",
            # HoloViz Panel, installed beside this project as users' notebook environments have it:
            # tests/test_panel.py checks both import (our panel is isaacgymenvs.panel, never `panel`)
            "panel>=1.4",
            *EXPORT,
            # tests/test_rsl_rl.py and tests/test_skrl.py (skipped without them)
            *RSL_RL,
            *SKRL,
        ],
    },
)
