"""Mention-level ranking metrics: accuracy@1, recall@k, MRR (pure functions over arrays, no I/O).

A *run* is, for n mentions, the ranked predicted concept ids: an ``[n, k]`` object array (``None`` in empty
slots) or a list of lists (ragged lists are padded). *Gold* is one collection of ids per mention (a set, list or
tuple); a prediction hits when it equals **any** of the mention's gold ids.

Ties: a run is a ranking, so ties are already broken by the order of each row and the metrics never look at
scores. Callers who hold raw scores rank them first with :func:`rank_by_score` (score descending, ties broken by
id ascending, deterministic).

Empty predictions (``None`` or ``""``) are misses; a mention with no gold id can never hit (leave NIL mentions
out before calling if they should not count). ``aliases`` (old id -> current id, e.g. HPO ``alt_id``) is applied
to both sides before comparing; chains (a -> b -> c) are followed to their end.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

# recall@k cut-offs reported by default: powers of two up to 64 plus the customary 5 and 10.
DEFAULT_KS: tuple[int, ...] = (1, 2, 4, 5, 8, 10, 16, 32, 64)


def as_prediction_array(predictions: np.ndarray | Sequence[Sequence[str | None]]) -> np.ndarray:
    """The run as an ``[n, k]`` object array, ragged rows padded with ``None`` and ``""`` turned into ``None``."""
    if isinstance(predictions, np.ndarray) and predictions.ndim == 2:
        out = predictions.astype(object, copy=True)
    else:
        rows = [list(r) if r is not None else [] for r in predictions]
        width = max((len(r) for r in rows), default=0)
        out = np.full((len(rows), width), None, dtype=object)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
    if out.size:
        out[out == ""] = None
    return out


def resolve_aliases(aliases: Mapping[str, str] | None) -> dict[str, str]:
    """Follow alias chains to their end once, so lookups need a single step (cycles stop where they repeat)."""
    if not aliases:
        return {}
    resolved = {}
    for old in aliases:
        seen = {old}
        cur = aliases[old]
        while cur in aliases and cur not in seen:
            seen.add(cur)
            cur = aliases[cur]
        resolved[old] = cur
    return resolved


def _dictionary_encode(values: Sequence[str | None] | np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Distinct strings and each value's index among them (-1 for None), hash-based in C (Arrow)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = np.asarray(values, dtype=object).ravel()
    try:
        arr = pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # non-string ids (e.g. ints): compare their text
        arr = pa.array([None if v is None else str(v) for v in values], type=pa.string())
    encoded = arr.dictionary_encode()
    index = pc.fill_null(encoded.indices, -1).to_numpy().astype(np.int64)
    return index, encoded.dictionary.to_pylist()


def encode_ids(values: Sequence[str | None] | np.ndarray, aliases: Mapping[str, str] | None = None) -> np.ndarray:
    """Integer codes of ids, equal exactly when the ids are equal after alias resolution; -1 for None / "".

    6.4M ids take under a second; aliases are applied to the distinct ids only.
    """
    index, distinct = _dictionary_encode(values)
    resolved = resolve_aliases(aliases)
    canonical: dict[str, int] = {}
    remap = np.empty(len(distinct) + 1, dtype=np.int64)
    for i, value in enumerate(distinct):
        value = resolved.get(value, value)
        remap[i] = -1 if value == "" else canonical.setdefault(value, len(canonical))
    remap[-1] = -1  # index -1 (None) picks this last slot
    return remap[index]


def _encode_gold(gold: Sequence[Iterable[str]]) -> tuple[np.ndarray, list]:
    """Flatten gold sets into owner rows and ids (a bare string is one id, not a set of characters)."""
    owners, ids = [], []
    for i, row in enumerate(gold):
        if isinstance(row, str):
            row = (row,)
        for g in row:
            owners.append(i)
            ids.append(g)
    return np.asarray(owners, dtype=np.int64), ids


def hit_matrix(
    predictions: np.ndarray | Sequence[Sequence[str | None]],
    gold: Sequence[Iterable[str]],
    aliases: Mapping[str, str] | None = None,
) -> np.ndarray:
    """Boolean ``[n, k]``: whether the prediction in each slot is one of the mention's gold ids."""
    preds = as_prediction_array(predictions)
    n, k = preds.shape
    if len(gold) != n:
        raise ValueError(f"{n} prediction rows but {len(gold)} gold entries")
    owners, gold_ids = _encode_gold(gold)
    # Both sides in one encoding, so equal ids get equal codes.
    codes = encode_ids(np.concatenate([np.asarray(gold_ids, dtype=object), preds.ravel()]), aliases)
    gold_codes, pred_codes = codes[: len(gold_ids)], codes[len(gold_ids):].reshape(n, k)
    keep = gold_codes >= 0
    owners, gold_codes = owners[keep], gold_codes[keep]
    # +2: an empty slot (code -1) of row i lands on row i-1's unused code max+1, never on a real gold key.
    width = int(codes.max(initial=-1)) + 2
    # One integer key per (mention, id): a hit is a predicted key that is also a gold key.
    gold_keys = owners * width + gold_codes
    pred_keys = np.arange(n, dtype=np.int64)[:, None] * width + pred_codes
    # Membership by binary search in the (small) sorted gold keys: cheaper than np.isin, which sorts both sides.
    gold_keys = np.unique(gold_keys)
    if len(gold_keys) == 0:
        return np.zeros((n, k), dtype=bool)
    pos = np.minimum(np.searchsorted(gold_keys, pred_keys), len(gold_keys) - 1)
    return (gold_keys[pos] == pred_keys) & (pred_codes >= 0)


