"""Preprocessing a feature beyond impute/scale/one-hot: a short chain of scikit-learn transformers, each chosen by
name from an allow-list and given typed, bounded parameters.

Nothing here names code: each name maps to one fixed transformer (ml/preprocess.py builds it), so a definition
can never import a module or pass a callable. Unknown names and bad parameters are reported at their own JSON
path (spec/load.py reads the `dagspec_problems` error this module raises).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from dagspec.spec.base import Strict

SubProblem = tuple[tuple[str | int, ...], str, str]


class Log1p(Strict):
    """log(1 + x): tames a long right tail (amounts, counts). Values must be above -1: put `clip` first if not."""

    name: Literal["log1p"] = Field(description="log(1 + x) of the (imputed) value.", examples=["log1p"])


class Clip(Strict):
    """Values outside [min, max] are set to the bound: outliers stop dominating a linear model."""

    name: Literal["clip"] = Field(description="Clip the value to [min, max].", examples=["clip"])
    min: float | None = Field(default=None, ge=-1e15, le=1e15, description="Lower bound (none: no lower bound).",
                              examples=[0])
    max: float | None = Field(default=None, ge=-1e15, le=1e15, description="Upper bound (none: no upper bound).",
                              examples=[1000])

    @model_validator(mode="after")
    def _bounds(self) -> Clip:
        if self.min is None and self.max is None:
            raise ValueError("clip needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and not self.min < self.max:
            raise ValueError(f"clip 'min' ({self.min}) must be below 'max' ({self.max})")
        return self


class Power(Strict):
    """A power transform (PowerTransformer) towards a normal shape, standardised after."""

    name: Literal["power"] = Field(description="Yeo-Johnson (any value) or Box-Cox (positive values only).",
                                   examples=["power"])
    method: Literal["yeo-johnson", "box-cox"] = Field(default="yeo-johnson", description="The power family.",
                                                      examples=["box-cox"])


class QuantileBins(Strict):
    """Cut into bins (KBinsDiscretizer): a linear model gets a step function of the value."""

    name: Literal["quantile_bins"] = Field(description="Bin the value; one column per bin, or the bin's number.",
                                           examples=["quantile_bins"])
    n_bins: int = Field(default=5, ge=2, le=100, strict=True, description="How many bins.", examples=[10])
    strategy: Literal["quantile", "uniform", "kmeans"] = Field(
        default="quantile", description="quantile: equal row counts; uniform: equal widths; kmeans: 1-D k-means.",
        examples=["uniform"])
    encode: Literal["onehot", "ordinal"] = Field(default="onehot", description="One 0/1 column per bin, or the bin number.",
                                                 examples=["ordinal"])


class Polynomial(Strict):
    """x, x^2 (and x^3): a linear model can bend (PolynomialFeatures of the one column)."""

    name: Literal["polynomial"] = Field(description="Powers of the value up to `degree`.", examples=["polynomial"])
    degree: int = Field(default=2, ge=2, le=3, strict=True, description="Highest power (2 or 3).", examples=[3])


class TargetEncoding(Strict):
    """A categorical column as the (cross-fitted) mean of the target per category (TargetEncoder), instead of one-hot:
    for many categories. A multi-class target gives one column per class."""

    name: Literal["target_encoding"] = Field(description="Replace one-hot with the target's mean per category.",
                                             examples=["target_encoding"])
    smooth: float | Literal["auto"] = Field(default="auto", description="Shrinkage towards the overall mean: 'auto' "
                                            "(empirical Bayes) or a number >= 0.", examples=["auto", 10.0])
    cv: int = Field(default=5, ge=2, le=20, strict=True, description="Folds of the cross fitting during training.",
                    examples=[5])

    @model_validator(mode="after")
    def _smooth(self) -> TargetEncoding:
        if self.smooth != "auto" and not (0 <= float(self.smooth) <= 1e9 and math.isfinite(float(self.smooth))):
            raise ValueError(f"'smooth' must be 'auto' or a number from 0 to 1e9, not {self.smooth!r}")
        return self


MODELS: dict[str, type[Strict]] = {"log1p": Log1p, "clip": Clip, "power": Power, "quantile_bins": QuantileBins,
                                   "polynomial": Polynomial, "target_encoding": TargetEncoding}
NUMERIC_ONLY = {"log1p", "clip", "power", "quantile_bins", "polynomial"}
CATEGORICAL_ONLY = {"target_encoding"}
WIDENING = {"quantile_bins", "polynomial"}  # one column in, several out: nothing per-value can follow them


def _explain(err: dict[str, Any], name: str) -> tuple[str, str]:
    kind, got = err["type"], err.get("input")
    field = str(err["loc"][-1]) if err["loc"] else "name"
    if kind == "extra_forbidden":
        keys = [k for k in MODELS[name].model_fields if k != "name"]
        return f"{name} has no parameter {field!r}", f"parameters it takes: {', '.join(keys) or 'none'}"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, "), ""
    bound = next(iter((err.get("ctx") or {}).values()), "")
    sign = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">", "less_than": "<"}.get(kind)
    if sign:
        return f"{name} {field!r} is out of bounds (got {got!r})", f"use a value {sign} {bound}"
    if kind == "literal_error":
        return f"{name} {field!r}: {err['msg']} (got {got!r})", f"use one of: {bound}"
    return f"{name} {field!r}: {err['msg']} (got {str(got)[:40]!r})", ""


def _check(value: Any) -> Any:
    """Every problem of one preprocessing item at its own path, before the tagged union sees it (the union's own
    errors would name a step kind and put the tag in the path)."""
    if not isinstance(value, dict):
        return value  # pydantic's own "expected an object"
    name = value.get("name")
    allowed = ", ".join(MODELS)
    if name not in MODELS:
        msg = ("preprocessing has no 'name'" if name is None
               else f"unknown preprocessing {str(name)[:60]!r}: only allow-listed transformers can be named")
        raise PydanticCustomError("dagspec_problems", "{summary}", {
            "summary": msg, "problems": [(("name",), msg, f"use one of: {allowed}")]})
    try:
        MODELS[name].model_validate(value)
    except ValidationError as exc:
        problems: list[SubProblem] = [(tuple(e["loc"]), *_explain(e, name)) for e in exc.errors(include_url=False)]
        raise PydanticCustomError("dagspec_problems", "{summary}", {
            "summary": "; ".join(m for _, m, _ in problems), "problems": problems}) from None
    return value


Preprocess = Annotated[Log1p | Clip | Power | QuantileBins | Polynomial | TargetEncoding,
                       Field(discriminator="name"), BeforeValidator(_check)]


def chain_problems(chain: list[Any], feature_type: str, min_frequency: int | None) -> list[SubProblem]:
    """What cannot be built from this chain on a feature of this type: each problem at ("preprocess", i)."""
    out: list[SubProblem] = []
    names = [p.name for p in chain]
    for i, name in enumerate(names):
        at = ("preprocess", i)
        if feature_type == "categorical" and name in NUMERIC_ONLY:
            out.append((at, f"{name} works on numbers; this feature is categorical",
                        "use target_encoding here, or make the feature numeric"))
        elif feature_type == "numeric" and name in CATEGORICAL_ONLY:
            out.append((at, f"{name} works on categories; this feature is numeric",
                        f"use one of: {', '.join(sorted(NUMERIC_ONLY))}"))
        elif name in WIDENING and i != len(names) - 1:
            out.append((at, f"{name} turns one column into several, so it must come last",
                        f"move {name} to the end of 'preprocess'"))
        elif names.count(name) > 1 and names.index(name) != i:
            out.append((at, f"{name} is listed twice", "keep one"))
    if "target_encoding" in names and min_frequency is not None:
        out.append((("min_frequency",), "min_frequency groups one-hot categories; target_encoding replaces one-hot",
                    "remove min_frequency (target_encoding's 'smooth' handles rare categories)"))
    return out


def raise_chain_problems(chain: list[Any], feature_type: str, min_frequency: int | None) -> None:
    problems = chain_problems(chain, feature_type, min_frequency)
    if problems:
        raise PydanticCustomError("dagspec_problems", "{summary}", {
            "summary": "; ".join(m for _, m, _ in problems), "problems": problems})
