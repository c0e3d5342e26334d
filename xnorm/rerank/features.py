"""Features of (mention, candidate) pairs for the feature reranker (:mod:`.feature_ranker`), vectorised over the
``[n, k]`` candidate arrays; no model forward pass, so they cost milliseconds per thousand mentions.

- generator: the fused score, its gap to the mention's best, the rank; per generator (by name) the candidate's
  score in that generator's own list (``Candidates.meta[GENERATOR_LISTS]``; absent: the list's worst, plus a
  flag) and its gap to that list's best; whether the candidate was found through another language's names.
- lexical: the mention against the name the candidate matched with: character 3-gram Jaccard, the share of the
  mention's words in the name and of the name's words in the mention, the name's extra words, exact equality
  (case- and Unicode-normalised) with that name or the preferred name.
- hierarchy (zeros without is_a edges): the concept's children and ancestors (how general it is), and whether
  one of its ancestors / descendants is also a candidate, ranked above it — the granularity a corpus annotates at.
- corpus memory (:class:`CorpusMemory`, from the training annotations): how often annotators of the mention's
  language chose this concept, and this concept for this exact mention text; whether the candidate is one the
  memory added (:func:`add_remembered`: annotated for this text, but missed by the candidate stage).
- translation (with a :class:`~xnorm.rerank.translation.TranslationModel`): how well the mention's word pieces
  and the candidate's English names explain each other under tables learnt from a terminology's translations,
  overall and per language, and how many pieces of each side the other leaves unexplained.
"""
from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..candidates.base import mention_langs
from ..errors import ConfigError
from ..terminology.hierarchy import ancestor_matrix
from ..types import (GENERATOR_LISTS, ROUTE_ANY_LANGUAGE, ROUTE_ENGLISH_FALLBACK, ROUTE_MEMORY, Candidates,
                     Mentions)
from .translation import TranslationModel, feature_columns

BASE_FEATURES = (
    "fused", "fused_minmax", "fused_gap", "rank_inverse", "is_first", "other_language_route", "remembered_only",
    "gram_jaccard", "mention_words_in_name", "name_words_in_mention", "name_extra_words", "exact_name",
    "log_children", "ancestors", "ancestor_in_list", "descendant_in_list", "ancestor_above", "descendant_above",
    "log_prior", "prior_seen", "log_memory",
)
GENERATOR_FEATURES = ("score", "gap", "absent")


def feature_names(generators: Sequence[str], translation_languages: Sequence[str] | None = None) -> list[str]:
    """The feature columns, in order, for an index with these generators (and translation tables of these
    languages; ``None``: no translation model)."""
    names = list(BASE_FEATURES) + [f"{g}_{f}" for g in generators for f in GENERATOR_FEATURES]
    return names if translation_languages is None else names + feature_columns(translation_languages)


def normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", str(text)).lower().split())


def has_context(mentions: Mentions) -> np.ndarray:
    return np.asarray([bool(a) or bool(b) for a, b in zip(mentions.left, mentions.right)], dtype=bool)


