"""The canary's two pure parts: the row split (the documented MD5 bucket, stable and near the share) and the
rule that waits, promotes, rolls back, or times out."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pyarrow as pa
import pytest

from dagspec.ml.canary import Side, canary_rows, judge
from dagspec.spec.canary_step import Rollout

RULE = Rollout(canary_share=0.1, window_days=7, metric="roc_auc", margin=0.01, min_rows=500)


def test_the_split_is_the_documented_md5_bucket_and_near_the_share():
    keys = pa.table({"order_id": pa.array(range(20_000), pa.int64()),
                     "region": pa.array([None if i % 7 == 0 else f"r{i % 13}" for i in range(20_000)])})
    routed = canary_rows(keys, ["order_id", "region"], 0.1)

    def bucket(order_id: int, region: str | None) -> int:
        text = f"{order_id}\x1f{region or ''}".encode()
        return int.from_bytes(hashlib.md5(text).digest()[:8], "little") % 10_000

    expected = np.array([bucket(o, r) < 1000 for o, r in zip(*keys.to_pydict().values(), strict=True)])
    assert (routed == expected).all()
    assert abs(routed.mean() - 0.1) < 0.01
    # The same rows in another order and another chunking land on the same model.
    shuffled = keys.take(pa.array(np.random.default_rng(3).permutation(20_000)))
    again = np.concatenate([canary_rows(b, ["order_id", "region"], 0.1) for b in shuffled.to_batches(3_000)])
    ids = shuffled.column("order_id").to_numpy()
    assert (again == routed[ids]).all()


def test_a_larger_share_keeps_every_earlier_canary_row():
    keys = pa.table({"k": pa.array([f"id-{i}" for i in range(5_000)])})
    small, large = canary_rows(keys, ["k"], 0.05), canary_rows(keys, ["k"], 0.2)
    assert (large | ~small).all() and large.sum() > small.sum()


def side(version: str, rows: int, value: float) -> Side:
    return Side(version, rows, value)


def test_the_rule_waits_then_decides_on_evidence_only():
    verdict = judge(RULE, side("2", 900, 0.9), side("1", 9000, 0.7), False, "3 of 7 window day(s) labelled")
    assert verdict.decision == "wait" and verdict.reason.startswith("3 of 7 window day(s) labelled: roc_auc canary v2")
    won = judge(RULE, side("2", 900, 0.75), side("1", 9000, 0.7), True, "7 of 7")
    assert won.decision == "promoted" and "gain +0.0500 > margin 0.01" in won.reason
    near = judge(RULE, side("2", 900, 0.705), side("1", 9000, 0.7), True, "7 of 7")
    assert near.decision == "rolled_back" and "gain +0.0050 <= margin 0.01" in near.reason


def test_too_few_labelled_rows_after_the_window_time_out_into_a_rollback():
    verdict = judge(RULE, side("2", 120, 0.99), side("1", 9000, 0.7), True, "7 of 7 window day(s) labelled")
    assert verdict.decision == "rolled_back"
    assert verdict.reason.startswith("timeout: 7 of 7 window day(s) labelled, v2 has 120 labelled rows (need 500)")


def test_lower_is_better_metrics_and_unmeasurable_sides():
    rmse = Rollout(canary_share=0.5, window_days=1, metric="rmse", min_rows=1)
    assert judge(rmse, side("2", 10, 1.0), side("1", 10, 2.0), True, "1 of 1").decision == "promoted"
    assert judge(rmse, side("2", 10, 3.0), side("1", 10, 2.0), True, "1 of 1").decision == "rolled_back"
    nan = judge(rmse, side("2", 10, math.nan), side("1", 10, 2.0), True, "1 of 1")
    assert nan.decision == "rolled_back" and "cannot be measured" in nan.reason


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_the_split_model_refuses_shares_that_are_not_a_canary(share):
    with pytest.raises(ValueError):
        Rollout(canary_share=share, window_days=7, metric="roc_auc")
