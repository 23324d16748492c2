"""Step kinds that keep a model fresh: train, evaluate, promote, score, drift.

Estimators come from an allow-list by name, with their parameters checked against a static table
(kept in step with scikit-learn by a unit test), so validating a definition imports no ML library
and a definition can never name code to import.
"""

from __future__ import annotations

import difflib
from typing import Literal

from pydantic import Field, field_validator, model_validator

from dagspec.spec.base import Identifier, StepBase, StepId, Strict, TableRef
from dagspec.spec.canary_step import Rollout
from dagspec.spec.metric_names import Metric
from dagspec.spec.ml_preprocess import Preprocess, raise_chain_problems

ModelName = Identifier  # a registered model name doubles as an Asset and folder name: keep it plain

# name -> (task, "module:Class", {param: allowed JSON types}). Only these can be built.
_NUM = (int, float)
_OPT_INT = (int, type(None))
_OPT_NUM = (int, float, type(None))
_OPT_STR = (str, type(None))
ESTIMATORS: dict[str, tuple[str, str, dict[str, tuple[type, ...]]]] = {
    "logistic_regression": ("classification", "sklearn.linear_model:LogisticRegression", {
        "C": _NUM, "l1_ratio": _OPT_NUM, "class_weight": _OPT_STR, "max_iter": (int,), "tol": _NUM,
        "fit_intercept": (bool,), "solver": (str,), "random_state": _OPT_INT}),
    "random_forest_classifier": ("classification", "sklearn.ensemble:RandomForestClassifier", {
        "n_estimators": (int,), "max_depth": _OPT_INT, "min_samples_split": _NUM, "min_samples_leaf": _NUM,
        "max_features": (str, int, float, type(None)), "class_weight": _OPT_STR, "n_jobs": _OPT_INT,
        "criterion": (str,), "bootstrap": (bool,), "max_samples": _OPT_NUM, "random_state": _OPT_INT}),
    "hist_gradient_boosting_classifier": ("classification", "sklearn.ensemble:HistGradientBoostingClassifier", {
        "learning_rate": _NUM, "max_iter": (int,), "max_leaf_nodes": _OPT_INT, "max_depth": _OPT_INT,
        "min_samples_leaf": (int,), "l2_regularization": _NUM, "max_bins": (int,), "early_stopping": (str, bool),
        "class_weight": _OPT_STR, "random_state": _OPT_INT}),
    "linear_regression": ("regression", "sklearn.linear_model:LinearRegression", {
        "fit_intercept": (bool,), "positive": (bool,)}),
    "ridge": ("regression", "sklearn.linear_model:Ridge", {
        "alpha": _NUM, "fit_intercept": (bool,), "solver": (str,), "max_iter": _OPT_INT, "tol": _NUM,
        "random_state": _OPT_INT}),
    "random_forest_regressor": ("regression", "sklearn.ensemble:RandomForestRegressor", {
        "n_estimators": (int,), "max_depth": _OPT_INT, "min_samples_split": _NUM, "min_samples_leaf": _NUM,
        "max_features": (str, int, float, type(None)), "n_jobs": _OPT_INT, "criterion": (str,),
        "bootstrap": (bool,), "max_samples": _OPT_NUM, "random_state": _OPT_INT}),
    "hist_gradient_boosting_regressor": ("regression", "sklearn.ensemble:HistGradientBoostingRegressor", {
        "learning_rate": _NUM, "max_iter": (int,), "max_leaf_nodes": _OPT_INT, "max_depth": _OPT_INT,
        "min_samples_leaf": (int,), "l2_regularization": _NUM, "max_bins": (int,), "early_stopping": (str, bool),
        "loss": (str,), "random_state": _OPT_INT}),
}

