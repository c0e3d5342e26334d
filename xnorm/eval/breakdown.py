"""Mention-level metrics per group: per language, per entity type, or per any key column the caller gives
(e.g. the provenance of the matched name). Groups are computed in one pass with ``bincount``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .ranking import DEFAULT_KS, metric_names, per_mention_values
from .stats import bootstrap_ci


def group_keys(keys: Sequence) -> np.ndarray:
    """The group each mention falls in, as :func:`breakdown` names groups (``None`` -> ``""``, else ``str``)."""
    return np.asarray([str(k) if k is not None else "" for k in keys], dtype=object)


def breakdown(
    ranks: np.ndarray,
    keys: Sequence,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    ci: bool = False,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, dict]:
    """``{group: {metric: value, ..., "n_mentions": count}}`` for each distinct key, groups sorted by key.

    With ``ci`` each group also gets ``"ci": {metric: [low, high]}`` (bootstrap within the group, seeded).
    """
    ranks = np.asarray(ranks)
    keys_arr = group_keys(keys)
    if len(keys_arr) != len(ranks):
        raise ValueError(f"{len(ranks)} ranks but {len(keys_arr)} keys")
    if len(ranks) == 0:
        return {}
    groups, inverse = np.unique(keys_arr.astype(str), return_inverse=True)
    values = per_mention_values(ranks, ks)
    counts = np.bincount(inverse, minlength=len(groups))
    sums = np.stack([np.bincount(inverse, weights=values[:, j], minlength=len(groups))
                     for j in range(values.shape[1])], axis=1)
    means = sums / counts[:, None]
    names = metric_names(ks)
    out: dict[str, dict] = {}
    for g, group in enumerate(groups.tolist()):
        row: dict = {name: float(v) for name, v in zip(names, means[g])}
        row["n_mentions"] = int(counts[g])
        if ci:
            low, high = bootstrap_ci(values[inverse == g], n_resamples, confidence, seed)
            row["ci"] = {name: [float(lo), float(hi)] for name, lo, hi in zip(names, low, high)}
        out[group] = row
    return out
