"""The batches that flow between stages: ``Mentions`` in, ``Candidates`` out.

Both are columnar (parallel numpy arrays), so every stage works on whole batches, never on lists of dicts.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Sequence

import numpy as np

# How a candidate was reached (``Candidates.routes``): through names in the mention's own language, through
# English names (the fallback for concepts with no name in that language), or through names of any language.
ROUTE_NONE, ROUTE_SAME_LANGUAGE, ROUTE_ENGLISH_FALLBACK, ROUTE_ANY_LANGUAGE, ROUTE_MEMORY = 0, 1, 2, 3, 4
# ROUTE_MEMORY: not found through names, added by a feature reranker that remembers it annotated for this text
ROUTE_NAMES = ("none", "same-language", "english-fallback", "any-language", "annotation-memory")
GENERATOR_LISTS = "generators"  # Candidates.meta key (see Candidates)


def _obj(values: Sequence, n: int, default="") -> np.ndarray:
    arr = np.empty(n, dtype=object)
    arr[:] = [default] * n if values is None else list(values)
    return arr


@dataclass
class Mentions:
    """A batch of n mentions. Only ``texts`` is required; the rest default to empty strings.

    ``langs``: ISO 639 code per mention (routing and language-adapter choice); ``long_forms``: the expansion
    when the mention is an abbreviation defined in its document ("" otherwise); ``left`` / ``right``: context.
    """

    texts: np.ndarray
    langs: np.ndarray = None
    doc_ids: np.ndarray = None
    entity_ids: np.ndarray = None
    types: np.ndarray = None
    left: np.ndarray = None
    right: np.ndarray = None
    long_forms: np.ndarray = None

    def __post_init__(self) -> None:
        n = len(self.texts)
        for f in fields(self):
            value = getattr(self, f.name)
            setattr(self, f.name, _obj(value, n))
            if len(getattr(self, f.name)) != n:
                raise ValueError(f"Mentions.{f.name} has {len(value)} entries, texts has {n}")

    @classmethod
    def from_texts(cls, texts: Sequence[str], lang: str = "en") -> "Mentions":
        return cls(texts=list(texts), langs=[lang] * len(texts))

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index) -> "Mentions":
        """Rows by slice, integer array or boolean mask."""
        return Mentions(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


@dataclass
class Candidates:
    """k ranked candidate concepts for each of n mentions.

    ``concepts[n, k]``: row in the terminology's concept table (-1 = empty slot, always at the end of a row).
    ``scores[n, k]``: higher is better, ``-inf`` for empty slots; comparable within one ``source`` only.
    ``names[n, k]``: the name row that matched best for that concept (-1 if unknown).
    ``routes[n, k]``: ``ROUTE_*`` code of the route that found the candidate.
    ``meta[GENERATOR_LISTS]`` (from ``CandidateIndex.candidates``): each generator's own ranked list for the same
    mentions, by generator name, before fusion — what a feature reranker reads each generator's score from.
    """

    concepts: np.ndarray
    scores: np.ndarray
    names: np.ndarray
    routes: np.ndarray
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.concepts = np.asarray(self.concepts, dtype=np.int32)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        self.names = np.asarray(self.names, dtype=np.int32)
        self.routes = np.asarray(self.routes, dtype=np.int8)
        shapes = {a.shape for a in (self.concepts, self.scores, self.names, self.routes)}
        if len(shapes) != 1 or self.concepts.ndim != 2:
            raise ValueError(f"Candidates arrays must share one [n, k] shape, got {shapes}")

    @classmethod
    def empty(cls, n: int, k: int, source: str = "") -> "Candidates":
        return cls(
            concepts=np.full((n, k), -1, np.int32),
            scores=np.full((n, k), -np.inf, np.float32),
            names=np.full((n, k), -1, np.int32),
            routes=np.zeros((n, k), np.int8),
            source=source,
        )

    @property
    def shape(self) -> tuple[int, int]:
        return self.concepts.shape  # type: ignore[return-value]

    def __len__(self) -> int:
        return self.concepts.shape[0]

    def __getitem__(self, index) -> "Candidates":
        meta = dict(self.meta)
        if GENERATOR_LISTS in meta:  # row-aligned with these mentions, so sliced with them
            meta[GENERATOR_LISTS] = {g: c[index] for g, c in meta[GENERATOR_LISTS].items()}
        return Candidates(self.concepts[index], self.scores[index], self.names[index], self.routes[index],
                          self.source, meta)

    def top(self, k: int) -> "Candidates":
        """The first k columns (rows are ranked)."""
        return Candidates(self.concepts[:, :k], self.scores[:, :k], self.names[:, :k], self.routes[:, :k],
                          self.source, dict(self.meta))

    def concept_ids(self, terminology) -> np.ndarray:
        """Concept ids as strings, ``None`` in empty slots."""
        ids = np.empty(self.concepts.shape, dtype=object)
        valid = self.concepts >= 0
        ids[valid] = terminology.concept_ids[self.concepts[valid]]
        return ids

    @staticmethod
    def concat(parts: Sequence["Candidates"]) -> "Candidates":
        """Stack batches row-wise (they must share k and source)."""
        if not parts:
            raise ValueError("nothing to concatenate")
        meta = dict(parts[0].meta)
        lists = [p.meta.get(GENERATOR_LISTS) for p in parts]
        meta.pop(GENERATOR_LISTS, None)
        if all(lists) and all(list(x) == list(lists[0]) and all(x[g].shape[1] == lists[0][g].shape[1] for g in x)
                              for x in lists):
            meta[GENERATOR_LISTS] = {g: Candidates.concat([x[g] for x in lists]) for g in lists[0]}
        return Candidates(
            np.concatenate([p.concepts for p in parts]), np.concatenate([p.scores for p in parts]),
            np.concatenate([p.names for p in parts]), np.concatenate([p.routes for p in parts]),
            parts[0].source, meta,
        )