CLASSIFICATION_METRICS = ("roc_auc", "pr_auc", "f1", "precision", "recall", "log_loss", "accuracy", "npv", "specificity")
MULTICLASS_METRICS = ("accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
LOWER_IS_BETTER = {"log_loss", "rmse", "mae"}


def task_of(estimator: str) -> str:
    return ESTIMATORS[estimator][0]


class Feature(Strict):
    """One input column and how it is prepared (scikit-learn ColumnTransformer)."""

    column: Identifier = Field(description="Column of the data that feeds the model.", examples=["amount", "channel"])
    type: Literal["numeric", "categorical"] = Field(
        description="numeric: impute + scale; categorical: impute + one-hot.", examples=["numeric", "categorical"]
    )
    impute: Literal["mean", "median", "most_frequent", "constant"] | None = Field(
        default=None,
        description="Missing values: numeric default median; categorical default constant ('__missing__').",
        examples=["median", "most_frequent"],
    )
    scale: Literal["standard", "minmax", "none"] = Field(
        default="standard", description="Numeric only: standard (mean 0, variance 1), minmax (0 to 1) or none.",
        examples=["minmax"],
    )
    min_frequency: int | None = Field(
        default=None, ge=1, le=1_000_000_000, strict=True,
        description="Categorical: categories seen fewer times are grouped as infrequent.",
        examples=[20],
    )
    preprocess: list[Preprocess] = Field(
        default_factory=list, max_length=4, json_schema_extra={"default": []},
        description="Allow-listed transformers applied in order after imputing (before scaling; target_encoding "
        "replaces one-hot): log1p, clip, power, quantile_bins, polynomial (numeric); target_encoding (categorical).",
        examples=[[{"name": "clip", "min": 0, "max": 5000}, {"name": "log1p"}]],
    )

    @model_validator(mode="after")
    def _fits_type(self) -> Feature:
        if self.type == "categorical" and self.impute in ("mean", "median"):
            raise ValueError(f"a categorical column cannot be imputed with the {self.impute}; use most_frequent or constant")
        raise_chain_problems(self.preprocess, self.type, self.min_frequency)
        return self


class MLData(Strict):
    """Rows for a model step: a step's output, a warehouse table, or SQL (a file, or inline) run in the warehouse."""

    input: StepId | None = Field(default=None, description="An extract or transform step whose batches are read. "
                                 "Give exactly one of input, table, sql or query.", examples=["order_features"])
    table: TableRef | None = Field(default=None, description="A warehouse table (e.g. a published one).",
                                   examples=[{"schema": "ml", "table": "order_features"}])
    sql: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]*\.sql$",
        description="A SQL file under include/sql/ run in the warehouse; :from_date and :to_date bound the window.",
        examples=["ml/training_rows.sql"],
    )
    query: str | None = Field(
        default=None, min_length=1, max_length=100_000,
        description="The SQL itself, inline, for a drop that carries its own SQL: rendered and bound like a SQL file.",
        examples=["SELECT * FROM ml.order_features WHERE ordered_at >= :from_date AND ordered_at < :to_date"],
    )
    time_column: Identifier | None = Field(
        default=None, description="Table mode: the column that places a row in time (default: the batch_date column).",
        examples=["ordered_at"],
    )
    days: int | None = Field(
        default=None, ge=1, le=3660, strict=True,
        description="Look back this many days from the end of the run's window (default: just the run's window).",
        examples=[90],
    )

    @property
    def sql_label(self) -> str | None:
        """How messages name the data's SQL: its file, or the inline query."""
        return self.sql or ("the inline data query" if self.query is not None else None)

    @model_validator(mode="after")
    def _one(self) -> MLData:
        if sum(x is not None for x in (self.input, self.table, self.sql, self.query)) != 1:
            raise ValueError("give exactly one of 'input', 'table', 'sql' or 'query'")
        if self.sql is not None and ".." in self.sql.split("/"):
            raise ValueError("the SQL file must be inside include/sql/ (no '..')")
        if self.time_column is not None and self.table is None:
            raise ValueError("'time_column' goes with 'table'")
        return self


class Split(Strict):
    """How the holdout is cut, without leakage: by time (the latest rows) or by entity (whole entities)."""

    by: Literal["time", "entity"] = Field(
        description="time: hold out the latest rows; entity: hold out whole entities (none is in both sets).",
        examples=["time", "entity"],
    )
    column: Identifier = Field(description="time: a timestamp/date column; entity: an id column (e.g. customer_id).",
                               examples=["ordered_at", "customer_id"])
    holdout: float = Field(default=0.2, gt=0, lt=0.9, description="Share of rows (time) or entities held out.",
                           examples=[0.25])


class ModelStepBase(StepBase):
    model: ModelName = Field(description="Registered model name in the registry (MLflow); the train, score and drift "
                             "steps of one model use the same name.", examples=["orders_lost"])


