"""The pipeline: one definition file, its DAG-level settings, the union of every step kind, and which
kinds a step may read (the rule spec/load.py applies across steps)."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from dagspec.spec.base import ConnRef, StepBase, Strict
from dagspec.spec.batch_steps import ExtractStep, TransformStep, ValidateStep
from dagspec.spec.ml_classes import raise_declared_problems
from dagspec.spec.ml_steps import DriftStep, EvaluateStep, PromoteStep, ScoreStep, TrainStep
from dagspec.spec.monitor_step import MonitorStep
from dagspec.spec.publish_steps import PublishStep
from dagspec.spec.schedule import check_cron, check_schedule, check_timezone
from dagspec.subdaily import cut, sub_daily_cron
from dagspec.windows import Batch, Window

# A thousand definitions share a handful of schedules; checking one with croniter costs 0.2 ms.
_checked_schedule = lru_cache(maxsize=256)(check_schedule)

# The URIs dagspec gives its outputs (dagspec.airflow.assets) or any other scheme://... Airflow accepts.
ASSET_URI = r"^[a-z][a-z0-9+.-]*://[^\s]+$"

Step = Annotated[
    ExtractStep | ValidateStep | TransformStep | PublishStep | TrainStep | EvaluateStep | PromoteStep | ScoreStep | DriftStep
    | MonitorStep,
    Field(discriminator="kind"),
]


class Alerts(Strict):
    """Who hears about failed, retried or successful runs, warn checks and stale tables. Addresses and conn ids
    only: secrets stay in connections."""

    email: list[Annotated[str, Field(pattern=r"^[^@\s,;<>]+@[^@\s,;<>]+$")]] = Field(
        default_factory=list, description="Addresses that get an email (through the SMTP connection smtp_conn_id).",
        examples=[["data-team@example.com"]], json_schema_extra={"default": []},
    )
    smtp_conn_id: str = Field(
        default="smtp_default", pattern=r"^[A-Za-z0-9_.-]{1,250}$",
        description="Airflow Connection of the SMTP server (host, port, login, password; extra from_email, ssl).",
        examples=["smtp_default"],
    )
    webhook_conn_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]{1,250}$",
        description="Airflow Connection holding a Slack-compatible incoming webhook URL (host or password).",
        examples=["slack_alerts"],
    )
    on: list[Literal["failure", "retry", "monitor", "success", "warn", "stale"]] = Field(
        default_factory=lambda: ["failure", "retry", "monitor"],
        description="Which events send an alert: a task's failure or retry, a monitor step's breach (with its numbers), "
        "a successful run (once per run, with what it published), a validate step's failed warn-severity checks, "
        "stale tables found by the scheduled freshness check (once per change, and a note when fresh again).",
        examples=[["failure"]], json_schema_extra={"default": ["failure", "retry", "monitor"]},
    )

    def sends(self, kind: str) -> bool:
        """Whether an event of this kind goes anywhere: wanted in `on`, and a channel to carry it."""
        return kind in self.on and bool(self.email or self.webhook_conn_id)


FRESHNESS_SUFFIX = "__freshness"  # the scheduled freshness check's DAG: '<dag_id>__freshness'


class Freshness(Strict):
    """How old the newest staged partition of the pipeline's tables may be before they count as stale."""

    max_age_hours: float = Field(
        gt=0, le=87_600, description="Hours since the end of the newest partition's data after which a table is "
        "stale (at most ten years).",
        examples=[36],
    )
    schedule: str | None = Field(
        default=None, description="When to check (a preset or cron, in the pipeline's timezone; may be hourly): "
        "a DAG '<dag_id>__freshness' runs the check and sends 'stale' alerts. None: only 'dagspec freshness' checks.",
        examples=["0 * * * *", "@daily"],
    )

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)


DAG_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}$"


