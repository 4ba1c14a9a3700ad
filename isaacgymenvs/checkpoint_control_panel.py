"""Entry script: `python isaacgymenvs/checkpoint_control_panel.py --experiment=Ant` (logic in isaacgymenvs.panel).

Also installed as `isaacgymenvs-panel` and runnable as `python -m isaacgymenvs.panel`.
"""

import os
import sys

# As in train_play.py: this file's folder is the package itself, so keep it off sys.path.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

from isaacgymenvs.panel.app import main

if __name__ == "__main__":
    sys.exit(main())