@dataclass
class CorpusMemory:
    """What annotators chose: per (language, normalised mention text, concept id), how many training mentions.

    ``prior`` sums it over texts (how often a concept is annotated in a language); ``memory`` is the exact text's
    count. Kept as four columns, stored as a table next to the reranker's weights (no pickles).
    """

    langs: np.ndarray
    texts: np.ndarray
    concept_ids: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_annotations(cls, texts: Sequence[str], langs: Sequence[str], concept_ids: Sequence[str]) -> "CorpusMemory":
        counted = Counter((lang, normalise(t), c) for t, lang, c in zip(texts, langs, concept_ids) if c is not None)
        keys = sorted(counted)
        col = lambda i: np.asarray([k[i] for k in keys], dtype=object)  # noqa: E731
        return cls(col(0), col(1), col(2), np.asarray([counted[k] for k in keys], dtype=np.int64))

    @classmethod
    def from_examples(cls, examples, terminology) -> "CorpusMemory":
        """The annotations of training ``Examples`` (their ``gold`` rows over ``terminology``)."""
        ids = terminology.concept_ids
        return cls.from_annotations(examples.mentions.texts, mention_langs(examples.mentions).tolist(),
                                    [ids[g] for g in examples.gold])

    def __len__(self) -> int:
        return len(self.counts)

    def lookup(self, mentions: Mentions, concepts: np.ndarray, terminology) -> tuple[np.ndarray, np.ndarray]:
        """``(prior, memory)`` counts ``[n, k]`` for candidate rows ``concepts`` of ``mentions``."""
        lang_ids, _, prior_table, memory_table = self._tables(terminology)
        m_lang = np.asarray([lang_ids.get(x, -1) for x in mention_langs(mentions)], dtype=np.int64)
        size = len(terminology)
        return (_count_at(prior_table, m_lang, concepts, size),
                _count_at(memory_table, self._text_keys(mentions, terminology), concepts, size))

    def remembered(self, mentions: Mentions, terminology) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per mention, the concept rows annotated for its exact text in its language, and how often."""
        codes, counts = self._tables(terminology)[3]
        size = len(terminology)
        keys = self._text_keys(mentions, terminology)
        lo, hi = np.searchsorted(codes, keys * size), np.searchsorted(codes, (keys + 1) * size)
        return [(codes[a:b] - key * size, counts[a:b]) if key >= 0 else (codes[:0], counts[:0])
                for key, a, b in zip(keys, lo, hi)]

    def _text_keys(self, mentions: Mentions, terminology) -> np.ndarray:
        text_ids = self._tables(terminology)[1]
        return np.asarray([text_ids.get((lang, normalise(t)), -1)
                           for lang, t in zip(mention_langs(mentions), mentions.texts)], dtype=np.int64)

    def _tables(self, terminology):
        """Lookup tables for one terminology (cached): language ids, (language, text) ids, and the counts per
        (language, concept row) and per (text, concept row) as sorted codes; ids outside the terminology are left
        out. Sparse, because the training keys one "language" per document (:func:`own_documents`)."""
        if getattr(self, "_cache", (None,))[0] is not terminology:
            size = len(terminology)
            rows = np.asarray([terminology.concept_index(c) if c in terminology else -1 for c in self.concept_ids],
                              dtype=np.int64)
            known = rows >= 0
            lang_ids = {x: i for i, x in enumerate(dict.fromkeys(self.langs.tolist()))}
            keys = list(zip(self.langs.tolist(), self.texts.tolist()))
            text_ids = {key: i for i, key in enumerate(dict.fromkeys(keys))}
            by_lang = np.asarray([lang_ids[x] for x in self.langs], dtype=np.int64)
            by_text = np.asarray([text_ids[key] for key in keys], dtype=np.int64)
            tables = [_table(ids[known] * size + rows[known], self.counts[known]) for ids in (by_lang, by_text)]
            self._cache = (terminology, (lang_ids, text_ids, *tables))
        return self._cache[1]


def _table(codes: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Summed counts per distinct code, sorted, with a sentinel above every code (keeps searchsorted in range)."""
    uniq, inverse = np.unique(codes, return_inverse=True)
    sums = np.bincount(inverse, weights=counts, minlength=len(uniq))
    return np.r_[uniq, np.iinfo(np.int64).max], np.r_[sums, 0.0]


def _count_at(table: tuple[np.ndarray, np.ndarray], keys: np.ndarray, concepts: np.ndarray, size: int) -> np.ndarray:
    """``[n, k]`` count of (``keys[n]``, concept row) in ``table`` (0 for an unknown key or an empty slot)."""
    codes, counts = table
    query = np.maximum(keys, 0)[:, None] * size + np.maximum(concepts, 0)
    at = np.searchsorted(codes, query)
    return np.where((keys[:, None] >= 0) & (concepts >= 0) & (codes[at] == query), counts[at], 0.0)


def own_documents(mentions: Mentions, concept_ids: Sequence[str]) -> tuple[Mentions, CorpusMemory]:
    """The training mentions' annotations per document, keyed so that a lookup of these mentions finds only their
    own document's (a mention without a document id is its own document): what ``candidate_features`` subtracts
    with ``held_out``, so that in training, as at test time, no mention sees its own document's annotations."""
    docs = [f"{lang}\t{doc}" if doc else f"{lang}\t#{i}"
            for i, (lang, doc) in enumerate(zip(mention_langs(mentions), mentions.doc_ids))]
    keyed = Mentions(texts=mentions.texts, langs=np.asarray(docs, dtype=object))
    return keyed, CorpusMemory.from_annotations(mentions.texts, docs, concept_ids)


