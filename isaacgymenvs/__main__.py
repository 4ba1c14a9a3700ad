"""`python -m isaacgymenvs task=Ant mode=train`: the same command line as train_play.py."""

import sys

from isaacgymenvs.cli import main

sys.exit(main())
