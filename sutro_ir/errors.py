"""Errors in a .sir program: `file:line:col: error: message`, the source line and a caret.

SirError is a SimError, so the command line treats every user mistake the same way (exit 2).
TrainingDiverged is not a mistake in the program but a failed training (exit 3).
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.errors import SimError


@dataclass(frozen=True)
class Loc:
    """A place in a source file. Never part of any equality: nodes compare without it."""

    file: str
    line: int
    col: int
    text: str = ""      # the whole source line, for the caret
    span: tuple = (0, 0)    # the columns of the whole expression (end excluded) on its line

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    @property
    def source(self) -> str:
        """The expression's text, when it is on one line ('' otherwise)."""
        start, end = self.span
        return self.text[start - 1:end - 1].strip() if 0 < start < end else ""


NOWHERE = Loc("<program>", 0, 0)


class SirError(SimError):
    """A mistake in a .sir program or in the options that configure it (`--set`)."""

    def __init__(self, message: str, loc: Loc | None = None):
        super().__init__(message, str(loc) if loc and loc.line else (loc.file if loc else ""))
        self.loc = loc

    def __str__(self) -> str:
        head = super().__str__()
        if not self.loc or not self.loc.text:
            return head
        return f"{head}\n    {self.loc.text}\n    {' ' * (self.loc.col - 1)}^"


class TrainingDiverged(SirError):
    """A valid program whose training made a value NaN, or a parameter infinite. `loc` is the
    line that computed it (or the parameter's declaration, when its initializer did)."""

    def __init__(self, step: int, value: str, became: str, loc: Loc | None):
        what = "the value computed here" if value.startswith("%") else f"'{value}'"
        super().__init__(f"training diverged at step {step:,}: {what} became {became} "
                         "(check this line; a lower learning rate often helps)", loc)
        self.step, self.value, self.became = step, value, became

    def to_dict(self) -> dict:
        return {"step": self.step, "value": self.value, "became": self.became,
                "where": self.where, "message": self.message}
