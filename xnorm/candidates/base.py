"""What every candidate generator shares: language routing and name -> concept deduplication.

A generator indexes the names of a ``Terminology`` in one sub-index per name language and answers one question:
"the best ``k`` names of language X for these encoded queries". Everything else lives here, once:

- routing: which name languages a mention in language L is searched against (``same``: L only, ``fallback``: L
  and English, ``all``: every language), with the ``ROUTE_*`` code that each route reports;
- batching: mentions are grouped by language, queries encoded once per group, one batched search per
  (mention language, name language) pair;
- deduplication: several names of one concept count once (the best-scoring name is kept) and rows are packed
  into a ranked ``Candidates`` batch with ``-1`` / ``-inf`` padding at the row end.
"""
from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..terminology.core import Terminology
from ..types import (ROUTE_ANY_LANGUAGE, ROUTE_ENGLISH_FALLBACK, ROUTE_SAME_LANGUAGE, Candidates, Mentions)
from .cache import RowCache

FALLBACK_LANG = "en"


def route_plan(lang: str, name_langs: Sequence[str], routing: str,
               fallback: str = FALLBACK_LANG) -> list[tuple[str, int]]:
    """The (name language, route code) pairs searched for a mention in ``lang``.

    A mention whose language has no names of its own always gets the fallback (English) names, whatever the
    mode; ``all`` adds every other language with ``ROUTE_ANY_LANGUAGE``.
    """
    available = set(name_langs)
    plan: list[tuple[str, int]] = []
    if lang in available:
        plan.append((lang, ROUTE_SAME_LANGUAGE))
    if fallback in available and lang != fallback and (routing != "same" or lang not in available):
        plan.append((fallback, ROUTE_ENGLISH_FALLBACK))
    if routing == "all":
        plan.extend((x, ROUTE_ANY_LANGUAGE) for x in sorted(available) if x not in (lang, fallback))
    return plan


