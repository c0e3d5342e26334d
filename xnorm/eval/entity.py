"""Entity-level precision / recall / F1 as neleval and xMEN report them (pure functions, no I/O).

Three ways of matching a predicted entity to a gold entity, always within one document:

- ``strict``: the same span(s) — exact offsets, every piece of a discontinuous span — (and the same type when
  ``match_types``), and the same id.
- ``partial``: spans that overlap by at least one character (any piece with any piece; and the same type when
  ``match_types``), and the same id. This is a 0/1 overlap match; neleval's ``overlap-maxmax`` instead gives
  fractional credit by the share of overlapping characters.
- ``loose``: the same id anywhere in the document, comparing the *sets* of ids per document (neleval
  ``sets:None:docid+kbid``).

Only the top-1 prediction of a predicted entity counts; a predicted entity with no prediction is no prediction
at all (it costs recall, not precision). Gold entities without any id (NIL) are left out of the gold side, so a
prediction for them is a false positive. A gold entity may carry several ids: they are alternatives (like
neleval's ``select-alternatives``), a prediction of any of them is correct and the entity counts once.

For strict and partial, ``tp_pred`` (predicted entities that match a gold entity) and ``tp_gold`` (gold entities
matched by a prediction) are counted separately, as neleval's ``ptp`` / ``rtp``; precision = tp_pred / n_pred,
recall = tp_gold / n_gold. Micro averages pool the counts of all documents; macro averages are the mean of the
per-document precision, recall and F1 over the documents with at least one gold item (neleval ``--by-doc``).
A zero denominator gives 0.0, as in neleval.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from .ranking import encode_ids

MODES = ("strict", "partial", "loose")

Span = tuple[tuple[int, int], ...]


def canonical_span(offsets: Iterable[Sequence[int]]) -> Span:
    """A span as a sorted tuple of ``(start, end)`` pieces, so equal spans compare equal."""
    return tuple(sorted((int(s), int(e)) for s, e in offsets))


@dataclass
class EntityTable:
    """n entities as parallel arrays.

    ``doc_ids[n]``: document id; ``spans[n]``: tuple of ``(start, end)`` pieces (see :func:`canonical_span`);
    ``types[n]``: entity type ("" if unknown); ``ids[n]``: for gold, a tuple of alternative ids (empty = NIL);
    for predictions, a tuple whose first element is the top-1 id (empty = no prediction; later ones ignored).
    """

    doc_ids: np.ndarray
    spans: np.ndarray
    types: np.ndarray
    ids: np.ndarray

    @classmethod
    def build(
        cls,
        doc_ids: Sequence[str],
        spans: Sequence[Iterable[Sequence[int]]],
        ids: Sequence[Iterable[str] | str | None],
        types: Sequence[str] | None = None,
    ) -> "EntityTable":
        """From plain sequences; a bare string or ``None`` in ``ids`` means one id or none."""
        n = len(doc_ids)

        def col(values) -> np.ndarray:
            arr = np.empty(n, dtype=object)
            arr[:] = list(values)
            return arr

        def id_tuple(v) -> tuple:
            if v is None:
                return ()
            if isinstance(v, str):
                return (v,) if v else ()
            return tuple(x for x in v if x is not None and x != "")

        table = cls(
            col(str(d) for d in doc_ids),
            col(canonical_span(s) for s in spans),
            col([""] * n if types is None else (t or "" for t in types)),
            col(id_tuple(v) for v in ids),
        )
        if not len(table.spans) == len(table.types) == len(table.ids) == n:
            raise ValueError("doc_ids, spans, ids and types must have one entry per entity")
        return table

    def __len__(self) -> int:
        return len(self.doc_ids)


def _codes(values: Iterable, vocab: dict) -> np.ndarray:
    """Integer codes of hashable values, growing a shared ``vocab``."""
    return np.fromiter((vocab.setdefault(v, len(vocab)) for v in values), dtype=np.int64)


def _join(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All index pairs (i, j) with ``left[i] == right[j]`` (an equi-join on integer keys)."""
    order = np.argsort(right, kind="stable")
    sorted_right = right[order]
    lo = np.searchsorted(sorted_right, left, side="left")
    hi = np.searchsorted(sorted_right, left, side="right")
    counts = hi - lo
    li = np.repeat(np.arange(len(left)), counts)
    # Position inside each run of equal keys: a global arange minus each run's start offset.
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    rj = order[np.repeat(lo, counts) + np.arange(counts.sum()) - starts]
    return li, rj