def first_hit_ranks(
    predictions: np.ndarray | Sequence[Sequence[str | None]],
    gold: Sequence[Iterable[str]],
    aliases: Mapping[str, str] | None = None,
) -> np.ndarray:
    """1-based rank of the first gold hit per mention; 0 when no prediction in the row hits."""
    hits = hit_matrix(predictions, gold, aliases)
    if hits.shape[1] == 0:
        return np.zeros(hits.shape[0], dtype=np.int64)
    return np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0).astype(np.int64)


def recall_at(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per-mention 0/1: a gold id is within the first ``k`` predictions.

    A ``k`` larger than the rows simply counts every prediction there is (recall@k then equals recall@width).
    """
    ranks = np.asarray(ranks)
    return ((ranks > 0) & (ranks <= k)).astype(np.float64)


def reciprocal_ranks(ranks: np.ndarray, k: int | None = None) -> np.ndarray:
    """Per-mention 1/rank of the first gold hit (0 without a hit, or when it lies beyond ``k``)."""
    ranks = np.asarray(ranks)
    ok = ranks > 0
    if k is not None:
        ok &= ranks <= k
    out = np.zeros(ranks.shape, dtype=np.float64)
    out[ok] = 1.0 / ranks[ok]
    return out


def metric_names(ks: Sequence[int] = DEFAULT_KS) -> list[str]:
    """Names of the per-mention columns of :func:`per_mention_values`, in order."""
    return ["accuracy@1"] + [f"recall@{k}" for k in ks] + ["mrr"]


def per_mention_values(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> np.ndarray:
    """``[n, m]`` per-mention values whose column means are the metrics of :func:`metric_names`.

    This is what bootstrap confidence intervals and paired tests resample.
    """
    ranks = np.asarray(ranks)
    cols = [recall_at(ranks, 1)] + [recall_at(ranks, k) for k in ks] + [reciprocal_ranks(ranks)]
    return np.stack(cols, axis=1) if len(ranks) else np.zeros((0, len(cols)))


def metrics_from_ranks(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """accuracy@1, recall@k for each k, MRR and ``n_mentions`` from first-hit ranks (all 0.0 when n = 0)."""
    ranks = np.asarray(ranks)
    values = per_mention_values(ranks, ks)
    means = values.mean(axis=0) if len(ranks) else np.zeros(values.shape[1])
    out: dict[str, float] = {name: float(v) for name, v in zip(metric_names(ks), means)}
    out["n_mentions"] = int(len(ranks))
    return out


def mention_metrics(
    predictions: np.ndarray | Sequence[Sequence[str | None]],
    gold: Sequence[Iterable[str]],
    ks: Sequence[int] = DEFAULT_KS,
    aliases: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """accuracy@1, recall@k, MRR of a run against gold (see the module docstring for the conventions)."""
    return metrics_from_ranks(first_hit_ranks(predictions, gold, aliases), ks)


def rank_by_score(
    ids: np.ndarray | Sequence[Sequence[str | None]],
    scores: np.ndarray | Sequence[Sequence[float]],
    k: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by score, highest first; equal scores are ordered by id (string order), so the result
    does not depend on the input order. Empty ids and NaN scores go last. Returns ``(ids, scores)``, cut to k.
    """
    ids = as_prediction_array(ids)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != ids.shape:
        raise ValueError(f"ids have shape {ids.shape}, scores {scores.shape}")
    index, distinct = _dictionary_encode(ids)
    # Each id's position in string order (only the distinct ids are sorted), so sorting by it sorts by id.
    position = np.empty(len(distinct) + 1, dtype=np.int64)
    position[np.argsort(np.array(distinct, dtype=object), kind="stable")] = np.arange(len(distinct))
    position[-1] = len(distinct)  # None
    id_rank = position[index].reshape(ids.shape)
    last = (index < 0).reshape(ids.shape) | np.isnan(scores)
    primary = np.where(last, 0.0, -scores)
    # np.lexsort: the last key is the primary one.
    order = np.lexsort((id_rank, primary, last), axis=-1)
    if k is not None:
        order = order[:, :k]
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(scores, order, axis=1)


def tie_aware_overlap(found, reference) -> float:
    """Mean share of each row's ``reference`` concepts (a ``Candidates`` batch, e.g. an exhaustive search's) that
    ``found`` also lists, where a missing concept whose score does not beat ``found``'s last listed score counts as
    listed: names with equal scores at the cut are interchangeable (word-order variants share n-gram vectors)."""
    shares = []
    for x, y, sx, sy in zip(found.concepts, reference.concepts, found.scores, reference.scores):
        ny, nx = int((y >= 0).sum()), int((x >= 0).sum())
        if ny == 0:
            shares.append(1.0)
            continue
        low = sx[nx - 1] if nx >= ny else -np.inf
        missed = set(y[(y >= 0) & (sy > low + 1e-6)].tolist()) - set(x.tolist())
        shares.append(1.0 - len(missed) / ny)
    return float(np.mean(shares))