def pack(rows: np.ndarray, concepts: np.ndarray, scores: np.ndarray, names: np.ndarray, routes: np.ndarray,
         n: int, k: int, source: str = "") -> Candidates:
    """Ranked, concept-deduplicated ``Candidates[n, k]`` from flat (row, concept, score, name, route) entries.

    Per (row, concept) the entry with the highest score wins (its name and route are kept); rows are sorted by
    score (ties: lower concept row first, so results are deterministic) and cut at k; empty slots are padded.
    """
    out = Candidates.empty(n, k, source)
    valid = (concepts >= 0) & np.isfinite(scores)
    if not valid.any() or k == 0:
        return out
    rows, concepts, scores = rows[valid], concepts[valid], scores[valid].astype(np.float32)
    names, routes = names[valid], routes[valid]
    # Best entry per (row, concept): sort by row, concept, descending score; keep the first of each run.
    order = np.lexsort((-scores, concepts, rows))
    rows, concepts, scores, names, routes = rows[order], concepts[order], scores[order], names[order], routes[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (concepts[1:] != concepts[:-1])
    rows, concepts, scores, names, routes = rows[first], concepts[first], scores[first], names[first], routes[first]
    # Rank within each row and cut at k.
    order = np.lexsort((concepts, -scores, rows))
    rows, concepts, scores, names, routes = rows[order], concepts[order], scores[order], names[order], routes[order]
    starts = np.searchsorted(rows, np.arange(n))
    pos = np.arange(len(rows)) - starts[rows]
    keep = pos < k
    r, p = rows[keep], pos[keep]
    out.concepts[r, p] = concepts[keep]
    out.scores[r, p] = scores[keep]
    out.names[r, p] = names[keep]
    out.routes[r, p] = routes[keep]
    return out


def merge_best(parts: Sequence[Candidates], k: int, source: str = "") -> Candidates:
    """Several lists of ONE generator over the same mentions (e.g. the mention and its long form) as one:
    per concept the best score wins. Scores of one generator share a scale, so their max is meaningful."""
    n = len(parts[0])
    rows = np.concatenate([np.repeat(np.arange(n), p.shape[1]) for p in parts])
    flat = lambda attr: np.concatenate([getattr(p, attr).ravel() for p in parts])  # noqa: E731
    return pack(rows, flat("concepts").astype(np.int64), flat("scores"), flat("names"), flat("routes"), n, k,
                source or parts[0].source)


def mention_langs(mentions: Mentions, default_lang: str = FALLBACK_LANG) -> np.ndarray:
    """Language per mention; an empty language means ``default_lang``."""
    langs = np.asarray([str(x) if x else default_lang for x in mentions.langs], dtype=object)
    return langs


class CandidateGenerator(abc.ABC):
    """A first-stage generator: fitted on a terminology, maps ``Mentions`` to ``Candidates``.

    Subclasses implement ``fit``, ``encode_queries``, ``search`` (one name language, top names) and
    ``save`` / ``load``; routing and deduplication are shared (``candidates``).
    """

    type: str = ""

    def __init__(self, name: str, names_per_concept: int = 4) -> None:
        self.name = name
        self.names_per_concept = names_per_concept
        self.terminology: Terminology | None = None
        self.lang_rows: dict[str, np.ndarray] = {}  # name language -> global name rows (int64)
        self.cache: RowCache | None = None  # rows kept across batches (CandidateIndex.set_cache); None: off

    # ---- to implement ------------------------------------------------------------------------------------
    @abc.abstractmethod
    def fit(self, terminology: Terminology, show_progress: bool = False) -> "CandidateGenerator":
        """Index every name of ``terminology``, one sub-index per name language."""

    @abc.abstractmethod
    def encode_queries(self, texts: Sequence[str]) -> Any:
        """Query representations for ``texts`` (computed once, searched against several languages)."""

    @abc.abstractmethod
    def search(self, queries: Any, lang: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` names of language ``lang``: (global name rows int64 [m, k], scores float32 [m, k]);
        ``-1`` / ``-inf`` where fewer than k names match."""

    @abc.abstractmethod
    def save(self, path: Path) -> list[str]:
        """Write the fitted state under folder ``path``; return the files written (relative to ``path``)."""

    @abc.abstractmethod
    def config(self) -> dict:
        """The settings that rebuild this generator (stored in the index manifest)."""

    # ---- shared ------------------------------------------------------------------------------------------
    @property
    def languages(self) -> list[str]:
        return sorted(self.lang_rows)

    def clear_cache(self) -> None:
        """Forget cached rows: called whenever what a query returns may change (fit, load, query encoder)."""
        if self.cache is not None:
            self.cache.clear()

    def _set_languages(self, terminology: Terminology) -> None:
        self.clear_cache()
        self.terminology = terminology
        langs = np.asarray(terminology.name_langs, dtype=object)
        order = np.argsort(langs, kind="stable")
        sorted_langs = langs[order]
        bounds = np.flatnonzero(np.r_[True, sorted_langs[1:] != sorted_langs[:-1], True])
        self.lang_rows = {str(sorted_langs[a]): order[a:b].astype(np.int64)
                          for a, b in zip(bounds[:-1], bounds[1:])}

    def candidates(self, mentions: Mentions, k: int = 64, routing: str = "fallback",
                   default_lang: str = FALLBACK_LANG) -> Candidates:
        """Ranked candidates, deduplicated by concept, with the route that found each one.

        A (language, text) pair that occurs several times in the batch — common in corpora: a mention repeated
        in an abstract, the same finding in many notes — is encoded and searched once; its rows share the result.
        With a ``cache``, a pair answered in an earlier batch is not searched again either.
        """
        if self.terminology is None:
            raise RuntimeError(f"generator {self.name!r} is not fitted; call fit(terminology) first")
        langs = mention_langs(mentions, default_lang)
        texts = np.asarray(mentions.texts, dtype=object)
        keys = np.asarray([f"{lang}\x00{text}" for lang, text in zip(langs, texts)], dtype=object)
        distinct, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        langs, texts = langs[first], texts[first]
        if self.cache is None:
            return self._candidates_per_row(langs, texts, k, routing, default_lang)[inverse.ravel()]
        cache_keys = [(self.name, k, routing, default_lang, key) for key in distinct]
        found, rows = self.cache.get(cache_keys, k, self.name)
        missing = np.flatnonzero(~found)
        if len(missing):
            fresh = self._candidates_per_row(langs[missing], texts[missing], k, routing, default_lang)
            for attr in ("concepts", "scores", "names", "routes"):
                getattr(rows, attr)[missing] = getattr(fresh, attr)
            self.cache.put([cache_keys[i] for i in missing], fresh)
        return rows[inverse.ravel()]

    def _candidates_per_row(self, langs: np.ndarray, texts: np.ndarray, k: int, routing: str = "fallback",
                            default_lang: str = FALLBACK_LANG) -> Candidates:
        """``candidates`` for every row as given, repeated texts included (benchmarks time it as the baseline)."""
        n = len(texts)
        k_names = max(k * self.names_per_concept, k)
        parts: list[tuple[np.ndarray, ...]] = []
        for lang in sorted(set(langs.tolist())):
            idx = np.flatnonzero(langs == lang)
            plan = route_plan(lang, self.languages, routing, default_lang)
            if not plan:
                continue
            queries = self.encode_queries(texts[idx].tolist())
            for name_lang, route in plan:
                kn = min(k_names, len(self.lang_rows[name_lang]))
                name_rows, scores = self.search(queries, name_lang, kn)
                m, kk = name_rows.shape
                parts.append((np.repeat(idx, kk), name_rows.ravel(), scores.ravel(),
                              np.full(m * kk, route, np.int8)))
        if not parts:
            return Candidates.empty(n, k, self.name)
        rows, name_rows, scores, routes = (np.concatenate(p) for p in zip(*parts))
        ok = name_rows >= 0
        rows, name_rows, scores, routes = rows[ok], name_rows[ok], scores[ok], routes[ok]
        concepts = self.terminology.name_concepts[name_rows].astype(np.int64)
        return pack(rows, concepts, scores, name_rows, routes, n, k, self.name)
