"""The scikit-learn transformer behind each allow-listed preprocessing name (spec/ml_preprocess.py).

Each name builds one fixed class with the definition's checked parameters; the only functions involved are
numpy's own (log1p, clip), never anything a definition names. Every type these leave in a fitted model is in
ml/model_files.py's TRUSTED_TYPES, so saved models load through skops without widening what is trusted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dagspec.spec.ml_preprocess import Clip, Log1p, Polynomial, Power, QuantileBins, TargetEncoding

if TYPE_CHECKING:
    from sklearn.base import TransformerMixin


def transformer(item: Any, seed: int) -> TransformerMixin:
    import numpy as np
    from sklearn.preprocessing import (
        FunctionTransformer,
        KBinsDiscretizer,
        PolynomialFeatures,
        PowerTransformer,
        TargetEncoder,
    )

    if isinstance(item, Log1p):
        return FunctionTransformer(np.log1p, feature_names_out="one-to-one")
    if isinstance(item, Clip):
        bounds = {"a_min": item.min, "a_max": item.max}
        return FunctionTransformer(np.clip, kw_args=bounds, feature_names_out="one-to-one")
    if isinstance(item, Power):
        return PowerTransformer(method=item.method, standardize=True)
    if isinstance(item, QuantileBins):
        # quantile_method pinned: scikit-learn changed its default, and a retrain must cut the same bins.
        return KBinsDiscretizer(n_bins=item.n_bins, strategy=item.strategy, subsample=None,
                                encode="onehot-dense" if item.encode == "onehot" else "ordinal",
                                quantile_method="averaged_inverted_cdf", random_state=seed)
    if isinstance(item, Polynomial):
        return PolynomialFeatures(degree=item.degree, include_bias=False)
    if isinstance(item, TargetEncoding):
        from sklearn.model_selection import KFold

        # A seeded splitter: the cross fitting (and so the encoded values) is the same on every retrain.
        return TargetEncoder(smooth=item.smooth, cv=KFold(item.cv, shuffle=True, random_state=seed))
    raise TypeError(f"no transformer for {type(item).__name__}")  # the spec's union and this list go together


def numeric_stages(chain: list[Any], seed: int) -> list[tuple[str, TransformerMixin]]:
    """(name, transformer) steps for a numeric feature's chain, named by position so two of a kind stay apart."""
    return [(f"{i}_{item.name}", transformer(item, seed)) for i, item in enumerate(chain)]


def target_encoder(chain: list[Any], seed: int) -> TransformerMixin | None:
    """A categorical feature's TargetEncoder when its chain asks for one (it replaces one-hot)."""
    found = [item for item in chain if isinstance(item, TargetEncoding)]
    return transformer(found[0], seed) if found else None