class TrainStep(ModelStepBase):
    """Fit a scikit-learn pipeline (preprocessing + estimator) on a window and register it as a challenger."""

    kind: Literal["train"] = Field(description="Step kind: fit a model and register it as the challenger.",
                                   examples=["train"])
    estimator: str = Field(
        description="Estimator name from the allow-list (classifiers for a 0/1 target, regressors for a number).",
        examples=["logistic_regression", "hist_gradient_boosting_regressor"],
        json_schema_extra={"enum": list(ESTIMATORS)},
    )
    params: dict[str, int | float | str | bool | None] = Field(
        default_factory=dict, description="Estimator parameters (scikit-learn names; each estimator allows its own).",
        examples=[{"C": 1.0, "max_iter": 500}], json_schema_extra={"default": {}},
    )
    features: list[Feature] = Field(
        min_length=1, description="Input columns and how each is prepared.",
        examples=[[{"column": "amount", "type": "numeric"}, {"column": "channel", "type": "categorical"}]],
    )
    target: Identifier = Field(description="The column to predict (classification: 0/1 or true/false, or more than "
                               "two classes: whole numbers or text).", examples=["is_lost"])
    classes: list[int] | list[str] | None = Field(
        default=None, min_length=3, max_length=1000,
        description="A multi-class target's labels, declared: validate then refuses binary-only metrics, and training "
        "rows with another label fail (default: more than two distinct values at train time make it multi-class).",
        examples=[["consumer", "corporate", "small_business"]])
    data: MLData = Field(description="Rows to train on: a step's output, a warehouse table or a SQL file.",
                         examples=[{"table": {"schema": "ml", "table": "order_features"}, "days": 90}])
    split: Split = Field(description="How the holdout used by the evaluate step is cut.",
                         examples=[{"by": "time", "column": "ordered_at", "holdout": 0.2}])
    seed: int = Field(default=42, ge=0, le=2**32 - 1, strict=True,
                      description="Seeds the estimator (when it takes random_state) and the entity split.",
                      examples=[7])
    min_rows: int = Field(default=100, ge=10, le=1_000_000_000, strict=True,
                          description="Fewer training rows than this fails the step.",
                          examples=[1000])

    @field_validator("estimator")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in ESTIMATORS:
            close = difflib.get_close_matches(value, list(ESTIMATORS), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"unknown estimator {value!r}; {hint}allowed: {', '.join(ESTIMATORS)}")
        return value

    @model_validator(mode="after")
    def _params_and_columns(self) -> TrainStep:
        allowed = ESTIMATORS[self.estimator][2]
        for name, value in self.params.items():
            if name not in allowed:
                close = difflib.get_close_matches(name, list(allowed), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ValueError(f"{self.estimator} has no parameter {name!r}; {hint}allowed: {', '.join(allowed)}")
            types = allowed[name]
            if type(value) not in types and not (type(value) is int and float in types):
                names = "/".join("null" if t is type(None) else t.__name__ for t in types)
                raise ValueError(f"parameter {name!r} of {self.estimator} must be {names}, not {value!r}")
        columns = [f.column for f in self.features]
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        if dupes:
            raise ValueError(f"feature column(s) listed twice: {', '.join(dupes)}")
        if self.target in columns:
            raise ValueError(f"the target {self.target!r} is also a feature: that leaks the answer")
        if self.split.column == self.target:
            raise ValueError("the split column cannot be the target")
        return self

    @property
    def task(self) -> str:
        return task_of(self.estimator)

    def ref_fields(self) -> list[tuple[tuple[str | int, ...], str]]:
        return [(("data", "input"), self.data.input)] if self.data.input else []

    def refs(self) -> list[str]:
        return [r for _, r in self.ref_fields()]


class EvaluateStep(StepBase):
    """Metrics of the challenger a train step made, and of the champion, on the same holdout."""

    kind: Literal["evaluate"] = Field(description="Step kind: score the challenger and the champion on the holdout.",
                                      examples=["evaluate"])
    input: StepId = Field(description="The train step whose challenger is evaluated.", examples=["train"])
    threshold: float = Field(default=0.5, gt=0, lt=1,
                             description="Classification: probability cut for F1, precision, recall, accuracy, "
                             "NPV, specificity and the confusion matrix.", examples=[0.3])

    def ref_fields(self) -> list[tuple[tuple[str | int, ...], str]]:
        return [(("input",), self.input)]

    def refs(self) -> list[str]:
        return [self.input]


class Guard(Strict):
    """A metric the challenger may not make worse than the champion's by more than a limit."""

    metric: Metric = Field(description="The metric guarded (direction known per metric).",
                           examples=["log_loss", "recall"])
    max_degradation: float = Field(ge=0, description="How much worse than the champion this metric may get.",
                                   examples=[0.02])


class PromoteStep(StepBase):
    """Make the challenger the champion only when it wins; the decision and its numbers are recorded."""

    kind: Literal["promote"] = Field(description="Step kind: make the challenger the champion when it wins.",
                                     examples=["promote"])
    input: StepId = Field(description="The evaluate step whose numbers decide.", examples=["evaluate"])
    primary: Metric = Field(description="The metric that must improve (direction known per metric).",
                            examples=["roc_auc", "rmse"])
    margin: float = Field(default=0.0, ge=0, description="The challenger must beat the champion by more than this.",
                          examples=[0.005])
    guards: list[Guard] = Field(default_factory=list, description="Metrics that may not degrade past their limit.",
                                examples=[[{"metric": "log_loss", "max_degradation": 0.02}]],
                                json_schema_extra={"default": []})
    minimums: dict[Metric, float] = Field(
        default_factory=dict,
        description="The first model (no champion yet) is promoted only if it meets these absolute bounds "
        "(a minimum, or a maximum for rmse/mae/log_loss).",
        examples=[{"roc_auc": 0.6}], json_schema_extra={"default": {}},
    )
    rollout: Rollout | None = Field(
        default=None, description="Stage the promotion: a winning challenger becomes the `canary` (the first model "
        "still becomes the champion), and the monitor step's labels promote or roll it back.",
        examples=[{"canary_share": 0.1, "window_days": 7, "metric": "roc_auc", "margin": 0.0, "min_rows": 500}])

    def ref_fields(self) -> list[tuple[tuple[str | int, ...], str]]:
        return [(("input",), self.input)]

    def refs(self) -> list[str]:
        return [self.input]


class ScoreOutput(Strict):
    """Where predictions are written: a warehouse table, Parquet partitions in the store, or both."""

    table: TableRef | None = Field(default=None,
                                   description="Warehouse table; each batch is replaced in one transaction.",
                                   examples=[{"schema": "ml", "table": "order_scores"}])
    export: TableRef | None = Field(default=None, description="Store location for Parquet partitions.",
                                    examples=[{"schema": "ml", "table": "order_scores"}])

    @model_validator(mode="after")
    def _somewhere(self) -> ScoreOutput:
        if self.table is None and self.export is None:
            raise ValueError("give 'table', 'export' or both")
        return self


class ScoreStep(ModelStepBase):
    """Batch predictions from the champion for each batch of the window, streamed in chunks."""

    kind: Literal["score"] = Field(description="Step kind: write the champion's predictions for each batch.",
                                   examples=["score"])
    data: MLData = Field(description="Rows to score, one batch of the run's window at a time (no 'days').",
                         examples=[{"input": "order_features"}])
    keys: list[Identifier] = Field(min_length=1, description="Columns copied beside each prediction (e.g. order_id).",
                                   examples=[["order_id", "customer_id"]])
    output: ScoreOutput = Field(description="Where the predictions go: a warehouse table, the store, or both.",
                                examples=[{"table": {"schema": "ml", "table": "order_scores"}}])
    chunk_rows: int = Field(default=100_000, ge=100, le=10_000_000, strict=True,
                            description="Rows predicted at a time; bounds memory.",
                            examples=[20_000])

    @model_validator(mode="after")
    def _per_batch(self) -> ScoreStep:
        if self.data.days is not None:
            raise ValueError("scores are written per batch of the run's window: leave 'data.days' out")
        return self

    def ref_fields(self) -> list[tuple[tuple[str | int, ...], str]]:
        return [(("data", "input"), self.data.input)] if self.data.input else []

    def refs(self) -> list[str]:
        return [r for _, r in self.ref_fields()]


class DriftStep(ModelStepBase):
    """PSI (and KS for numeric features) of recent data against the champion's training reference."""

    kind: Literal["drift"] = Field(description="Step kind: compare recent data with the champion's training data.",
                                   examples=["drift"])
    data: MLData = Field(description="The recent rows compared with the training reference.",
                         examples=[{"input": "order_features"}, {"table": {"schema": "ml", "table": "order_features"},
                                                                 "days": 7}])
    psi_threshold: float = Field(default=0.2, gt=0, description="A feature with PSI above this has drifted.",
                                 examples=[0.25])
    ks_threshold: float | None = Field(
        default=None, gt=0, le=1, description="Also flag numeric features whose KS statistic exceeds this.",
        examples=[0.15],
    )
    retrain: bool = Field(
        default=True,
        description="On drift, trigger the pipelines that train this model (in Airflow: an Asset they are scheduled on).",
        examples=[False],
    )

    def ref_fields(self) -> list[tuple[tuple[str | int, ...], str]]:
        return [(("data", "input"), self.data.input)] if self.data.input else []

    def refs(self) -> list[str]:
        return [r for _, r in self.ref_fields()]


ML_STEPS = (TrainStep, EvaluateStep, PromoteStep, ScoreStep, DriftStep)
ML_KINDS = ("train", "evaluate", "promote", "score", "drift", "monitor")  # the one list; the plan exports it with the rest
