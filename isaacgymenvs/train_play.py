"""Entry script: `python isaacgymenvs/train_play.py task=Ant mode=train` (all logic in isaacgymenvs.cli)."""

import os
import sys

# Run as a script, Python puts this file's folder (the package itself) first on sys.path; drop it
# so the package's modules are only importable as isaacgymenvs.* and never shadow top-level names.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

from isaacgymenvs.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
