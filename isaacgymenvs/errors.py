"""Errors caused by the user (bad configuration, missing files), reported as one sentence."""


class UserError(Exception):
    """A mistake the user can fix: printed as one sentence, exit code 2, no traceback."""
