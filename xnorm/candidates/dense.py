"""Dense candidates: any ``Encoder`` (names as "passage", mentions as "query") + one FAISS index per name language.

The index type is a FAISS factory string (``Flat`` = exact inner product, the default; ``HNSW32``; ``IVF{n},PQ{m}``
for very large terminologies, trained on a sample of names). Embeddings are L2-normalised, so inner product is
cosine. Indexes are written with ``faiss.write_index`` and read back memory-mapped where the index type allows.
The encoder is an ordinary object held by the generator: two dense generators with different models can live in
one process.

Hubness correction (``hubness: beta`` > 0): some names lie near many queries of unrelated concepts ("hubs") and
crowd out the right one. Search then ranks by CSLS, ``cos(q, y) - beta * r(y)`` (Conneau et al., 2018), where
``r(y)`` is the mean cosine of name ``y`` to its ``hubness_k`` nearest names of OTHER concepts in the index (any
language), computed once at fit and saved with the index; the top ``2 x k`` names by cosine are re-scored.
Measured in benchmarks/results/hubness_index.md.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ArtifactError, ConfigError
from ..terminology.core import Terminology
from .base import CandidateGenerator

log = logging.getLogger(__name__)

# Encoder settings a dense generator config may carry (the rest of its keys belong to the generator).
ENCODER_KEYS = ("pooling", "query_prefix", "passage_prefix", "max_length", "batch_size", "device", "precision",
                "backend")


def make_encoder(cfg: dict):
    """An ``xnorm.models.encoder.Encoder`` from a dense generator config (model name or folder + settings)."""
    from ..models.encoder import Encoder  # heavy (torch); imported only when a dense generator is built

    return Encoder(cfg["model"], **{k: cfg[k] for k in ENCODER_KEYS if k in cfg})


def _read_index(path: Path):
    """Read a FAISS index memory-mapped where its type supports it, else into memory."""
    import faiss

    flags = [getattr(faiss, "IO_FLAG_MMAP_IFC", None), getattr(faiss, "IO_FLAG_MMAP", None)]
    for flag in flags:
        if flag is None:
            continue
        try:
            return faiss.read_index(str(path), flag | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError:
            continue
    return faiss.read_index(str(path))


class DenseGenerator(CandidateGenerator):
    """Nearest names by embedding inner product, per name language."""

    type = "dense"

    def __init__(self, encoder: Any, name: str = "dense", index: str = "Flat", train_size: int = 100_000,
                 names_per_concept: int = 4, search_batch: int = 4096, search_params: str | None = None,
                 hubness: float = 0.0, hubness_k: int = 10, settings: dict | None = None) -> None:
        super().__init__(name, names_per_concept)
        self.encoder = encoder
        self.factory = index
        self.train_size = train_size
        self.search_batch = search_batch
        self.search_params = search_params
        self.hubness = float(hubness)
        self.hubness_k = hubness_k
        self.settings = dict(settings or {})  # the generator's config entry (model name etc.), kept for save
        self.indexes: dict[str, Any] = {}
        self.hub: np.ndarray | None = None  # r(name) per global name row when hubness > 0

    @classmethod
    def from_config(cls, cfg: dict, encoder: Any = None) -> "DenseGenerator":
        """From a validated config entry; ``encoder`` overrides the one the config names."""
        return cls(encoder if encoder is not None else make_encoder(cfg), name=cfg["name"], index=cfg["index"],
                   train_size=cfg["train_size"], names_per_concept=cfg["names_per_concept"],
                   search_batch=cfg["search_batch"], search_params=cfg.get("search_params"),
                   hubness=cfg.get("hubness", 0.0), hubness_k=cfg.get("hubness_k", 10), settings=cfg)

    def config(self) -> dict:
        cfg = dict(self.settings)
        cfg.update({"type": self.type, "name": self.name, "index": self.factory, "train_size": self.train_size,
                    "names_per_concept": self.names_per_concept, "search_batch": self.search_batch,
                    "hubness": self.hubness, "hubness_k": self.hubness_k})
        return cfg

    def encoder_config(self) -> dict | None:
        """The encoder's own description (model reference, pooling, prefixes), if it provides one."""
        cfg = getattr(self.encoder, "config", None)
        return cfg() if callable(cfg) else None

    def weights_fingerprint(self) -> str | None:
        """The encoder's weights fingerprint (``xnorm.models.registry.weights_fingerprint``), if it has one."""
        fingerprint = getattr(self.encoder, "weights_fingerprint", None)
        return fingerprint() if callable(fingerprint) else None

    # ---- fitting -----------------------------------------------------------------------------------------
    def _new_index(self, dim: int, n: int, sample: np.ndarray):
        import faiss

        try:
            index = faiss.index_factory(dim, self.factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as e:
            raise ConfigError(f"FAISS cannot build index {self.factory!r} ({str(e).splitlines()[0][:200]}).",
                              field=f"generators.{self.name}.index",
                              fix="use a FAISS factory string such as Flat, HNSW32 or IVF1024,PQ16.") from None
        if not index.is_trained:
            if len(sample) < 2:
                raise ConfigError(f"index {self.factory!r} needs training but a language has only {n} names.",
                                  field=f"generators.{self.name}.index",
                                  fix="use index: Flat or HNSW32 for small terminologies.")
            index.train(sample)
        return index

    def fit(self, terminology: Terminology, show_progress: bool = False) -> "DenseGenerator":
        self._set_languages(terminology)
        texts = [str(t) for t in terminology.name_texts]
        emb = np.ascontiguousarray(self.encoder.encode(texts, kind="passage", show_progress=show_progress),
                                   dtype=np.float32)
        rng = np.random.default_rng(0)  # seeded: the same names train the same index
        self.indexes = {}
        for lang, rows in self.lang_rows.items():
            vectors = emb[rows]
            sample = vectors
            if len(vectors) > self.train_size:
                sample = vectors[np.sort(rng.choice(len(vectors), self.train_size, replace=False))]
            index = self._new_index(emb.shape[1], len(vectors), sample)
            index.add(vectors)
            self.indexes[lang] = index
        self._apply_search_params()
        self.hub = self.hub_scores(emb) if self.hubness > 0 else None
        return self

    def hub_scores(self, emb: np.ndarray, batch: int = 8192) -> np.ndarray:
        """r(name): mean cosine of each name to its ``hubness_k`` nearest names of other concepts, any language
        (fewer where the index has fewer), found with the generator's own FAISS indexes."""
        concepts = self.terminology.name_concepts
        # A name's own concept can take up to that concept's name count of the nearest slots: fetch past them.
        fetch = self.hubness_k + int(np.bincount(concepts).max())
        r = np.zeros(len(emb), dtype=np.float32)
        for start in range(0, len(emb), batch):
            q = emb[start:start + batch]
            found = [self._nearest(q, lang, min(fetch, len(rows))) for lang, rows in self.lang_rows.items()]
            rows = np.concatenate([f[0] for f in found], axis=1)
            scores = np.concatenate([f[1] for f in found], axis=1)
            own = concepts[np.maximum(rows, 0)] == concepts[start:start + len(q), None]
            scores = np.where((rows < 0) | own, -np.inf, scores)
            k = min(self.hubness_k, scores.shape[1])
            top = -np.partition(-scores, k - 1, axis=1)[:, :k]
            finite = np.isfinite(top)
            r[start:start + len(q)] = np.where(finite, top, 0).sum(1) / np.maximum(finite.sum(1), 1)
        return r

    def _apply_search_params(self) -> None:
        if not self.search_params:
            return
        import faiss

        for index in self.indexes.values():
            faiss.ParameterSpace().set_index_parameters(index, self.search_params)

    # ---- searching ---------------------------------------------------------------------------------------
    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.ascontiguousarray(self.encoder.encode(list(texts), kind="query"), dtype=np.float32)

    def search(self, queries: np.ndarray, lang: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.hub is None or k == 0:
            return self._nearest(queries, lang, k)
        rows, scores = self._nearest(queries, lang, min(2 * k, len(self.lang_rows[lang])))
        scores = np.where(rows >= 0, scores - self.hubness * self.hub[np.maximum(rows, 0)], -np.inf)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        rows, scores = np.take_along_axis(rows, order, 1), np.take_along_axis(scores, order, 1).astype(np.float32)
        pad = k - rows.shape[1]  # a language with fewer than k names
        return (np.pad(rows, ((0, 0), (0, pad)), constant_values=-1),
                np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf))

    def _nearest(self, queries: np.ndarray, lang: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k names of ``lang`` by inner product (cosine): global rows and scores, -1 / -inf padded."""
        index = self.indexes[lang]
        global_rows = self.lang_rows[lang]
        m = len(queries)
        out_rows = np.full((m, k), -1, np.int64)
        out_scores = np.full((m, k), -np.inf, np.float32)
        if k == 0 or m == 0:
            return out_rows, out_scores
        if queries.shape[1] != index.d:
            raise ArtifactError(f"the encoder gives {queries.shape[1]}-d vectors but the index of {lang!r} names "
                                f"holds {index.d}-d vectors.", field=f"generators.{self.name}.model",
                                fix="load the index with the encoder it was built with, or rebuild it.")
        for start in range(0, m, self.search_batch):
            scores, ids = index.search(queries[start:start + self.search_batch], k)
            ok = ids >= 0
            out_rows[start:start + len(ids)] = np.where(ok, global_rows[np.maximum(ids, 0)], -1)
            out_scores[start:start + len(ids)] = np.where(ok, scores, -np.inf)
        return out_rows, out_scores

    # ---- persistence -------------------------------------------------------------------------------------
    def save(self, path: Path) -> list[str]:
        import faiss

        path.mkdir(parents=True, exist_ok=True)
        files = []
        # Files are numbered, not named by language code: a code is user data and need not be a safe file name.
        for i, lang in enumerate(self.languages):
            fname = f"names-{i}.faiss"
            faiss.write_index(self.indexes[lang], str(path / fname))
            files.append(fname)
        if self.hub is not None:
            np.save(path / "hubness.npy", self.hub)
            files.append("hubness.npy")
        return files

    @classmethod
    def load(cls, path: Path, cfg: dict, terminology: Terminology, encoder: Any = None) -> "DenseGenerator":
        gen = cls.from_config(cfg, encoder=encoder)
        gen._set_languages(terminology)
        for i, lang in enumerate(gen.languages):
            f = path / f"names-{i}.faiss"
            try:
                index = _read_index(f)
            except RuntimeError as e:
                raise ArtifactError(f"cannot read the FAISS index ({str(e).splitlines()[0][:200]}).", file=str(f),
                                    fix="rebuild the index with `xnorm index`.") from None
            if index.ntotal != len(gen.lang_rows[lang]):
                raise ArtifactError(f"FAISS index holds {index.ntotal} vectors, the terminology has "
                                    f"{len(gen.lang_rows[lang])} {lang!r} names.", file=str(f),
                                    fix="rebuild the index with `xnorm index`.")
            gen.indexes[lang] = index
        gen._apply_search_params()
        if gen.hubness > 0:
            f = path / "hubness.npy"
            try:
                gen.hub = np.load(f, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise ArtifactError(f"cannot read the hubness scores ({e}).", file=str(f),
                                    fix="rebuild the index with `xnorm index`.") from None
            if gen.hub.shape != (len(terminology.name_concepts),):
                raise ArtifactError(f"{gen.hub.shape} hubness scores for {len(terminology.name_concepts)} names.",
                                    file=str(f), fix="rebuild the index with `xnorm index`.")
        return gen
