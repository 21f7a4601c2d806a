"""User-facing errors: the CLI prints them as one line and exits with code 2, without a traceback."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path


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


class DataError(UserError):
    """A data file that cannot be used as it is: names the file (and the array, key or index) and what to do."""

    def __init__(self, file: object, problem: str):
        self.path, self.key, self.problem = str(file), "", problem
        super().__init__(f"{shown(file, PATH_LIMIT)}: {problem}")


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


def _no_space(exc: BaseException | None) -> OSError | None:
    """The 'no space left' (or quota) OSError at the root of `exc`, following causes; None if there is none."""
    for _ in range(16):
        if exc is None:
            return None
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def free_space(folder: Path) -> tuple[Path, int]:
    """(the nearest existing folder at or above `folder`, its file system's free bytes)."""
    for part in (folder, *folder.parents):
        if part.is_dir():
            return part, shutil.disk_usage(part).free
    return folder, 0


def disk_full(exc: BaseException, folders: dict[str, Path]) -> UserError | None:
    """One line for a full disk (or quota) anywhere in `exc`'s causes, naming the folder it filled, its free space
    and the option that places it (`folders`: option -> folder, e.g. {"--out": ...}); None if `exc` is not that.

    The folder is the one of the file that failed when the error names it, else the option's folder with the least
    free space (a write() that fails does not say which file it was)."""
    err = _no_space(exc)
    if err is None:
        return None
    # a copy or a rename names (source, destination): the destination is what filled the disk
    named = [Path(os.fsdecode(f)).parent for f in (err.filename2, err.filename) if isinstance(f, str | bytes) and f]
    spaces = {option: free_space(Path(folder).resolve()) for option, folder in folders.items()}
    option = min(spaces, key=lambda o: spaces[o][1]) if spaces else ""
    if named:
        folder, free = free_space(Path(named[0]).resolve())
        holding = [o for o, f in folders.items() if Path(f).resolve() in (folder, *folder.parents)]
        option = max(holding, key=lambda o: len(Path(folders[o]).resolve().parts), default=option)  # the nearest
    else:
        folder, free = spaces[option] if option else (Path("."), 0)
    where = f"; free space there or give {option} on a disk with room" if option else "; free space there"
    return UserError(f"no space left on the disk of {shown(folder)} ({free / 1e6:.1f} MB free){where}")