def add_remembered(mentions: Mentions, candidates: Candidates, terminology, memory: CorpusMemory,
                   held_out: tuple[Mentions, CorpusMemory] | None = None, limit: int = 2) -> Candidates:
    """``candidates`` plus the concepts annotated in training for each mention's exact text (same language) that
    the candidate stage did not find — up to ``limit`` per mention, the most often annotated first, in the last
    slots (displacing the lowest-ranked candidates). They carry route ``ROUTE_MEMORY`` ("annotation-memory" in
    ``xnorm link --explain``; the ``remembered_only`` feature), the row's lowest score and no matched name.
    ``held_out``: as in :func:`candidate_features` (training: only other documents' annotations count)."""
    own = held_out[1].remembered(held_out[0], terminology) if held_out is not None else None
    found = memory.remembered(mentions, terminology)
    n, k = candidates.shape
    out = None
    for i, (rows, counts) in enumerate(found):
        if not len(rows):
            continue
        if own is not None:  # subtract the mention's own document's annotations
            own_rows, own_counts = own[i]
            counts = counts - np.asarray([own_counts[own_rows == r].sum() for r in rows])
        row = candidates.concepts[i]
        order = np.argsort(-counts, kind="stable")
        new = [int(rows[j]) for j in order if counts[j] > 0 and rows[j] not in row][:min(limit, k)]
        if not new:
            continue
        if out is None:
            out = Candidates(candidates.concepts.copy(), candidates.scores.copy(), candidates.names.copy(),
                             candidates.routes.copy(), candidates.source, dict(candidates.meta))
        kept = int(min((row >= 0).sum(), k - len(new)))
        lowest = candidates.scores[i][row >= 0].min() if (row >= 0).any() else 0.0
        slots = slice(kept, kept + len(new))
        out.concepts[i, slots], out.scores[i, slots], out.names[i, slots] = new, lowest, -1
        out.routes[i, slots] = ROUTE_MEMORY
    return candidates if out is None else out


def candidate_features(mentions: Mentions, candidates: Candidates, terminology, memory: CorpusMemory,
                       generators: Sequence[str], held_out: tuple[Mentions, CorpusMemory] | None = None,
                       translation: TranslationModel | None = None) -> np.ndarray:
    """``[n, k, F]`` float32 features (columns: :func:`feature_names`); empty slots hold zeros. ``held_out``
    (:func:`own_documents`): annotations subtracted from the memory's counts (training). ``translation``: the
    word-piece translation features (:mod:`.translation`) too."""
    lists = candidates.meta.get(GENERATOR_LISTS, {})
    missing = [g for g in generators if g not in lists]
    if missing:
        raise ConfigError(f"the candidates carry no list of the generator(s) {', '.join(missing)} this reranker "
                          "was trained with.", field="reranker",
                          fix="rerank candidates of the index the reranker was trained on (same generator names), "
                              "straight from `CandidateIndex.candidates`.")
    c = candidates.concepts
    n, k = c.shape
    valid = c >= 0
    f: dict[str, np.ndarray] = {}
    s = np.where(valid, candidates.scores.astype(np.float64), np.nan)
    with np.errstate(invalid="ignore"):
        hi = np.nanmax(np.where(valid.any(1, keepdims=True), s, 0.0), axis=1, keepdims=True)
        lo = np.nanmin(np.where(valid.any(1, keepdims=True), s, 0.0), axis=1, keepdims=True)
    f["fused"] = s
    f["fused_minmax"] = np.where(hi > lo, (s - lo) / np.where(hi > lo, hi - lo, 1.0), 1.0)
    f["fused_gap"] = hi - s
    f["rank_inverse"] = np.broadcast_to(1.0 / np.arange(1, k + 1), (n, k))
    f["is_first"] = np.broadcast_to(np.arange(k) == 0, (n, k))
    f["other_language_route"] = np.isin(candidates.routes, (ROUTE_ENGLISH_FALLBACK, ROUTE_ANY_LANGUAGE))
    f["remembered_only"] = candidates.routes == ROUTE_MEMORY
    f.update(_lexical(mentions, candidates, terminology))
    f.update(_hierarchy(terminology, c, valid))
    prior, mem = memory.lookup(mentions, c, terminology)
    if held_out is not None:
        own_prior, own_mem = held_out[1].lookup(held_out[0], c, terminology)
        prior, mem = np.maximum(prior - own_prior, 0), np.maximum(mem - own_mem, 0)
    f["log_prior"], f["prior_seen"], f["log_memory"] = np.log1p(prior), prior > 0, np.log1p(mem)
    for g in generators:
        f.update(_generator(g, lists[g], c, valid))
    if translation is not None:
        f.update(translation.features(mentions, candidates, terminology))
    names = feature_names(generators, translation.languages if translation is not None else None)
    out = np.stack([np.broadcast_to(np.asarray(f[x], dtype=np.float64), (n, k)) for x in names], axis=-1)
    return np.where(valid[..., None], np.nan_to_num(out), 0.0).astype(np.float32)


