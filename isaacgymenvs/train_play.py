"""Entry script: `python isaacgymenvs/train_play.py task=Ant mode=train` (all logic in isaacgymenvs.cli)."""

import os
import sys

# Run as a script, Python puts this file's folder (the package itself) first on sys.path; drop it
# so the package's modules are only importable as isaacgymenvs.* and never shadow top-level names.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

# OpenMP threads that spin while waiting (libgomp's default) made a CPU trainer ~20x slower beside
# any busy process, a watching player or a browser included: Ant, 64 envs, 2 cores, beside a busy
# loop 0.053 of its speed alone; with passive waiting 0.903 (benchmarks/results_cpu/web_viewer.txt,
# before and after c63aea5), at a cost of 7-20% alone. Set before torch loads libgomp; your own
# value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from isaacgymenvs.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
