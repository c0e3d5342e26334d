"""Walking a terminology's is_a hierarchy (``Terminology.is_a``) with sparse matrices: ancestors within a number
of levels, and the concepts under given roots."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import scipy.sparse as sp

from ..errors import ConfigError


def is_a_matrix(terminology) -> sp.csr_matrix:
    """Boolean ``[C, C]`` sparse matrix: ``[c, p]`` is true when ``p`` is a direct is_a parent of ``c``."""
    n, edges = len(terminology), terminology.is_a
    return sp.csr_matrix((np.ones(len(edges), dtype=bool), (edges[:, 0], edges[:, 1])), shape=(n, n))


def ancestor_matrix(terminology, max_levels: int | None = 1, rows: np.ndarray | None = None) -> sp.csr_matrix:
    """Boolean sparse matrix ``[len(rows), C]`` (all concepts when ``rows`` is None): ``[i, a]`` is true when
    ``a`` is an is_a ancestor of concept ``rows[i]`` at most ``max_levels`` levels up (``None``: any number).

    Walks up from the given rows only, so its size is their ancestors' count, never the closure of a whole
    UMLS-sized hierarchy.
    """
    step = is_a_matrix(terminology)
    frontier = step if rows is None else step[np.asarray(rows, dtype=np.int64)]
    reach = frontier.copy()
    level = 1
    # A DAG empties the frontier after its depth; with cycles (UMLS relations across sources have some) the
    # walk stops once a level adds no new (concept, ancestor) pair.
    while frontier.nnz and (max_levels is None or level < max_levels):
        frontier = (frontier @ step).astype(bool)
        grown = (reach + frontier).astype(bool)
        if grown.nnz == reach.nnz:
            break
        reach = grown
        level += 1
    return reach.astype(bool).tocsr()


def subtree_mask(terminology, roots: Iterable[str], field: str = "under") -> np.ndarray:
    """bool[C]: the ``roots`` and every concept below them (is_a, any number of levels).

    ``ConfigError`` (naming ``field``) when the terminology has no hierarchy or a root is not one of its concepts.
    """
    roots = list(roots)
    if not len(terminology.is_a):
        raise ConfigError("the terminology has no is_a hierarchy to restrict candidates with.", field=field,
                          fix="use a terminology built from an OBO file, a UMLS MRREL or tsv/jsonl `parents` "
                              "(folders and indexes saved before xnorm kept is_a edges need rebuilding).")
    unknown = [r for r in roots if r not in terminology]
    if unknown:
        raise ConfigError(f"{', '.join(map(repr, unknown[:5]))} {'is' if len(unknown) == 1 else 'are'} not a concept "
                          "of the terminology.", field=field,
                          fix="give concept ids of the terminology, e.g. HP:0000707.")
    mask = np.zeros(len(terminology), dtype=bool)
    mask[[terminology.concept_index(r) for r in roots]] = True
    # Breadth-first down the hierarchy: one sparse product per level, no closure of the whole hierarchy (which
    # for a UMLS-sized one would not fit); stops when a level adds nobody (cycles included).
    step, frontier = is_a_matrix(terminology), mask.copy()
    while frontier.any():
        children = (step @ frontier.astype(np.int8)) > 0
        frontier = children & ~mask
        mask |= frontier
    return mask
