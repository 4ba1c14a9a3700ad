"""`python -m isaacgymenvs.panel --experiment=Ant`: the same as checkpoint_control_panel.py."""

import sys

from isaacgymenvs.panel.app import main

sys.exit(main())
