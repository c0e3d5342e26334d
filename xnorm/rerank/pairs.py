"""Cross-encoder input pairs: (mention in its context, candidate concept described by its names).

Mention side: ``left [ mention ] right`` — a window of ``context_chars`` characters each side, cut at a word
boundary, then cut further to a token budget (half the pair) so the mention and both markers always survive
truncation; the mention between two markers. Candidate side: ``name ; synonym ; synonym`` — names in the
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

from ..errors import ConfigError
from ..models.tokenizers import call_lock
from ..terminology.core import (ABBREVIATION, EXACT, LAYPERSON, PREFERRED, TRANSLATION, Terminology)
from ..types import Candidates, Mentions

MARKERS = ("[", "]")
NAME_SEPARATOR = " ; "
TYPE_SEPARATOR = " | "
PARENT_SEPARATOR = " < "  # "name < parent name": where the concept sits in the hierarchy (its granularity)
MAX_PARENTS = 2
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


def _mention_parts(mentions: Mentions, context_chars: int) -> tuple[list[str], list[str], list[str]]:
    """(cores, left windows, right windows): a core reads ``ABBR ( long form )`` when the mention has one."""
    cores, lefts, rights = [], [], []
    for text, left, right, long_form in zip(mentions.texts, mentions.left, mentions.right, mentions.long_forms):
        cores.append(f"{text} ( {long_form} )" if long_form and long_form != text else str(text))
        lefts.append(_window_left(str(left or ""), context_chars))
        rights.append(_window_right(str(right or ""), context_chars))
    return cores, lefts, rights


def _join(core: str, left: str, right: str, markers: tuple[str, str]) -> str:
    if not left and not right:
        return core
    return " ".join(p for p in (left, markers[0], core, markers[1], right) if p)


def mention_texts(mentions: Mentions, context_chars: int = 0, markers: tuple[str, str] = MARKERS) -> list[str]:
    """One string per mention: ``left [ mention ] right`` (just the mention when there is no context).

    A mention with a long form (abbreviation defined in its document) reads ``ABBR ( long form )``.
    """
    return [_join(c, lw, rw, markers) for c, lw, rw in zip(*_mention_parts(mentions, context_chars))]


def _fit_context(tokenizer: Any, cores: list[str], lefts: list[str], rights: list[str], budget: int
                 ) -> tuple[list[str], list[str]]:
    """Context windows cut to ``budget`` tokens per mention side (core + 2 markers + context), split evenly
    left/right (one side's unused share goes to the other); no context when the core alone fills the budget."""
    def ids(texts):
        return tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]

    with call_lock(tokenizer):  # shared with other models: see xnorm.models.tokenizers
        core_len = [len(x) for x in tokenizer(cores, add_special_tokens=False)["input_ids"]]
        left_off, right_off = ids(lefts), ids(rights)
    out_l, out_r = [], []
    for n_core, lw, rw, lo, ro in zip(core_len, lefts, rights, left_off, right_off):
        room = budget - n_core - 2
        if room <= 0:
            out_l.append("")
            out_r.append("")
            continue
        n_left = min(len(lo), max(room // 2, room - len(ro)))
        n_right = min(len(ro), room - n_left)
        out_l.append(lw[lo[len(lo) - n_left][0]:].strip() if n_left else "")
        out_r.append(rw[:ro[n_right - 1][1]].strip() if n_right else "")
    return out_l, out_r


class CandidateTexts:
    """Describes concepts by their names, per language, with a cache (a concept is described once per language).

    ``n_names``: at most this many names per concept (mention-language names first, then English ones);
    ``semantic_types``: append ``| type`` when the terminology has one; ``parents``: ``< parent`` after the first
    name (the first name of each of up to two is_a parents), so that a reranker sees how general a candidate is.
    """

    def __init__(self, terminology: Terminology, n_names: int = 3, semantic_types: bool = False,
                 parents: bool = False) -> None:
        if parents and not len(terminology.is_a):
            raise ConfigError("the reranker's pairs name each candidate's parents, but this terminology has no is_a "
                              "hierarchy.", field="pairs.parents",
                              fix="use an index built with this xnorm version from a terminology with a hierarchy "
                                  "(e.g. hpo-en), or a reranker trained without parents.")
        self.terminology = terminology
        self.n_names = n_names
        self.semantic_types = semantic_types
        self.parents = parents
        self._parents: dict[int, list[int]] = {}
        for child, parent in terminology.is_a.tolist() if parents else ():
            self._parents.setdefault(child, []).append(parent)
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
            names = self.names(concept, lang)
            above = self._parents.get(int(concept), [])[:MAX_PARENTS]
            if above:  # right after the first name: truncation cuts the other synonyms first
                names[0] += PARENT_SEPARATOR + NAME_SEPARATOR.join(self.names(p, lang)[0] for p in above)
            hit = NAME_SEPARATOR.join(names)
            if self.semantic_types:
                st = str(self.terminology.semantic_types[concept] or "")
                if st:
                    hit += TYPE_SEPARATOR + st.replace("|", ", ")
            self._cache[key] = hit
        return hit


class PairEncoder:
    """Tokenizes (mention, candidate) pairs for a ``Mentions`` batch × ``Candidates[n, k]`` in one call."""

    def __init__(self, tokenizer: Any, terminology: Terminology, *, max_length: int = 48, context_chars: int = 0,
                 n_names: int = 3, semantic_types: bool = False, parents: bool = False,
                 markers: tuple[str, str] = MARKERS) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.context_chars = context_chars
        self.markers = tuple(markers)
        self.candidate_texts = CandidateTexts(terminology, n_names, semantic_types, parents)

    def settings(self) -> dict:
        return {"max_length": self.max_length, "context_chars": self.context_chars,
                "n_names": self.candidate_texts.n_names, "semantic_types": self.candidate_texts.semantic_types,
                "parents": self.candidate_texts.parents, "markers": list(self.markers)}

    def mention_sides(self, mentions: Mentions) -> list[str]:
        """``left [ mention ] right`` per mention, its context cut to fit the pair (see ``tokenize``).

        Why: truncating the pair afterwards would cut the end of a long context — with it the closing marker
        and often the mention itself (at max_length 32, 58% of GSC+ pairs lost the closing marker).
        """
        cores, lefts, rights = _mention_parts(mentions, self.context_chars)
        if any(lefts) or any(rights):
            if getattr(self.tokenizer, "is_fast", False):  # offsets need a fast tokenizer
                lefts, rights = _fit_context(self.tokenizer, cores, lefts, rights, self.mention_budget)
        return [_join(c, lw, rw, self.markers) for c, lw, rw in zip(cores, lefts, rights)]  # type: ignore[arg-type]

    @property
    def mention_budget(self) -> int:
        """Tokens of a mention side with context: at most half the pair (less the 3 special tokens and one for
        tokenization at the joins), so ``longest_first`` truncation cuts the candidate's names first."""
        return max(4, (self.max_length - 3) // 2 - 1)

    def texts(self, mentions: Mentions, candidates: Candidates) -> tuple[list[str], list[str], np.ndarray]:
        """Flat pair texts for the valid slots, and their ``[n, k]`` boolean mask (row-major order)."""
        valid = candidates.concepts >= 0
        left = self.mention_sides(mentions)
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
        with call_lock(self.tokenizer):  # shared with other models: see xnorm.models.tokenizers
            batch = self.tokenizer(list(firsts), list(seconds), truncation="longest_first",
                                   max_length=self.max_length, padding=True, return_tensors="pt")
        if getattr(batch, "encodings", None):  # fast tokenizer: which side each token is on (-1: special, pad)
            import torch

            batch["segments"] = torch.tensor([[-1 if s is None else s for s in e.sequence_ids]
                                              for e in batch.encodings], dtype=torch.int8)
        return batch