class Pipeline(Strict):
    """A pipeline definition: one JSON file, one Airflow DAG."""

    schema_uri: str | None = Field(default=None, alias="$schema", description="JSON Schema for editors.",
                                   examples=["../../include/schema/dagspec.schema.json"])
    version: Literal[1] = Field(default=1, description="Definition format version (older versions are migrated "
                                "when read; see dagspec.spec.migrate).", examples=[1])
    dag_id: str = Field(pattern=DAG_ID, description="Unique DAG id: letters, digits, '_', '.', '-'.",
                        examples=["orders_daily"])
    description: str = Field(default="", description="What the pipeline does; the first line is the DAG's "
                             "description, all of it is in the DAG's docs.", examples=["Yesterday's orders, checked."])
    owner: str = Field(default="dagspec", min_length=1, description="Owner shown in the Airflow UI.",
                       examples=["analytics"])
    tags: list[str] = Field(default_factory=list, description="Airflow tags (\"dagspec\" is always added).",
                            examples=[["orders", "finance"]], json_schema_extra={"default": []})
    schedule: str | None = Field(
        default="@daily",
        description="Cron expression or preset (@hourly, @daily, @weekly, @monthly, @yearly); null: manual only. A "
        "schedule that fires more than once a day stages one partition per interval "
        "(batch_date=YYYY-MM-DD/batch_time=HHMM/).",
        examples=["@daily", "0 3 * * *", "@hourly", "*/5 * * * *"],
    )
    schedule_assets: list[Annotated[str, Field(pattern=ASSET_URI)]] = Field(
        default_factory=list,
        description="Run when every one of these Airflow Assets has been updated (the outputs of other "
        "definitions: dagspec-warehouse://<conn_id>/<schema>/<table>, dagspec-store://..., bigquery://..., "
        "gsheets://...). The run processes the window of the newest triggering event. With 'schedule' also set, "
        "the pipeline runs on either; set \"schedule\": null to run on the assets alone.",
        examples=[["dagspec-warehouse://dagspec_warehouse/analytics/daily_revenue"]],
        json_schema_extra={"default": []},
    )
    start_date: date = Field(description="First date to process, YYYY-MM-DD.", examples=["2025-01-01"])
    end_date: date | None = Field(default=None, description="Last date to process (optional), YYYY-MM-DD.",
                                  examples=["2025-12-31"])
    catchup: bool = Field(default=False, description="Run every missed interval since start_date.", examples=[True])
    retries: int = Field(default=1, ge=0, le=20, strict=True, description="Retries of a failed task.", examples=[2])
    retry_delay_minutes: float = Field(default=5, ge=0, le=1440, description="Minutes between retries (at most a day).",
                                       examples=[10])
    max_active_runs: int = Field(default=1, ge=1, le=64, strict=True, description="Runs of this DAG at the same time "
                                 "(backfills included).", examples=[4])
    timezone: str = Field(default="UTC", description="IANA time zone the schedule runs in: cron times are local "
                          "wall-clock times, batch_date is the local date and a day is a local day (23 or 25 "
                          "hours across DST).", examples=["America/New_York"])
    batch_days: int = Field(default=1, ge=1, le=366, strict=True,
                            description="Days per staged partition when a window spans several (at most a year).",
                            examples=[7])
    batch_size: int = Field(
        default=1, ge=1, le=366, strict=True,
        description="Range-native runs: partitions read per source query, and dates per run when `dagspec run`/"
        "`backfill` covers a range (`--chunk` overrides). A chunk's rows are read once and split into its "
        "partitions as they are written; files and rows are the same as running the dates one by one. 1: one "
        "query and one run per partition.", examples=[31])
    lookback: int = Field(
        default=0, ge=0, le=366, strict=True,
        description="Self-healing: days before each run's date (at most 366) whose batches the run also processes "
        "when an extract partition of theirs is missing from the store or their last run failed; loaded dates are "
        "never redone and dates before start_date are never gaps. With a sub-daily schedule it counts schedule "
        "intervals (partitions) instead of days. 0: only the run's own window. Airflow Variables "
        "dagspec_lookback__<dag_id> and dagspec_lookback override it per deployment.",
        examples=[7],
    )
    warehouse: ConnRef = Field(
        default_factory=lambda: ConnRef(conn_id="dagspec_warehouse"),
        description="Where transforms run and tables are published (default: the embedded DuckDB).",
        examples=[{"conn_id": "analytics_pg"}], json_schema_extra={"default": {"conn_id": "dagspec_warehouse"}},
    )
    store: ConnRef = Field(
        default_factory=lambda: ConnRef(conn_id="dagspec_store"),
        description="Object store for staged and exported partitions (default: a local folder).",
        examples=[{"conn_id": "lake_s3"}], json_schema_extra={"default": {"conn_id": "dagspec_store"}},
    )
    params: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Values for SQL Jinja ({{ params.name }}).",
        examples=[{"min_amount": 10, "region": "eu"}], json_schema_extra={"default": {}},
    )
    alerts: Alerts | None = Field(default=None, description="Email and webhook alerts: task failure and retry, "
                                  "success, warn checks, stale tables.",
                                  examples=[{"email": ["data-team@example.com"], "webhook_conn_id": "slack_alerts"}])
    freshness: Freshness | None = Field(default=None, description="Maximum age of the newest staged partition.",
                                        examples=[{"max_age_hours": 36}])
    steps: list[Step] = Field(
        min_length=1, description="The steps, each of a known kind; they run in this order unless 'after' says "
        "otherwise.",
        examples=[[{"id": "extract_orders", "kind": "extract", "source": {"table": "orders"},
                    "target": {"schema": "raw", "table": "orders"}}]],
    )

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return None if value is None else _checked_schedule(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("dag_id")
    @classmethod
    def _not_a_freshness_dag(cls, value: str) -> str:
        # '<x>__freshness' is the DAG a definition x makes for its scheduled freshness check: two files would
        # then make one DAG id (and Airflow would keep whichever it parsed last).
        if value.lower().replace("-", "_").replace(".", "_").endswith(FRESHNESS_SUFFIX):
            raise ValueError(f"a dag_id may not end in {FRESHNESS_SUFFIX!r}: that name is kept for a definition's "
                             "scheduled freshness check (fix: choose another ending)")
        return value

    @model_validator(mode="after")
    def _dates(self) -> Pipeline:
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        if self.freshness and self.freshness.schedule and len(self.dag_id) + len(FRESHNESS_SUFFIX) > 250:
            raise ValueError(f"freshness.schedule makes a DAG '<dag_id>{FRESHNESS_SUFFIX}', longer than Airflow's 250 "
                             "characters: shorten dag_id")
        raise_declared_problems(self)  # a declared multi-class target and its promote steps' metrics
        if self.batch_days != 1 and self.grain_cron is not None:
            raise ValueError(f"batch_days is {self.batch_days} but schedule {self.schedule!r} runs more than once a "
                             "day, so its partitions are its intervals (fix: remove batch_days)")
        return self

    @property
    def grain_cron(self) -> str | None:
        """The cron of a sub-daily schedule (one partition per interval), None for a daily or longer grain."""
        return sub_daily_cron(self.schedule)

    def batches_of(self, window: Window) -> list[Batch]:
        """The window cut into this pipeline's partitions: schedule intervals when sub-daily, else local days."""
        expr = self.grain_cron
        if expr is not None:
            return cut(window, expr, self.timezone)
        return window.batches(self.batch_days, self.timezone)

    def step(self, step_id: str) -> StepBase:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)


KIND_OUTPUTS = {"extract", "transform"}  # kinds whose batch another step can read

# kind -> kinds of the steps it may read
REFERENCE_RULES = {
    "validate": KIND_OUTPUTS,
    "publish": KIND_OUTPUTS | {"score"},  # predictions go out through the same targets as any table
    "transform": KIND_OUTPUTS,
    "train": KIND_OUTPUTS, "score": KIND_OUTPUTS, "drift": KIND_OUTPUTS,
    "evaluate": {"train"}, "promote": {"evaluate"}, "monitor": {"score"},
}
