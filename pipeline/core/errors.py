"""User-facing errors: the CLI prints them as one line and exits with code 2, without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (bad file, bad setting, unreachable device); the message says what to do."""

    exit_code = 2


class ConfigError(UserError):
    """A recipe or target file that does not validate; names the file and the key path."""

    def __init__(self, path: object, key: str, problem: str):
        self.path, self.key, self.problem = str(path), key, problem
        # both come from outside (a recipe's path, a TOML key, a --set text): shown, so neither can forge a line
        where = f"{shown(self.path, PATH_LIMIT)}: {shown(key)}" if key else shown(self.path, PATH_LIMIT)
        super().__init__(f"{where}: {problem}")


class ToolError(UserError):
    """An external tool or device failed; names the tool (or device) and the stage."""


class GateError(UserError):
    """A tolerance or accuracy gate was violated; names artifact, metric, value and limit."""

    exit_code = 3


class PipelineError(Exception):
    """What the Python API raises for everything the CLI refuses with exit 2 or 3: `message` is the CLI's line
    (without 'error: '), `key` the recipe key it names (or ""), `file` the file it names (or ""), `exit_code` the
    CLI's (3 for a failed gate)."""

    def __init__(self, message: str, key: str = "", file: str = "", exit_code: int = 2):
        super().__init__(message)
        self.message, self.key, self.file, self.exit_code = message, key, file, exit_code

    @classmethod
    def of(cls, exc: UserError) -> PipelineError:
        """The API's form of a refusal: the same line the CLI prints."""
        line = message_line(exc).removeprefix("error: ")
        return cls(line, getattr(exc, "key", ""), getattr(exc, "path", ""), exc.exit_code)


class StageCrash(Exception):
    """An unexpected exception inside a stage (a bug, not a user mistake): the cause is chained as __cause__."""

    def __init__(self, stage: str):
        self.stage = stage
        super().__init__(f"stage {stage} failed")


def shown(value: object, limit: int = 160) -> str:
    """`value` as it may appear inside a one-line message: control characters escaped (a newline in a file name
    cannot forge a second line), cut to `limit` characters with the cut marked.

    >>> shown("a\\nerror: fine")
    'a\\\\nerror: fine'
    """
    text = str(value)
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    return text if len(text) <= limit else text[: limit - 12] + f"...(+{len(text) - limit + 12} chars)"


PATH_LIMIT = 400  # a path in a message: longer than a name, still one line
MESSAGE_LIMIT = 2000  # a whole message: room for its names (each cut to its own limit) and what to do


def message_line(exc: UserError) -> str:
    """How a CLI prints a UserError: 'error: ' and the message, as one line whatever it holds (the last guard
    against a name from outside that reached a message without going through `shown`)."""
    return f"error: {shown(exc, MESSAGE_LIMIT)}"


def one_line(exc: BaseException, limit: int = 160) -> str:
    """'Type: first line of the message', cut to `limit` characters: how a caught exception is named in one line."""
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:limit]}"


def artifact_failed(path: object, name: str, doing: str, exc: BaseException) -> UserError:
    """The one line for an artifact file that its runtime could not run (`doing`: "be profiled", ...): a damaged or
    foreign file in a run folder, named with the exception's first line."""
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return UserError(f"{path}: {name} could not {doing}: {type(exc).__name__}: {first} (rerun the pipeline to "
                     "rebuild it; if the file is intact, please report this)")
