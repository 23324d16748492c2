"""A staged rollout's life in the registry: the promote step stages a winning challenger as the `canary`, the
score step lets it score its share, and the monitor step (whose delayed labels measure both models) ends it.

The rule travels with the version (a tag written when it is staged), so the daily pipeline that scores and
monitors judges the canary by the rule of the promote step that made it. Every decision is a set of registry
tags on the version and a JSON record under the monitor step's reports (`rollouts/MODEL_vN.json`). A decided
version keeps its decision: re-running any date (promote, score or monitor) never stages or judges it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from dagspec.ml.canary import Side, judge
from dagspec.ml.registry import CANARY
from dagspec.spec.canary_step import Rollout
from dagspec.spec.ml_steps import ScoreStep
from dagspec.spec.monitor_step import MonitorStep
from dagspec.stages.context import RunContext
from dagspec.stages.ml.common import champion_features, report_dir, version_classes, write_record
from dagspec.stages.ml.monitor_labels import labelled, measured, predicted_column
from dagspec.windows import Window

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from dagspec.ml.registry import Registry
    from dagspec.warehouse.contract import Session

RULE_TAG = "dagspec.canary.rule"  # the Rollout, as JSON
START_TAG = "dagspec.canary.start"  # the first batch_date the canary scores (the promote window's end)
DECISION_TAG = "dagspec.canary.decision"  # promoted | rolled_back, once decided (never changed after)
REASONS_TAG = "dagspec.canary.reasons"
DECIDED_TAG = "dagspec.canary.decided_at"  # wall-clock UTC time of the decision


@dataclass(frozen=True)
class Staged:
    """A canary the score step routes to."""

    version: ModelVersion
    rule: Rollout


def staged(reg: Registry, model: str) -> Staged | None:
    """The model's undecided canary, if any."""
    version = reg.aliased(model, CANARY)
    if version is None or version.tags.get(DECISION_TAG) or RULE_TAG not in version.tags:
        return None
    return Staged(version, Rollout.model_validate_json(version.tags[RULE_TAG]))


def stage(ctx: RunContext, rule: Rollout, reg: Registry, model: str, version: ModelVersion) -> tuple[str, str]:
    """Make a version that won its evaluation the canary; returns (decision tag, why). A version whose rollout
    was already decided keeps that decision (a re-run of the promote's date)."""
    v = str(version.version)
    done = version.tags.get(DECISION_TAG)
    if done:
        return done, f"v{v}'s rollout was already decided ({done}): {version.tags.get(REASONS_TAG, '')}"
    previous = reg.aliased(model, CANARY)
    if previous is not None and str(previous.version) != v and not previous.tags.get(DECISION_TAG):
        why = f"superseded by v{v} before its window ended"
        reg.tag_version(model, str(previous.version), {DECISION_TAG: "rolled_back", REASONS_TAG: why,
                                                       "dagspec.decision": "rolled_back", DECIDED_TAG: now()})
    start = ctx.window.end.date()
    reg.tag_version(model, v, {RULE_TAG: rule.model_dump_json(), START_TAG: start.isoformat()})
    reg.set_alias(model, CANARY, v)
    return "canary", (f"staged as canary from {start}: {rule.canary_share:.0%} of each batch for {rule.window_days} "
                      f"day(s), then {rule.metric} on the labels decides (margin {rule.margin}, {rule.min_rows} rows)")


def check(ctx: RunContext, session: Session, step: MonitorStep, score: ScoreStep) -> dict[str, Any] | None:
    """Judge the model's canary on the labels in so far; act on a final decision. None without a canary."""
    reg = ctx.model_registry
    finish_decided(reg, step.model)
    found = staged(reg, step.model)
    if found is None:
        return None
    canary, rule = found.version, found.rule
    record_path = report_dir(ctx, step.id, "rollouts") / f"{step.model}_v{canary.version}.json"
    champ = reg.champion(step.model)
    start, last = window_of(found)
    newest = max(ctx.batches, key=lambda b: b.batch_date)
    base = {"model": step.model, "version": str(canary.version), "rule": rule.model_dump(), "start": start.isoformat(),
            "window_last": last.isoformat()}
    if step.labels is None or champ is None:
        why = "the monitor step has no labels" if step.labels is None else "there is no champion"
        late = timed_out(found, newest.batch_date, why)
        if late is not None:
            ctx.log.warning("canary %s v%s: ROLLED_BACK: %s", step.model, canary.version, late)
            return decide(ctx, step.model, canary, {**base, "decision": "rolled_back", "reasons": [late]}, record_path)
        ctx.log.warning("canary %s v%s: cannot be judged: %s", step.model, canary.version, why)
        return {"model": step.model, "version": str(canary.version), "decision": "wait", "reasons": [why]}
    through = newest.batch_date - timedelta(days=step.labels.delay_days)
    late = timed_out(found, newest.batch_date, f"its labels are in through {through} only") if through < last else None
    if late is not None:
        ctx.log.warning("canary %s v%s: ROLLED_BACK: %s", step.model, canary.version, late)
        return decide(ctx, step.model, canary, {**base, "decision": "rolled_back", "reasons": [late],
                                                "labelled_through": through.isoformat()}, record_path)
    _, _, task = champion_features(reg, canary)
    classes = {str(v.version): version_classes(reg, v) if task == "classification" else None for v in (canary, champ)}
    predicted = predicted_column(task, classes[str(canary.version)])
    parts = []
    day = start
    while day <= min(through, last):
        shift = newest.batch_date - day  # the labelled day's window: the newest batch's, moved back whole days
        got = labelled(ctx, session, step.labels, score, day, Window(newest.from_at - shift, newest.to_at - shift),
                       predicted, step.chunk_rows)
        if got is not None:
            parts.append(got.select([step.labels.label, predicted, "model_version"]))
        day += timedelta(days=1)
    rows = pa.concat_tables(parts) if parts else None
    sides = [_side(rows, str(v.version), step.labels.label, predicted, task, classes[str(v.version)], rule)
             for v in (canary, champ)]
    done_days = max(0, (min(through, last) - start).days + 1)
    verdict = judge(rule, sides[0], sides[1], through >= last,
                    f"{done_days} of {rule.window_days} window day(s) labelled ({start} .. {last})")
    record = {**base, "champion_version": str(champ.version), "labelled_through": through.isoformat(),
              "canary": sides[0].__dict__, "champion": sides[1].__dict__, "decision": verdict.decision,
              "reasons": [verdict.reason]}
    ctx.log.info("canary %s v%s vs champion v%s: %s: %s", step.model, canary.version, champ.version,
                 verdict.decision.upper(), verdict.reason)
    return decide(ctx, step.model, canary, record, record_path)


