"""Errors caused by the user (bad configuration, missing files), reported as one sentence."""


class UserError(Exception):
    """A mistake the user can fix: printed as one sentence, exit code 2, no traceback."""


class RunFailed(Exception):
    """A run that had to stop for a reason outside the program (disk full): one sentence, exit code 1."""
