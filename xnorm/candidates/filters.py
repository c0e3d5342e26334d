"""Semantic type / group filters over candidates.

A terminology's ``semantic_types`` column holds, per concept, its types joined by ``|`` (UMLS TUIs, semantic
group names, HPO sub-ontology roots: whatever the recipe wrote). A filter keeps the candidates whose types
intersect an allowed set, either one set for every mention or one per mention (e.g. chosen by entity type).
Kept candidates stay in their order and move to the row start; emptied slots are padded (-1 / -inf).
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from ..terminology.core import Terminology
from ..types import Candidates, Mentions


class SemanticTypeFilter:
    """Concept x type incidence of a terminology, for fast allow-list masks."""

    def __init__(self, terminology: Terminology) -> None:
        type_lists = [[t for t in str(s).split("|") if t] if s else [] for s in terminology.semantic_types]
        self.types = sorted({t for ts in type_lists for t in ts})
        col = {t: i for i, t in enumerate(self.types)}
        indptr = np.cumsum([0] + [len(ts) for ts in type_lists])
        indices = np.asarray([col[t] for ts in type_lists for t in ts], dtype=np.int64)
        self.incidence = sp.csr_matrix((np.ones(len(indices), np.int8), indices, indptr),
                                       shape=(len(type_lists), len(self.types)))

    def allowed_concepts(self, allowed: Iterable[str]) -> np.ndarray:
        """bool[C]: concepts having at least one of the ``allowed`` types."""
        cols = [self.types.index(t) for t in set(allowed) if t in self.types]
        if not cols:
            return np.zeros(self.incidence.shape[0], dtype=bool)
        return np.asarray(self.incidence[:, cols].sum(axis=1)).ravel() > 0

    def apply(self, candidates: Candidates, allowed: Iterable[str]) -> Candidates:
        """Keep, for every mention, the candidates whose concept has one of the ``allowed`` types."""
        mask = self.allowed_concepts(allowed)
        keep = (candidates.concepts >= 0) & mask[np.maximum(candidates.concepts, 0)]
        return compact(candidates, keep)

    def apply_per_mention(self, candidates: Candidates, allowed: Sequence[Iterable[str] | None]) -> Candidates:
        """Like ``apply`` with one allow-list per mention (``None``: that mention is not filtered)."""
        if len(allowed) != len(candidates):
            raise ValueError(f"{len(allowed)} allow-lists for {len(candidates)} mentions")
        keep = candidates.concepts >= 0
        keys = [None if a is None else frozenset(a) for a in allowed]
        groups: dict[frozenset, list[int]] = {}
        for i, key in enumerate(keys):
            if key is not None:
                groups.setdefault(key, []).append(i)
        # One mask per distinct allow-list, applied to its rows at once.
        for key, rows in groups.items():
            mask = self.allowed_concepts(key)
            keep[rows] &= mask[np.maximum(candidates.concepts[rows], 0)]
        return compact(candidates, keep)


def compact(candidates: Candidates, keep: np.ndarray) -> Candidates:
    """Move the kept entries of each row to its start (order preserved) and pad the rest."""
    order = np.argsort(~keep, axis=1, kind="stable")
    kept = np.take_along_axis(keep, order, axis=1)
    take = lambda a, fill: np.where(kept, np.take_along_axis(a, order, axis=1), fill)  # noqa: E731
    return Candidates(take(candidates.concepts, -1), take(candidates.scores, -np.inf), take(candidates.names, -1),
                      take(candidates.routes, 0), candidates.source, dict(candidates.meta))


def allowed_per_mention(mentions: Mentions, semantic_types: Sequence[str] | None,
                        by_entity_type: Mapping[str, Sequence[str]] | None) -> list[frozenset | None] | None:
    """The allow-list of each mention from a filter config (``None`` when no filter applies at all)."""
    if semantic_types is None and not by_entity_type:
        return None
    glob = frozenset(semantic_types) if semantic_types is not None else None
    out: list[frozenset | None] = []
    for etype in mentions.types:
        specific = (by_entity_type or {}).get(str(etype)) if etype else None
        if specific is not None:
            out.append(frozenset(specific) if glob is None else frozenset(specific) & glob)
        else:
            out.append(glob)
    return out
