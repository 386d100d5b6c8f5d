"""The one error type for user mistakes: a bad trace file, a bad hierarchy config, a bad option.

The command line turns it into `where: error: message` and exit status 2; anything else that
escapes is a bug in sutro-sim, not in the user's input.
"""


class SimError(Exception):
    """A user-facing error. `where` names the file (and level, field, ...) it is about."""

    def __init__(self, message: str, where: str = ""):
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: error: {self.message}" if self.where else f"error: {self.message}"
