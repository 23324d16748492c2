"""A canary rollout's two pure parts: which rows the canary scores, and the rule that ends the rollout.

The split: each row's key values are rendered as text (DuckDB's VARCHAR form, NULL as the empty string), joined
by U+001F, and hashed with MD5; the digest's first 8 bytes read as a little-endian unsigned 64-bit integer
(DuckDB's `md5_number_upper`), modulo 10,000, are the row's bucket. Buckets below share x 10,000 go to the
canary. MD5 is fixed by RFC 1321, so the same key lands on the same model in every run, process and DuckDB
version (unlike DuckDB's `hash()`, which may change between releases); it is used for spreading, not secrecy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa

from dagspec.spec.canary_step import Rollout
from dagspec.spec.ml_steps import LOWER_IS_BETTER
from dagspec.sql import quote

BUCKETS = 10_000
SEPARATOR = "\x1f"
Decision = Literal["wait", "promoted", "rolled_back"]


def canary_rows(chunk: pa.RecordBatch | pa.Table, keys: list[str], share: float) -> np.ndarray:
    """A boolean per row of `chunk`, in its order: True where the canary scores the row."""
    import duckdb

    text = ", ".join(f"coalesce(CAST({quote(k, 'duckdb')} AS VARCHAR), '')" for k in keys)
    con = duckdb.connect()
    try:
        con.register("chunk", pa.table(chunk.select(keys)))
        # One thread: the score step's process has its own work, and a second thread was slower here. The 64-bit
        # half of the digest, not md5_number's 128 bits: modulo on a UHUGEINT took 10x as long (5M rows: 28 s).
        con.execute("SET threads = 1")
        buckets = con.execute(f"SELECT CAST(md5_number_upper(concat_ws(chr(31), {text})) % {BUCKETS} AS INTEGER) "
                              "FROM chunk").fetchnumpy()
    finally:
        con.close()
    values = next(iter(buckets.values()))
    return np.asarray(values, dtype=np.int64) < round(share * BUCKETS)


@dataclass(frozen=True)
class Side:
    """One model's realised numbers over the rollout's labelled batches."""

    version: str
    rows: int
    value: float  # the rule's metric; NaN when it cannot be measured (no rows, a single class)


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str


def judge(rule: Rollout, canary: Side, champion: Side, window_done: bool, progress: str) -> Verdict:
    """The rollout rule. Until the window's labels are in: wait. Then the canary is promoted only on evidence
    (both sides have min_rows labelled rows and the canary beats the champion by more than the margin);
    anything else, including too few labelled rows once the window is over (the timeout), rolls it back."""
    numbers = (f"{rule.metric} canary v{canary.version} {canary.value:.4f} on {canary.rows} labelled rows vs "
               f"champion v{champion.version} {champion.value:.4f} on {champion.rows}")
    if not window_done:
        return Verdict("wait", f"{progress}: {numbers}; deciding once the window's labels are in")
    short = [s for s in (canary, champion) if s.rows < rule.min_rows]
    if short:
        who = " and ".join(f"v{s.version} has {s.rows}" for s in short)
        return Verdict("rolled_back", f"timeout: {progress}, {who} labelled rows (need {rule.min_rows}): {numbers}; "
                       "rolled back, not enough evidence that the canary is better")
    if math.isnan(canary.value) or math.isnan(champion.value):
        return Verdict("rolled_back", f"{numbers}: a side cannot be measured (NaN): rolled back")
    gain = champion.value - canary.value if rule.metric in LOWER_IS_BETTER else canary.value - champion.value
    if gain > rule.margin:
        return Verdict("promoted", f"{numbers}, gain {gain:+.4f} > margin {rule.margin}: canary promoted to champion")
    return Verdict("rolled_back", f"{numbers}, gain {gain:+.4f} <= margin {rule.margin}: rolled back")


__all__ = ["BUCKETS", "SEPARATOR", "Side", "Verdict", "canary_rows", "judge"]
