"""Cross-encoder input pairs: (mention in its context, candidate concept described by its names).

Mention side: ``left [ mention ] right`` — a window of ``context_chars`` characters each side, cut at a word
boundary, with the mention between two markers. Candidate side: ``name ; synonym ; synonym`` — names in the
mention's language first (translations / preferred first), English names as the fallback, optionally
``| semantic type``.

Markers: the existing tokens ``[`` and ``]`` (single tokens in both the XLM-R and BERT vocabularies) are reused
instead of new special tokens. Why: ``adapters``' ``train_adapter`` freezes the embedding matrix, so new tokens
would keep their random embeddings unless the whole 250k-row matrix were unfrozen (96M parameters on
e5-small, most of the model) or a separate embedding module were trained and shipped with every task adapter
(then language adapters trained without it could not be stacked cleanly). Reused tokens already have trained
embeddings; the task adapter learns what they mean here.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..terminology.core import (ABBREVIATION, EXACT, LAYPERSON, PREFERRED, TRANSLATION, Terminology)
from ..types import Candidates, Mentions

MARKERS = ("[", "]")
NAME_SEPARATOR = " ; "
TYPE_SEPARATOR = " | "
# Which names describe a concept best: its preferred name / label translation, then exact synonyms.
_TYPE_RANK = {PREFERRED: 0, TRANSLATION: 0, EXACT: 1, LAYPERSON: 2, ABBREVIATION: 4}
_OTHER_RANK = 3
FALLBACK_LANG = "en"


def _window_left(text: str, chars: int) -> str:
    """The last ``chars`` characters of ``text``, not starting inside a word."""
    if chars <= 0 or not text:
        return ""
    if len(text) <= chars:
        return text.strip()
    cut = text[-chars:]
    space = cut.find(" ")
    return (cut[space + 1:] if 0 <= space < len(cut) - 1 else cut).strip()


def _window_right(text: str, chars: int) -> str:
    """The first ``chars`` characters of ``text``, not ending inside a word."""
    if chars <= 0 or not text:
        return ""
    if len(text) <= chars:
        return text.strip()
    cut = text[:chars]
    space = cut.rfind(" ")
    return (cut[:space] if space > 0 else cut).strip()


def mention_texts(mentions: Mentions, context_chars: int = 48, markers: tuple[str, str] = MARKERS) -> list[str]:
    """One string per mention: ``left [ mention ] right`` (just the mention when there is no context).

    A mention with a long form (abbreviation defined in its document) reads ``ABBR ( long form )``.
    """
    out = []
    open_m, close_m = markers
    for text, left, right, long_form in zip(mentions.texts, mentions.left, mentions.right, mentions.long_forms):
        core = f"{text} ( {long_form} )" if long_form and long_form != text else str(text)
        lw, rw = _window_left(str(left or ""), context_chars), _window_right(str(right or ""), context_chars)
        if not lw and not rw:
            out.append(core)
        else:
            out.append(" ".join(p for p in (lw, open_m, core, close_m, rw) if p))
    return out


class CandidateTexts:
    """Describes concepts by their names, per language, with a cache (a concept is described once per language).

    ``n_names``: at most this many names per concept (mention-language names first, then English ones);
    ``semantic_types``: append ``| type`` when the terminology has one.
    """

    def __init__(self, terminology: Terminology, n_names: int = 3, semantic_types: bool = False) -> None:
        self.terminology = terminology
        self.n_names = n_names
        self.semantic_types = semantic_types
        # Name rows grouped by concept, each group sorted by (language, type rank, row): one argsort, once.
        t = terminology
        rank = np.fromiter((_TYPE_RANK.get(x, _OTHER_RANK) for x in t.name_types), dtype=np.int64,
                           count=t.n_names)
        langs = np.asarray(t.name_langs, dtype=object).astype(str)
        order = np.lexsort((np.arange(t.n_names), rank, langs, t.name_concepts))
        self._order = order
        self._langs = langs[order]
        bounds = np.searchsorted(t.name_concepts[order], np.arange(len(t) + 1))
        self._bounds = bounds
        self._cache: dict[tuple[int, str], str] = {}

    def names(self, concept: int, lang: str) -> list[str]:
        """Up to ``n_names`` distinct names of ``concept``: ``lang`` first, then English, then the preferred name."""
        a, b = self._bounds[concept], self._bounds[concept + 1]
        rows, langs = self._order[a:b], self._langs[a:b]
        picked: list[str] = []
        seen: set[str] = set()
        for want in dict.fromkeys((lang, FALLBACK_LANG)):
            for r in rows[langs == want]:
                text = str(self.terminology.name_texts[r])
                key = text.casefold()
                if key not in seen:
                    seen.add(key)
                    picked.append(text)
                if len(picked) >= self.n_names:
                    return picked
        if not picked:  # no name in lang or English: the preferred name, whatever its language
            picked.append(str(self.terminology.preferred_names[concept]))
        return picked

    def text(self, concept: int, lang: str) -> str:
        key = (int(concept), lang)
        hit = self._cache.get(key)
        if hit is None:
            hit = NAME_SEPARATOR.join(self.names(concept, lang))
            if self.semantic_types:
                st = str(self.terminology.semantic_types[concept] or "")
                if st:
                    hit += TYPE_SEPARATOR + st.replace("|", ", ")
            self._cache[key] = hit
        return hit


class PairEncoder:
    """Tokenizes (mention, candidate) pairs for a ``Mentions`` batch × ``Candidates[n, k]`` in one call."""

    def __init__(self, tokenizer: Any, terminology: Terminology, *, max_length: int = 48, context_chars: int = 48,
                 n_names: int = 3, semantic_types: bool = False, markers: tuple[str, str] = MARKERS) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.context_chars = context_chars
        self.markers = tuple(markers)
        self.candidate_texts = CandidateTexts(terminology, n_names, semantic_types)

    def settings(self) -> dict:
        return {"max_length": self.max_length, "context_chars": self.context_chars,
                "n_names": self.candidate_texts.n_names, "semantic_types": self.candidate_texts.semantic_types,
                "markers": list(self.markers)}

    def texts(self, mentions: Mentions, candidates: Candidates) -> tuple[list[str], list[str], np.ndarray]:
        """Flat pair texts for the valid slots, and their ``[n, k]`` boolean mask (row-major order)."""
        valid = candidates.concepts >= 0
        left = mention_texts(mentions, self.context_chars, self.markers)  # type: ignore[arg-type]
        rows, cols = np.nonzero(valid)
        langs = [str(x) if x else FALLBACK_LANG for x in mentions.langs]
        firsts = [left[r] for r in rows]
        seconds = [self.candidate_texts.text(candidates.concepts[r, c], langs[r]) for r, c in zip(rows, cols)]
        return firsts, seconds, valid

    def encode(self, mentions: Mentions, candidates: Candidates) -> tuple[dict, np.ndarray]:
        """Tokenized pairs (torch tensors, padded to the longest) for the valid slots, and the ``[n, k]`` mask."""
        firsts, seconds, valid = self.texts(mentions, candidates)
        return self.tokenize(firsts, seconds), valid

    def tokenize(self, firsts: Sequence[str], seconds: Sequence[str]) -> dict:
        # longest_first: a long context is cut before the candidate's names are.
        return self.tokenizer(list(firsts), list(seconds), truncation="longest_first", max_length=self.max_length,
                              padding=True, return_tensors="pt")
