"""Entry script: `python isaacgymenvs/train_play.py task=Ant mode=train` (all logic in isaacgymenvs.cli).

Also installed as `isaacgymenvs-train` and runnable as `python -m isaacgymenvs`.
"""

import os
import sys

# Run as a script, Python puts this file's folder (the package itself) first on sys.path; drop it
# so the package's modules are only importable as isaacgymenvs.* and never shadow top-level names.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

from isaacgymenvs.cli import main

if __name__ == "__main__":
    sys.exit(main())
