"""Fusing the ranked lists of several generators (or of several queries) into one.

Scores of different generators live on different scales (TF-IDF cosine vs. embedding cosine), so a raw max
is meaningless. Two comparable alternatives:

- ``rrf`` (default): reciprocal-rank fusion, ``sum_g w_g / (k + rank_g)`` (rank from 1); a candidate missing
  from a list gets nothing from it.
- ``minmax`` / ``zscore``: calibrated score fusion; each list's scores are normalised over the mention's own
  list (min-max to [0, 1], or z-score) and summed with weights. A candidate missing from a list counts as that
  list's worst score for the mention (it was not good enough to be listed).

Each fused candidate keeps the name and route of the generator that ranked it best (ties: the earlier list).

``fallback_weights`` (optional) replace ``weights`` for candidates a generator found through another language's
names (route english-fallback / any-language): character n-grams of a Spanish mention say little about an English
name, so TF-IDF deserves less say there than on same-language matches, while the multilingual encoder keeps its.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..types import ROUTE_SAME_LANGUAGE, Candidates
from .base import pack


def _normalised(c: Candidates, method: str, rrf_k: float) -> tuple[np.ndarray, np.ndarray]:
    """Per entry, the value it contributes, and per row the value an absent candidate gets."""
    n, k = c.shape
    valid = c.concepts >= 0
    if method == "rrf":
        ranks = np.broadcast_to(np.arange(1, k + 1, dtype=np.float64), (n, k))
        return 1.0 / (rrf_k + ranks), np.zeros(n)
    s = np.where(valid, c.scores.astype(np.float64), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        has = valid.any(axis=1)
        lo = np.where(has, np.nanmin(np.where(has[:, None], s, 0.0), axis=1), 0.0)
        hi = np.where(has, np.nanmax(np.where(has[:, None], s, 0.0), axis=1), 0.0)
        if method == "minmax":
            span = hi - lo
            # One candidate (or all equal): it is the best the list has, so it gets the top value.
            val = np.where(span[:, None] > 0, (s - lo[:, None]) / np.where(span > 0, span, 1.0)[:, None], 1.0)
            return np.nan_to_num(val), np.zeros(n)
        mean = np.where(has, np.nanmean(np.where(has[:, None], s, 0.0), axis=1), 0.0)
        std = np.where(has, np.nanstd(np.where(has[:, None], s, 0.0), axis=1), 0.0)
        z = np.where(std[:, None] > 0, (s - mean[:, None]) / np.where(std > 0, std, 1.0)[:, None], 0.0)
        zmin = np.where(std > 0, (lo - mean) / np.where(std > 0, std, 1.0), 0.0)
        return np.nan_to_num(z), zmin


def fuse(lists: Sequence[Candidates], k: int, method: str = "rrf", weights: Sequence[float] | None = None,
         rrf_k: float = 60.0, source: str = "fusion",
         fallback_weights: Sequence[float] | None = None) -> Candidates:
    """One ranked ``Candidates[n, k]`` from several lists over the same n mentions."""
    if not lists:
        raise ValueError("nothing to fuse")
    if method not in ("rrf", "minmax", "zscore"):
        raise ValueError(f"unknown fusion method {method!r}")
    n = len(lists[0])
    if any(len(c) != n for c in lists):
        raise ValueError("all lists must cover the same mentions")
    weights = [1.0] * len(lists) if weights is None else [float(w) for w in weights]
    fallback_weights = weights if fallback_weights is None else [float(w) for w in fallback_weights]
    if len(weights) != len(lists) or len(fallback_weights) != len(lists):
        raise ValueError(f"{len(weights)} weights / {len(fallback_weights)} fallback weights for {len(lists)} lists")
    return fuse_entries(lists, k, method, weights, rrf_k, source, fallback_weights)


def fuse_by_config(lists: Sequence[Candidates], k: int, config: dict) -> Candidates:
    """``fuse`` with the settings of a normalised candidate config's ``fusion`` section (method, weights, k,
    fallback_weights), as an index fuses at query time."""
    return fuse(lists, k, method=config["method"], weights=config["weights"], rrf_k=config["k"], source="fusion",
                fallback_weights=config.get("fallback_weights"))


def fuse_entries(lists: Sequence[Candidates], k: int, method: str, weights: Sequence[float], rrf_k: float,
                 source: str, fallback_weights: Sequence[float]) -> Candidates:
    """``fuse`` without argument checks: flat entries of every list, summed per (mention, concept)."""
    n = len(lists[0])
    rows_l, conc_l, val_l, rank_l, gen_l, name_l, route_l = [], [], [], [], [], [], []
    baseline = np.zeros(n)
    for g, (c, w, w_fb) in enumerate(zip(lists, weights, fallback_weights)):
        values, absent = _normalised(c, method, rrf_k)
        baseline += w * absent
        valid = c.concepts >= 0
        r, j = np.nonzero(valid)
        rows_l.append(r)
        conc_l.append(c.concepts[r, j].astype(np.int64))
        w_entry = np.where(c.routes[r, j] == ROUTE_SAME_LANGUAGE, w, w_fb)
        val_l.append(w_entry * (values[r, j] - absent[r]))
        rank_l.append(j)
        gen_l.append(np.full(len(r), g))
        name_l.append(c.names[r, j])
        route_l.append(c.routes[r, j])
    rows, concepts, vals, ranks, gens, names, routes = (np.concatenate(x) for x in
                                                        (rows_l, conc_l, val_l, rank_l, gen_l, name_l, route_l))
    if len(rows) == 0:
        return Candidates.empty(n, k, source)
    # Group entries by (row, concept): sum their contributions; keep name/route of the best-ranked entry.
    order = np.lexsort((gens, ranks, concepts, rows))
    rows, concepts, vals, names, routes = rows[order], concepts[order], vals[order], names[order], routes[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (concepts[1:] != concepts[:-1])
    group = np.cumsum(first) - 1
    totals = np.bincount(group, weights=vals) + baseline[rows[first]]
    return pack(rows[first], concepts[first], totals, names[first], routes[first], n, k, source)
