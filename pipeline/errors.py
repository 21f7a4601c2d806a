"""User-facing errors: the CLI prints them as one line and exits with code 2, without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (bad file, bad setting, unreachable device); the message says what to do."""

    exit_code = 2


class ConfigError(UserError):
    """A recipe or target file that does not validate; names the file and the key path."""

    def __init__(self, path: object, key: str, problem: str):
        self.path, self.key, self.problem = str(path), key, problem
        where = f"{self.path}: {key}" if key else self.path
        super().__init__(f"{where}: {problem}")


class ToolError(UserError):
    """An external tool or device failed; names the tool (or device) and the stage."""


class GateError(UserError):
    """A tolerance or accuracy gate was violated; names artifact, metric, value and limit."""

    exit_code = 3


class StageCrash(Exception):
    """An unexpected exception inside a stage (a bug, not a user mistake): the cause is chained as __cause__."""

    def __init__(self, stage: str):
        self.stage = stage
        super().__init__(f"stage {stage} failed")