def _prf(tp_pred: np.ndarray, n_pred: np.ndarray, tp_gold: np.ndarray, n_gold: np.ndarray):
    """Precision, recall, F1 (arrays or scalars), 0.0 where a denominator is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n_pred > 0, tp_pred / np.maximum(n_pred, 1), 0.0)
        r = np.where(n_gold > 0, tp_gold / np.maximum(n_gold, 1), 0.0)
        f = np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1.0), 0.0)
    return p, r, f


def _summary(tp_pred, n_pred, tp_gold, n_gold) -> dict:
    """Micro and macro P/R/F1 from per-document counts."""
    totals = [int(x.sum()) for x in (tp_pred, n_pred, tp_gold, n_gold)]
    p, r, f = _prf(*(np.float64(t) for t in totals))
    docs = n_gold > 0
    dp, dr, df = _prf(tp_pred[docs], n_pred[docs], tp_gold[docs], n_gold[docs])
    mean = (lambda a: float(a.mean())) if docs.any() else (lambda a: 0.0)
    return {
        "micro": {"precision": float(p), "recall": float(r), "f1": float(f)},
        "macro": {"precision": mean(dp), "recall": mean(dr), "f1": mean(df)},
        "tp_pred": totals[0], "n_pred": totals[1], "tp_gold": totals[2], "n_gold": totals[3],
        "n_docs": int(docs.sum()),
    }


class _Encoded:
    """Both tables turned into integer columns with shared vocabularies."""

    def __init__(self, gold: EntityTable, pred: EntityTable, aliases, match_types: bool) -> None:
        docs: dict = {}
        self.gold_doc = _codes(gold.doc_ids, docs)
        self.pred_doc = _codes(pred.doc_ids, docs)
        self.n_docs = len(docs)
        spans: dict = {}
        self.gold_span = _codes(gold.spans, spans)
        self.pred_span = _codes(pred.spans, spans)
        types: dict = {}
        self.gold_type = _codes(gold.types if match_types else [""] * len(gold), types)
        self.pred_type = _codes(pred.types if match_types else [""] * len(pred), types)
        self.n_types = max(len(types), 1)
        # Gold ids flattened to (owner entity, id code) rows; NIL entities contribute no row.
        lens = np.fromiter((len(t) for t in gold.ids), dtype=np.int64, count=len(gold))
        flat = [x for t in gold.ids for x in t] + [t[0] if t else None for t in pred.ids]
        codes = encode_ids(flat, aliases)
        self.g_owner = np.repeat(np.arange(len(gold)), lens)
        self.g_id, self.pred_id = codes[: int(lens.sum())], codes[int(lens.sum()):]
        self.n_ids = int(codes.max(initial=-1)) + 1 or 1
        self.gold_has_id = lens > 0
        self.pred_has_id = self.pred_id >= 0
        self.gold_spans, self.pred_spans = gold.spans, pred.spans

    def match_key(self, doc, type_, id_):
        """One int64 key per (document, type, id)."""
        return (doc * self.n_types + type_) * self.n_ids + id_


def _pieces(spans: np.ndarray, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Span pieces of the given rows: (row position, start, end)."""
    lens = np.fromiter((len(spans[o]) for o in owners), dtype=np.int64, count=len(owners))
    flat = [p for o in owners for p in spans[o]]
    arr = np.asarray(flat, dtype=np.int64).reshape(-1, 2)
    return np.repeat(np.arange(len(owners)), lens), arr[:, 0], arr[:, 1]