def decide(ctx: RunContext, model: str, canary: ModelVersion, record: dict[str, Any], path: Path) -> dict[str, Any]:
    """Record a check (a JSON file under the monitor's reports) and act on a final decision."""
    record["checked_at"] = now()
    decision = record["decision"]
    if decision != "wait":
        record["decided_at"] = record["checked_at"]
        tag_decision(ctx.model_registry, model, str(canary.version), decision, record["reasons"][0])
    write_record(path, record)
    if decision != "wait":
        finish(ctx.model_registry, model, str(canary.version), decision)
    record["record"] = str(path)
    return record


def tag_decision(reg: Registry, model: str, version: str, decision: str, reason: str) -> None:
    # Tags first: once they say decided, nothing routes to or judges this version again, even if moving the
    # aliases afterwards fails (the next run finds it decided and only finishes the moves).
    reg.tag_version(model, version, {DECISION_TAG: decision, REASONS_TAG: reason, DECIDED_TAG: now(),
                                     "dagspec.decision": decision, "dagspec.reasons": reason})


def window_of(found: Staged) -> tuple[date, date]:
    """The first and last batch_date of the canary's window."""
    start = date.fromisoformat(found.version.tags[START_TAG])
    return start, start + timedelta(days=found.rule.window_days - 1)


def timed_out(found: Staged, today: date, why: str) -> str | None:
    """The reason to roll back a canary still undecided past its deadline (the rule's timeout_days after its
    window); None while it has time. Rolled back, not promoted nor left running: the champion is the version
    with evidence behind it, a canary is meant to take live traffic only while it is being judged, and an
    inconclusive analysis ending in a rollback is what model-ops users know from MLflow deployment and
    progressive-delivery tools. Re-staging it is one promote run away."""
    _, last = window_of(found)
    deadline = last + timedelta(days=found.rule.timeout_days)
    if today <= deadline:
        return None
    return (f"timeout: undecided on {today}, {found.rule.timeout_days} day(s) after the window's last batch {last} "
            f"(deadline {deadline}): {why}; rolled back, nothing shows the canary is better than the champion")


def expire(reg: Registry, model: str, found: Staged, today: date) -> str | None:
    """For the score step: roll back a canary past its deadline that no monitor step decided (none judges it, or
    none has labels); the reason, or None while it may still be judged."""
    late = timed_out(found, today, "no monitor step with labels decided it")
    if late is not None:
        tag_decision(reg, model, str(found.version.version), "rolled_back", late)
        finish(reg, model, str(found.version.version), "rolled_back")
    return late


def finish(reg: Registry, model: str, version: str, decision: str) -> None:
    """The alias moves of a decision (safe to repeat)."""
    if decision == "promoted":
        reg.set_champion(model, version)
    current = reg.aliased(model, CANARY)
    if current is not None and str(current.version) == version:
        reg.drop_alias(model, CANARY)


def finish_decided(reg: Registry, model: str) -> None:
    """A canary alias left on a decided version (a task that died between tagging and moving): finish it."""
    version = reg.aliased(model, CANARY)
    if version is not None and version.tags.get(DECISION_TAG):
        finish(reg, model, str(version.version), version.tags[DECISION_TAG])


def _side(rows: pa.Table | None, version: str, label: str, predicted: str, task: str, classes: list | None,
          rule: Rollout) -> Side:
    if rows is None:
        return Side(version, 0, float("nan"))
    mine = rows.filter(pc.equal(rows.column("model_version"), int(version))).to_pandas()
    n, scores = measured(mine, label, predicted, task, classes)
    return Side(version, n, float(scores.get(rule.metric, float("nan"))))


def now() -> str:
    """The wall-clock UTC time decisions are stamped with."""
    return f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"


__all__ = ["DECISION_TAG", "REASONS_TAG", "RULE_TAG", "START_TAG", "Staged", "check", "decide", "expire", "finish",
           "finish_decided", "now", "stage", "staged", "tag_decision", "timed_out", "window_of"]