def _generator(name: str, own: Candidates, concepts: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
    """The candidate's score in one generator's list (``[n, kg]``, same mentions)."""
    ok = own.concepts >= 0
    g = np.where(ok, own.scores.astype(np.float64), np.nan)
    has = ok.any(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        worst = np.where(has, np.nanmin(np.where(has, g, 0.0), axis=1, keepdims=True), 0.0)
        best = np.where(has, np.nanmax(np.where(has, g, 0.0), axis=1, keepdims=True), 0.0)
    match = (own.concepts[:, None, :] == concepts[:, :, None]) & ok[:, None, :] & valid[:, :, None]  # [n, k, kg]
    found = match.any(axis=2)
    score = np.where(found, np.take_along_axis(np.nan_to_num(g), match.argmax(axis=2), axis=1), worst)
    return {f"{name}_score": score, f"{name}_gap": best - score, f"{name}_absent": ~found}


def _lexical(mentions: Mentions, candidates: Candidates, terminology) -> dict[str, np.ndarray]:
    """Overlap of each mention with each candidate's matched name (hashed binary n-gram / word vectors)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    n, k = candidates.shape
    name_rows = candidates.names
    texts = np.where(name_rows >= 0, terminology.name_texts[np.maximum(name_rows, 0)],
                     terminology.preferred_names[np.maximum(candidates.concepts, 0)]).ravel()
    preferred = terminology.preferred_names[np.maximum(candidates.concepts, 0)].ravel()
    # each distinct name once: the same names recur across a batch's mentions
    uniq, inverse = np.unique(np.concatenate([texts, preferred]).astype(str), return_inverse=True)
    u_norm = np.asarray([normalise(t) for t in uniq], dtype=object)
    name_of, preferred_of = inverse[:len(texts)], inverse[len(texts):]
    m_norm = np.asarray([normalise(t) for t in mentions.texts], dtype=object)
    common = dict(binary=True, norm=None, alternate_sign=False, n_features=1 << 20, lowercase=False)
    grams = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 3), **common)
    words = HashingVectorizer(analyzer="word", token_pattern=r"(?u)\b\w+\b", **common)
    rep = np.repeat(np.arange(n), k)
    out = {}
    for key, vec in (("gram", grams), ("word", words)):
        m, c = vec.transform(m_norm), vec.transform(u_norm)
        inter = np.asarray(m[rep].multiply(c[name_of]).sum(axis=1)).ravel()
        m_size, c_size = m.getnnz(axis=1)[rep].astype(np.float64), c.getnnz(axis=1)[name_of].astype(np.float64)
        out[key] = (inter, m_size, c_size)
    inter, a, b = out["gram"]
    w_inter, w_m, w_c = out["word"]
    exact = (u_norm[name_of] == m_norm[rep]) | (u_norm[preferred_of] == m_norm[rep])
    shape = (n, k)
    return {
        "gram_jaccard": (inter / np.maximum(a + b - inter, 1)).reshape(shape),
        "mention_words_in_name": (w_inter / np.maximum(w_m, 1)).reshape(shape),
        "name_words_in_mention": (w_inter / np.maximum(w_c, 1)).reshape(shape),
        "name_extra_words": np.minimum(w_c - w_inter, 5).reshape(shape),
        "exact_name": exact.reshape(shape),
    }


def _hierarchy(terminology, concepts: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
    n, k = concepts.shape
    zero = np.zeros((n, k))
    if not len(terminology.is_a) or not valid.any():
        return {x: zero for x in ("log_children", "ancestors", "ancestor_in_list", "descendant_in_list",
                                  "ancestor_above", "descendant_above")}
    size = len(terminology)
    children = np.bincount(terminology.is_a[:, 1], minlength=size)
    uniq, pos = np.unique(np.maximum(concepts, 0), return_inverse=True)
    pos = pos.reshape(n, k)
    up = ancestor_matrix(terminology, None, rows=uniq)  # [len(uniq), C]: the candidates' ancestors
    j, l = np.broadcast_arrays(pos[:, :, None], np.maximum(concepts, 0)[:, None, :])  # [n, j, l]: l above j?
    above_of = np.asarray(up[j.ravel(), l.ravel()]).reshape(n, k, k)
    above_of &= valid[:, :, None] & valid[:, None, :]
    earlier = np.tril(np.ones((k, k), dtype=bool), -1)  # [j, l]: l ranked before j
    below_of = above_of.transpose(0, 2, 1)
    return {
        "log_children": np.log1p(children[np.maximum(concepts, 0)]),
        "ancestors": np.minimum(up.getnnz(axis=1)[pos], 30),
        "ancestor_in_list": above_of.any(axis=2),
        "descendant_in_list": below_of.any(axis=2),
        "ancestor_above": (above_of & earlier).any(axis=2),
        "descendant_above": (below_of & earlier).any(axis=2),
    }
