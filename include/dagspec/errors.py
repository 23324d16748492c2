"""Run-time errors shared by sources, stores, warehouses and stages."""

import errno
import re


class StepFailed(RuntimeError):
    """A step failed for a reason the user can act on; the message says which and how."""


class AlreadyAlerted(StepFailed):
    """A failure the step has alerted on itself, with its numbers (a monitor breach with on_breach 'fail'): the
    task's failure callback does not send the same news a second time."""


class DataNotYet(StepFailed):
    """The data a step reads was never written (its table or partitions do not exist yet)."""


class StepSkipped(Exception):
    """Nothing for the step to do yet, which is not a fault: a model with no champion has nothing to score.
    The message says why and what ends it; Airflow shows the task skipped, the CLI the step."""


# What a write fails with when its disk is full, over quota or read-only (an errno from Python or pyarrow, or
# DuckDB's text for it); a database's network or query errors are none of these.
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
_FULL_TEXT = re.compile(r"No space left on device|Disk quota exceeded|Read-only file system|File too large", re.I)


def disk_full(exc: BaseException) -> bool:
    """Whether `exc` is a write that found no room: then the component that writes (store, warehouse) is at
    fault, whatever was being read at the time."""
    return (isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS) or bool(_FULL_TEXT.search(str(exc)))


def first_line(exc: BaseException) -> str:
    """`Type: first line of the message` (drivers append SQL, hints and docs links below it)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
