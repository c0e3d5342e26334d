"""Training data for encoder self-alignment: a concept-level split and concept-sampled batches of names.

Positives are names of one concept (English name ↔ its synonyms and translations); every other concept in the
batch supplies negatives. The split is by concept id, so a held-out concept contributes no name in any
language to training, and it is written to the output folder so leakage can be checked afterwards.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from xnorm._io import atomic_write
from xnorm.errors import ArtifactError, ConfigError, InputError
from xnorm.terminology.core import Terminology

SPLIT_FILE = "split.json"
SPLITS = ("train", "dev", "test")


def _stable_fractions(ids: np.ndarray, seed: int) -> np.ndarray:
    """A number in [0, 1) per id fixed by (seed, id): a concept's side does not depend on what else is there."""
    out = np.empty(len(ids), dtype=np.float64)
    for i, cid in enumerate(ids.tolist()):
        digest = hashlib.sha256(f"{seed}:{cid}".encode()).digest()
        out[i] = int.from_bytes(digest[:8], "big") / 2.0**64
    return out


@dataclass
class ConceptSplit:
    """Concept ids per split; ``forced`` are the ids kept out of training on request (they sit in ``test``)."""

    train: np.ndarray
    dev: np.ndarray
    test: np.ndarray
    seed: int
    fractions: dict
    forced: np.ndarray

    def of(self, name: str) -> np.ndarray:
        if name not in SPLITS:
            raise ConfigError(f"unknown split {name!r}.", field="split", fix=f"use one of {SPLITS}.")
        return getattr(self, name)

    def to_json(self) -> dict:
        return {"seed": self.seed, "fractions": self.fractions, "forced_out_of_training": self.forced.tolist(),
                **{name: sorted(self.of(name).tolist()) for name in SPLITS}}

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``split.json`` (concept ids per split) into ``folder``, atomically."""
        path = Path(folder) / SPLIT_FILE
        with atomic_write(path) as f:
            json.dump(self.to_json(), f, ensure_ascii=False, indent=1)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ConceptSplit":
        path = Path(path)
        if path.is_dir():
            path = path / SPLIT_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            arrays = {name: np.asarray(data[name], dtype=object) for name in SPLITS}
            return cls(**arrays, seed=int(data["seed"]), fractions=dict(data["fractions"]),
                       forced=np.asarray(data.get("forced_out_of_training", []), dtype=object))
        except FileNotFoundError:
            raise ArtifactError("split file not found.", file=str(path),
                                fix="point to a training output folder (it holds split.json).") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ArtifactError(f"not a valid split file ({e}).", file=str(path),
                                fix="re-run training, or repair the file.") from None


def split_concepts(
    terminology: Terminology,
    *,
    dev_fraction: float = 0.05,
    test_fraction: float = 0.1,
    seed: int = 0,
    exclude: Iterable[str] = (),
) -> ConceptSplit:
    """Split concept ids into train/dev/test by a seeded hash of the id; ``exclude`` ids are forced into test.

    Excluded ids are resolved through the terminology's aliases; ids it does not know are ignored (they cannot
    leak). Fractions are of all concepts.
    """
    for name, value in (("dev_fraction", dev_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), not {value!r}.", field=name, fix="use e.g. 0.05.")
    if dev_fraction + test_fraction >= 1.0:
        raise ConfigError("dev_fraction + test_fraction leaves no training concepts.", field="test_fraction",
                          fix="make the two fractions sum to less than 1.")
    ids = terminology.concept_ids
    u = _stable_fractions(ids, seed)
    side = np.where(u < test_fraction, 2, np.where(u < test_fraction + dev_fraction, 1, 0))
    forced_ids = sorted({terminology.resolve(c) for c in exclude} & set(ids.tolist()))
    if forced_ids:
        side[np.isin(ids, np.asarray(forced_ids, dtype=object))] = 2
    return ConceptSplit(train=ids[side == 0], dev=ids[side == 1], test=ids[side == 2], seed=seed,
                        fractions={"dev": dev_fraction, "test": test_fraction},
                        forced=np.asarray(forced_ids, dtype=object))


def read_concept_list(path: str | os.PathLike) -> list[str]:
    """Concept ids from a text file, one per line (``#`` comments and blank lines skipped), or a ``split.json``
    (its ``test`` ids)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("concept list not found.", file=str(path),
                         fix="pass a text file with one concept id per line, or a split.json.")
    if path.suffix == ".json":
        return ConceptSplit.load(path).test.tolist()
    ids = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.append(line)
    return ids


@dataclass
class NameTable:
    """Training names grouped by concept: names of group g are ``texts[offsets[g]:offsets[g + 1]]``.

    ``concepts`` holds each group's concept id; ``english`` marks names in the pivot language.
    """

    texts: np.ndarray
    langs: np.ndarray
    english: np.ndarray
    concepts: np.ndarray
    offsets: np.ndarray

    @property
    def n_groups(self) -> int:
        return len(self.concepts)

    def __len__(self) -> int:
        return len(self.texts)


def training_names(
    terminology: Terminology,
    concept_ids: Sequence[str] | np.ndarray,
    languages: Sequence[str] | None = None,
    *,
    pivot: str = "en",
    min_names: int = 2,
) -> NameTable:
    """Names of ``concept_ids`` in ``languages`` (all when None), grouped by concept.

    Concepts with fewer than ``min_names`` names (nothing to align) are dropped.
    """
    if languages is not None:
        unknown = sorted(set(languages) - set(terminology.languages))
        if unknown:
            raise ConfigError(f"languages {unknown} have no names in the terminology.", field="languages",
                              fix=f"use some of {', '.join(terminology.languages)}.")
    wanted = np.zeros(len(terminology), dtype=bool)
    rows = np.flatnonzero(np.isin(terminology.concept_ids, np.asarray(list(concept_ids), dtype=object)))
    wanted[rows] = True
    mask = wanted[terminology.name_concepts]
    if languages is not None:
        mask &= np.isin(terminology.name_langs, np.asarray(list(languages), dtype=object))
    idx = np.flatnonzero(mask)
    order = idx[np.argsort(terminology.name_concepts[idx], kind="stable")]
    concepts = terminology.name_concepts[order]
    counts = np.bincount(concepts, minlength=len(terminology))
    keep = counts[concepts] >= min_names
    order, concepts = order[keep], concepts[keep]
    groups, starts = np.unique(concepts, return_index=True)
    offsets = np.append(starts, len(order)).astype(np.int64)
    langs = terminology.name_langs[order]
    return NameTable(texts=terminology.name_texts[order], langs=langs, english=langs == pivot,
                     concepts=terminology.concept_ids[groups], offsets=offsets)


class ConceptBatchSampler:
    """Batches of name indices: ``batch_size // names_per_concept`` concepts, ``names_per_concept`` names each.

    The first name of each concept is one of its pivot-language (English) names when it has one, the others
    are drawn from its remaining names in any language, so most positives are cross-lingual pairs. A batch is
    a pure function of (seed, batch number): resuming at batch b gives exactly the batches an uninterrupted
    run would have seen. Concepts are visited in a seeded permutation per epoch.

    ``neighbours`` (``[groups, K]`` group indices, e.g. from ``concept_neighbours``) with ``hard_negatives=h``
    makes batches of clusters: each concept drawn from the permutation (an anchor) brings ``h`` of its K nearest
    concepts, so the in-batch negatives are the concepts the encoder confuses, not random ones.
    """

    def __init__(self, names: NameTable, batch_size: int, names_per_concept: int = 2, seed: int = 0,
                 neighbours: np.ndarray | None = None, hard_negatives: int = 0) -> None:
        if names_per_concept < 2:
            raise ConfigError("names_per_concept must be at least 2 (a positive pair).", field="names_per_concept",
                              fix="use 2.")
        per_batch = batch_size // names_per_concept
        if per_batch < 2:
            raise ConfigError(f"batch_size {batch_size} holds fewer than 2 concepts.", field="batch_size",
                              fix=f"use a batch size of at least {2 * names_per_concept}.")
        if names.n_groups < per_batch:
            raise InputError(f"only {names.n_groups} training concepts have 2 or more names; a batch needs "
                             f"{per_batch}.", field="batch_size",
                             fix="lower the batch size, or add languages / concepts to the training data.")
        if hard_negatives < 0 or (hard_negatives and (neighbours is None or neighbours.shape[0] != names.n_groups
                                                      or neighbours.shape[1] < hard_negatives)):
            raise ConfigError(f"hard_negatives={hard_negatives} needs a neighbour table with a row per training "
                              f"concept and at least {hard_negatives} columns.", field="hard_negatives",
                              fix="pass neighbours=concept_neighbours(...), or hard_negatives=0.")
        self.names = names
        self.concepts_per_batch = per_batch
        self.names_per_concept = names_per_concept
        self.seed = seed
        self.hard_negatives = hard_negatives
        self.neighbours = neighbours
        # Anchors per batch: each anchor brings hard_negatives neighbours (an epoch = every concept as anchor once).
        self.anchors_per_batch = max(1, per_batch // (1 + hard_negatives))
        self.batches_per_epoch = names.n_groups // self.anchors_per_batch
        self._sizes = np.diff(names.offsets)
        self._perm_epoch = -1
        self._perm = np.empty(0, dtype=np.int64)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, 1, epoch]).permutation(self.names.n_groups)
            self._perm_epoch = epoch
        return self._perm

    def batch(self, number: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(name indices [m], group label per name [m], is-first-name flag [m]) of batch ``number``."""
        epoch, pos = divmod(number, self.batches_per_epoch)
        a = self.anchors_per_batch
        groups = self._permutation(epoch)[pos * a:(pos + 1) * a]
        rng = np.random.default_rng([self.seed, 2, number])
        if self.hard_negatives:
            groups = self._with_neighbours(groups, rng)
        sizes = self._sizes[groups]
        starts = self.names.offsets[groups]
        # All names of the chosen concepts, flattened: segment g covers starts[g] .. starts[g] + sizes[g].
        seg = np.repeat(np.arange(len(groups)), sizes)
        within = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        members = np.repeat(starts, sizes) + within
        # Random keys decide the order inside each concept; one English name (the lowest-keyed) goes first.
        keys = rng.random(len(members))
        eng = self.names.english[members]
        eng_key = np.where(eng, keys, np.inf)
        best = np.full(len(groups), np.inf)
        np.minimum.at(best, seg, eng_key)
        first = eng & (eng_key == best[seg])
        keys = np.where(first, keys - 2.0, keys)
        # Sorted by (concept, key): segments keep their places, so position j in ``order`` has rank within[j].
        order = np.lexsort((keys, seg))
        chosen = within < self.names_per_concept
        take = order[chosen]
        return members[take], seg[take], within[chosen] == 0

    def _with_neighbours(self, anchors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The anchors, then ``hard_negatives`` random picks among each anchor's neighbours, each concept once;
        random other concepts fill the batch where neighbours coincide."""
        picks = rng.permuted(self.neighbours[anchors], axis=1)[:, :self.hard_negatives]
        groups = np.concatenate([anchors, picks.ravel()])
        _, first = np.unique(groups, return_index=True)
        groups = groups[np.sort(first)][:self.concepts_per_batch]
        missing = self.concepts_per_batch - len(groups)
        if missing > 0:
            others = np.setdiff1d(np.arange(self.names.n_groups), groups)
            groups = np.concatenate([groups, rng.choice(others, missing, replace=False)])
        return groups

    def __len__(self) -> int:
        return self.batches_per_epoch


def concept_neighbours(vectors: np.ndarray, k: int) -> np.ndarray:
    """``[n, k]`` indices of each row's ``k`` nearest other rows by inner product (exact FAISS search), e.g.
    over one normalised name vector per training concept."""
    import faiss

    if not 0 < k < len(vectors):
        raise ConfigError(f"cannot find {k} neighbours among {len(vectors)} concepts.", field="hard_negatives",
                          fix="use fewer hard negatives, or more training concepts.")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    _, found = index.search(vectors, k + 1)
    # Drop each row itself (usually first, but ties with duplicate names may put it elsewhere).
    own = found == np.arange(len(vectors))[:, None]
    own[~own.any(axis=1), -1] = True
    return found[~own].reshape(len(vectors), k).astype(np.int64)
