"""Entry script: `python isaacgymenvs/checkpoint_control_panel.py --experiment=Ant` (logic in panel/)."""

import os
import sys

# As in train_play.py: this file's folder is the package itself, so keep it off sys.path.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

from panel.app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
