"""Hierarchy-aware scoring: is a wrong top answer a near-miss in the terminology's is_a hierarchy?

Exact accuracy@1 scores "Neoplasm of the breast" for a mention annotated "Neoplasm" as wrong, like any unrelated
concept; in GSC+ about half the candidate stage's wrong answers are such granularity slips. ``lenient@1`` also
counts a top answer that is an is_a descendant (*finer*) or ancestor (*coarser*) of a gold concept within
``max_levels`` levels; siblings and cousins never count. Report it next to exact accuracy@1, never instead of it.

The hierarchy is ``Terminology.is_a`` (OBO ``is_a`` lines); ids are matched after alias resolution, and ids the
terminology does not know are never near-misses.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from ..terminology.hierarchy import ancestor_matrix
from .ranking import _dictionary_encode, _encode_gold, as_prediction_array, hit_matrix, resolve_aliases


def concept_rows(ids: Sequence, terminology, aliases: Mapping[str, str] | None = None) -> np.ndarray:
    """Concept row of each id (evaluation aliases, then the terminology's own, resolved); -1 when unknown.

    An id written without its prefix (``0001250``: BigBIO ids are compared without ``<db_name>:``, see
    ``xnorm.eval.documents``) matches the one concept whose id ends in ``:0001250``.
    """
    index, distinct = _dictionary_encode(ids)
    resolved = resolve_aliases(aliases)
    lookup = np.full(len(distinct) + 1, -1, dtype=np.int64)  # the last slot: None
    missing = []
    for i, cid in enumerate(distinct):
        cid = resolved.get(cid, cid)
        try:
            lookup[i] = terminology.concept_index(cid)
        except KeyError:
            missing.append((i, cid))
    if missing:  # try them as unprefixed ids (built only when needed: a pass over every concept id and alias)
        local: dict[str, int] = {}
        pairs = [(cid, row) for row, cid in enumerate(terminology.concept_ids.tolist())]
        pairs += [(old, terminology.concept_index(old)) for old in terminology.aliases
                  if terminology.resolve(old) in terminology]
        for cid, row in pairs:
            head, sep, tail = cid.partition(":")
            if sep:
                local[tail] = row if local.get(tail, row) == row else -1  # ambiguous across prefixes: no match
        for i, cid in missing:
            lookup[i] = local.get(cid, -1)
    return lookup[index]


def lineage(
    top1: Sequence[str | None],
    gold: Sequence[Iterable[str]],
    terminology,
    max_levels: int | None = 1,
    aliases: Mapping[str, str] | None = None,
) -> dict[str, np.ndarray]:
    """Per mention, booleans ``exact`` (the top answer is a gold id), ``finer`` (not exact; a descendant of a gold
    concept within ``max_levels``), ``coarser`` (neither; an ancestor of one), ``lenient`` (any of the three) and
    ``gold_known`` (a gold id is a concept of ``terminology``: only those mentions can be near-misses)."""
    top1 = as_prediction_array([[t] for t in top1])[:, 0] if len(top1) else np.zeros(0, dtype=object)
    n = len(top1)
    if len(gold) != n:
        raise ValueError(f"{n} top answers but {len(gold)} gold entries")
    owners, gold_ids = _encode_gold(gold)
    gold_rows = concept_rows(gold_ids, terminology, aliases)
    pred_rows = concept_rows(top1, terminology, aliases)[owners]
    known = gold_rows >= 0
    gold_known = np.bincount(owners[known], minlength=n) > 0
    both = known & (pred_rows >= 0)
    owners, p, g = owners[both], pred_rows[both], gold_rows[both]
    # Ancestors of the concepts involved only; p finer than g <=> g above p, coarser <=> p above g.
    involved = np.unique(np.concatenate([p, g]))
    reach = ancestor_matrix(terminology, max_levels, involved)
    at = np.searchsorted(involved, p), np.searchsorted(involved, g)

    def any_per_mention(flags) -> np.ndarray:
        return np.bincount(owners[np.asarray(flags, dtype=bool).ravel()], minlength=n) > 0

    # Exact as accuracy@1 counts it (id equality after aliases, known to the terminology or not), or same concept.
    exact = hit_matrix(top1[:, None], gold, aliases)[:, 0] | any_per_mention(p == g)
    finer = any_per_mention(reach[at[0], g]) & ~exact if len(p) else np.zeros(n, dtype=bool)
    coarser = any_per_mention(reach[at[1], p]) & ~exact & ~finer if len(p) else np.zeros(n, dtype=bool)
    return {"exact": exact, "finer": finer, "coarser": coarser, "lenient": exact | finer | coarser,
            "gold_known": gold_known}


def hierarchy_metrics(
    top1: Sequence[str | None],
    gold: Sequence[Iterable[str]],
    terminology,
    max_levels: int | None = 1,
    aliases: Mapping[str, str] | None = None,
) -> dict:
    """``lenient@1`` and the counts behind it (exact, finer, coarser) over all mentions; see the module doc."""
    return summarize(lineage(top1, gold, terminology, max_levels, aliases), max_levels)


def summarize(flags: Mapping[str, np.ndarray], max_levels: int | None = 1) -> dict:
    """The figures of :func:`hierarchy_metrics` from :func:`lineage`'s per-mention flags (or a subset of them)."""
    n = len(flags["exact"])
    return {
        "lenient@1": float(flags["lenient"].mean()) if n else 0.0,
        "accuracy@1": float(flags["exact"].mean()) if n else 0.0,
        "finer": int(flags["finer"].sum()),
        "coarser": int(flags["coarser"].sum()),
        "n_mentions": n,
        "n_gold_in_hierarchy": int(flags["gold_known"].sum()),
        "max_levels": max_levels,
    }
