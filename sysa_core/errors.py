"""User-facing errors: one line, no traceback (the CLI prints them and exits with status 2)."""


class UserError(Exception):
    """A mistake in the user's input: a parameter, a file, a command-line option.

    The message is a single line that names the parameter or file and what is wrong.
    """

    exit_status = 2


class TrainingDiverged(UserError):
    """Training produced a non-finite loss or gradient; the last good checkpoint is kept."""
