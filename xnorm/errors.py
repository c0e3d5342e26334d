"""Errors a user can act on.

Every error that comes from user input (a file, a config, a flag) is an ``XnormError``: it names where the
problem is (file, line or document, field) and says how to fix it. The CLI prints its message on one line
and exits with its ``exit_code``; tracebacks are for bugs only.
"""
from __future__ import annotations

# Exit codes of the CLI (documented in the README).
EXIT_OK = 0
EXIT_ERROR = 1  # an unexpected failure (a bug): traceback shown
EXIT_USAGE = 2  # bad flags or arguments (click's own code)
EXIT_BAD_INPUT = 3  # an input file, config or index that cannot be used
EXIT_INTERRUPTED = 130


class XnormError(Exception):
    """A problem with user input, described so that the user can fix it."""

    exit_code = EXIT_BAD_INPUT

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        document: str | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.line = line
        self.document = document
        self.field = field
        self.fix = fix
        super().__init__(self.format())

    def format(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file + (f":{self.line}" if self.line is not None else ""))
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.document is not None:
            where.append(f"document {self.document!r}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        text = (", ".join(where) + ": " if where else "") + self.message
        if self.fix:
            text += f" Fix: {self.fix}"
        return text


class InputError(XnormError):
    """A data file (documents, terminology source, recipe) that cannot be read as it is."""


class ConfigError(XnormError):
    """A configuration (recipe, linker or index config) with a wrong or missing field."""


class ArtifactError(XnormError):
    """A saved terminology / index / model / linker folder that is missing, corrupt or from an incompatible version."""