def _span_matches(enc: _Encoded, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """For strict / partial: which gold entities and which predicted entities have a match."""
    pred_rows = np.flatnonzero(enc.pred_has_id)
    g_keys = enc.match_key(enc.gold_doc[enc.g_owner], enc.gold_type[enc.g_owner], enc.g_id)
    p_keys = enc.match_key(enc.pred_doc[pred_rows], enc.pred_type[pred_rows], enc.pred_id[pred_rows])
    gi, pj = _join(g_keys, p_keys)  # gold id rows x predicted entities sharing document, type and id
    g_ent, p_ent = enc.g_owner[gi], pred_rows[pj]
    if mode == "strict":
        ok = enc.gold_span[g_ent] == enc.pred_span[p_ent]
    else:
        # Any piece of the gold span overlapping any piece of the predicted span (half-open intervals).
        gpos, gs, ge = _pieces(enc.gold_spans, g_ent)
        ppos, ps, pe = _pieces(enc.pred_spans, p_ent)
        a, b = _join(gpos, ppos)  # piece pairs of the same candidate pair
        overlap = (gs[a] < pe[b]) & (ps[b] < ge[a])
        ok = np.zeros(len(g_ent), dtype=bool)
        ok[gpos[a[overlap]]] = True
    gold_hit = np.zeros(len(enc.gold_doc), dtype=bool)
    pred_hit = np.zeros(len(enc.pred_doc), dtype=bool)
    gold_hit[g_ent[ok]] = True
    pred_hit[p_ent[ok]] = True
    return gold_hit, pred_hit


def _span_scores(enc: _Encoded, mode: str) -> dict:
    gold_hit, pred_hit = _span_matches(enc, mode)
    d = enc.n_docs
    return _summary(
        np.bincount(enc.pred_doc[pred_hit], minlength=d), np.bincount(enc.pred_doc[enc.pred_has_id], minlength=d),
        np.bincount(enc.gold_doc[gold_hit], minlength=d), np.bincount(enc.gold_doc[enc.gold_has_id], minlength=d),
    )


def _loose_scores(enc: _Encoded) -> dict:
    """Sets of ids per document; a gold entity's alternatives resolve to the one predicted in its document."""
    n_ids = enc.n_ids
    pred_keys = np.unique(enc.pred_doc[enc.pred_has_id] * n_ids + enc.pred_id[enc.pred_has_id])
    g_keys = enc.gold_doc[enc.g_owner] * n_ids + enc.g_id
    found = np.isin(g_keys, pred_keys)
    # Per gold entity: its first alternative that was predicted, else its first alternative.
    n_gold = len(enc.gold_doc)
    first_row = np.full(n_gold, -1, dtype=np.int64)
    rows = np.arange(len(g_keys))
    first_found = np.full(n_gold, len(g_keys), dtype=np.int64)
    np.minimum.at(first_found, enc.g_owner[found], rows[found])
    first_any = np.full(n_gold, len(g_keys), dtype=np.int64)
    np.minimum.at(first_any, enc.g_owner, rows)
    has = enc.gold_has_id
    first_row[has] = np.where(first_found[has] < len(g_keys), first_found[has], first_any[has])
    gold_keys = np.unique(g_keys[first_row[has]])
    tp_keys = np.intersect1d(gold_keys, pred_keys, assume_unique=True)
    d = enc.n_docs
    tp = np.bincount(tp_keys // n_ids, minlength=d)
    return _summary(tp, np.bincount(pred_keys // n_ids, minlength=d), tp, np.bincount(gold_keys // n_ids, minlength=d))


def entity_metrics(
    gold: EntityTable,
    pred: EntityTable,
    *,
    modes: Sequence[str] = MODES,
    match_types: bool = False,
    aliases: Mapping[str, str] | None = None,
) -> dict[str, dict]:
    """Entity-level scores per mode: ``{mode: {"micro": {precision, recall, f1}, "macro": {...}, counts}}``."""
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"unknown mode(s) {unknown}; use {MODES}")
    enc = _Encoded(gold, pred, aliases, match_types)
    out = {}
    for mode in modes:
        out[mode] = _loose_scores(enc) if mode == "loose" else _span_scores(enc, mode)
    return out
