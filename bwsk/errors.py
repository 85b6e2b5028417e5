"""One exception family for everything bwsk reports to a user.

The CLI prints any ``BwskError`` as a single line and exits with status 2; anything else
escaping is a bug and keeps its traceback.
"""

from __future__ import annotations


class BwskError(Exception):
    """Root of every error bwsk raises on purpose."""


class TermSyntaxError(BwskError):
    """A term text that does not parse; carries position and renders a caret line."""

    def __init__(self, message: str, *, source: str = "<term>", line: int = 1, column: int = 1,
                 line_text: str = ""):
        self.message, self.source, self.line, self.column = message, source, line, column
        self.line_text = line_text
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.source}:{self.line}:{self.column}: {self.message}"
        if not self.line_text:
            return head
        caret = " " * (self.column - 1) + "^"
        return f"{head}\n  {self.line_text}\n  {caret}"


class TermError(BwskError):
    """A term that parses but is ill-formed (applying a tuple, cyclic let, too deep, ...)."""


class UnsupportedModelError(BwskError):
    """A model bwsk cannot load or lower (not ONNX, truncated, unknown zoo name, ...)."""


class ProofLimitError(BwskError):
    """The proof engine hit a resource limit; the verdict would be a guess, so we stop."""


class DataError(BwskError):
    """Missing, empty or malformed training data."""


class TrainingError(BwskError):
    """Training cannot start or continue (bad configuration, NaN loss, corrupt checkpoint)."""


class PlanError(BwskError):
    """A parallel plan that cannot be built or applied (world size, indivisible axis, ...)."""
