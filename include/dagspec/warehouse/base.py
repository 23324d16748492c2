"""The errors every warehouse raises alike, and the column comparison behind SchemaDrift."""

from __future__ import annotations

from datetime import date


class SchemaDrift(ValueError):
    def __init__(self, table: str, changes: list[str]):
        super().__init__(
            f"the result no longer matches table {table}: {'; '.join(changes)}. "
            "Fix the SQL, or drop/migrate the table on purpose (dagspec never changes a table's columns silently)"
        )


def columns_diff(existing: list[tuple[str, str]], wanted: list[tuple[str, str]]) -> list[str]:
    have, want = dict(existing), dict(wanted)
    changes = [f"new column {c} {t}" for c, t in want.items() if c not in have]
    changes += [f"missing column {c}" for c in have if c not in want]
    changes += [f"column {c} is {have[c]}, result gives {t}" for c, t in want.items() if c in have and have[c] != t]
    return changes


def history_filter(first: date | None, last: date) -> str:
    """A history input's batches: batch_date in [first, last] (no lower bound without `first`). Date objects'
    isoformat, never user text, go into the literals."""
    low = f"batch_date >= DATE '{first.isoformat()}' AND " if first is not None else ""
    return f"{low}batch_date <= DATE '{last.isoformat()}'"


def prune_sql(target: str, keep: int, by: str = "batch_date") -> str:
    """Snapshot mode: delete every batch not among the ``keep`` greatest batch_dates (so re-running an old day
    never removes newer ones); ``by="batch_start"`` counts a sub-daily table's partitions instead of its days.
    ``keep`` is formatted, not bound, because LIMIT takes no parameter everywhere; int() makes sure nothing but a
    number gets in, and ``by`` is one of the two column names dagspec adds."""
    if by not in ("batch_date", "batch_start"):
        raise ValueError(f"snapshot batches are counted by batch_date or batch_start, not {by!r}")
    return (f"DELETE FROM {target} WHERE {by} NOT IN "
            f"(SELECT DISTINCT {by} FROM {target} ORDER BY {by} DESC LIMIT {int(keep)})")
