"""One exception hierarchy. Errors that come from source text carry a `Span`, so the CLI
can print `file:line:col`, the offending line and a caret instead of a traceback."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None


class NeurosymError(Exception):
    """Base class of every error neurosym reports to a user."""

    def __init__(self, message: str, span: Span | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.span = span
        self.source: str | None = None
        self.filename: str | None = None

    def located(self, source: str, filename: str) -> NeurosymError:
        """Attach the text the span points into, for `format`."""
        self.source, self.filename = source, filename
        return self

    def format(self) -> str:
        if self.span is None:
            where = f"{self.filename}: " if self.filename else ""
            return f"{where}error: {self.message}"
        where = f"{self.filename or '<input>'}:{self.span.line}:{self.span.column}"
        out = f"{where}: error: {self.message}"
        if self.source is not None:
            lines = self.source.splitlines()
            if 0 < self.span.line <= len(lines):
                text = lines[self.span.line - 1]
                width = 1
                if self.span.end_line == self.span.line and self.span.end_column:
                    width = max(1, self.span.end_column - self.span.column)
                caret = " " * (self.span.column - 1) + "^" * width
                out += f"\n  {text}\n  {caret}"
        return out

    def __str__(self) -> str:
        return self.format()


class DSLSyntaxError(NeurosymError):
    pass


class DSLTypeError(NeurosymError):
    pass


class TypeMismatch(Exception):
    """Raised by unification; the checker turns it into a located `DSLTypeError`."""

    def __init__(self, expected, found, note: str = "") -> None:
        super().__init__(f"expected {expected}, found {found}")
        self.expected, self.found, self.note = expected, found, note


class DataError(NeurosymError):
    """Bad task data: non-finite values, wrong shapes, unknown data sets."""


class TaskError(NeurosymError):
    """A task spec that cannot be loaded."""


class TrainingError(NeurosymError):
    """Training that cannot go on, such as a non-finite loss."""


class SearchError(NeurosymError):
    pass


class LibraryError(NeurosymError):
    pass
