"""Dense candidates: any ``Encoder`` (names as "passage", mentions as "query") + one FAISS index per name language.

The index type is a FAISS factory string (``Flat`` = exact inner product, the default; ``HNSW32``; ``IVF{n},PQ{m}``
for very large terminologies, trained on a sample of names). Embeddings are L2-normalised, so inner product is
cosine. Indexes are written with ``faiss.write_index`` and read back memory-mapped where the index type allows.
The encoder is an ordinary object held by the generator: two dense generators with different models can live in
one process. An optional query encoder (``query_model``: a distilled student of the index's model, role "query")
encodes the mentions instead, into the same vector space: names keep the index model's vectors, linking gets faster.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ArtifactError, ConfigError
from ..terminology.core import Terminology
from .base import CandidateGenerator
from .config import DENSE_DEFAULTS

log = logging.getLogger(__name__)

# Encoder settings a dense generator config may carry (the rest of its keys belong to the generator).
ENCODER_KEYS = ("pooling", "query_prefix", "passage_prefix", "max_length", "batch_size", "device", "precision",
                "backend")


def make_encoder(cfg: dict):
    """An ``xnorm.models.encoder.Encoder`` from a dense generator config (model name or folder + settings)."""
    from ..models.encoder import Encoder  # heavy (torch); imported only when a dense generator is built

    return Encoder(cfg["model"], **{k: cfg[k] for k in ENCODER_KEYS if k in cfg})


def make_query_encoder(cfg: dict):
    """The ``query_model`` encoder of a dense generator config (None when it names none)."""
    if not cfg.get("query_model"):
        return None
    from ..models.encoder import Encoder

    cfg = {**DENSE_DEFAULTS, **cfg}  # a generator built in code may carry no (or partial) settings
    return Encoder(cfg["query_model"], precision=cfg["query_precision"], backend=cfg["backend"],
                   device=cfg["device"], batch_size=cfg["batch_size"])


def check_query_encoder(query_encoder: Any, encoder: Any, field: str) -> None:
    """A query encoder must have been made for the weights that encoded the names: same vector space."""
    # read_model_settings makes sure a query encoder names its index model and that model's fingerprint
    if getattr(query_encoder, "role", None) != "query":
        raise ConfigError(f"{query_encoder.config()['model']!r} is not a query encoder (it declares no index model).",
                          field=field, fix="use a query encoder (`xnorm adapters list --kind distilled-encoder`, "
                          "role query), or drop query_model.")
    wanted, have = query_encoder.index_fingerprint, encoder.weights_fingerprint()
    if wanted != have:
        raise ConfigError(f"{query_encoder.config()['model']!r} encodes into the space of "
                          f"{query_encoder.index_model!r} (weights {wanted}), but the names were encoded by "
                          f"{encoder.config()['model']!r} (weights {have}).", field=field,
                          fix=f"build the index with model: {query_encoder.index_model}, or drop query_model.")


class LazyEncoder:
    """A saved index's encoder, built on first use. Its config and weights fingerprint come from the index manifest,
    so loading the index, checking its weights and attaching a query encoder load no weights; an index whose
    mentions a query encoder encodes never loads the encoder of its names (~0.9 GB less for the default)."""

    def __init__(self, make: Callable[[], Any], config: dict) -> None:
        from ..models.registry import weights_fingerprint

        self._make, self._config, self._encoder = make, dict(config), None
        self._fingerprint = weights_fingerprint(config["model"])  # asked at every load: once, as Encoder does

    def config(self) -> dict:
        return dict(self._config)

    def weights_fingerprint(self) -> str | None:
        return self._fingerprint

    @property
    def loaded(self) -> bool:
        return self._encoder is not None

    def __getattr__(self, name: str) -> Any:  # anything else (encode, dim, ...) needs the encoder itself
        if name.startswith("_"):
            raise AttributeError(name)
        if self._encoder is None:
            self._encoder = self._make()
        return getattr(self._encoder, name)


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
                 settings: dict | None = None, query_encoder: Any = None) -> None:
        super().__init__(name, names_per_concept)
        self.encoder = encoder
        self.set_query_encoder(query_encoder)
        self.factory = index
        self.train_size = train_size
        self.search_batch = search_batch
        self.search_params = search_params
        self.settings = dict(settings or {})  # the generator's config entry (model name etc.), kept for save
        self.indexes: dict[str, Any] = {}

    @classmethod
    def from_config(cls, cfg: dict, encoder: Any = None) -> "DenseGenerator":
        """From a validated config entry; ``encoder`` overrides the one the config names."""
        return cls(encoder if encoder is not None else make_encoder(cfg), name=cfg["name"], index=cfg["index"],
                   train_size=cfg["train_size"], names_per_concept=cfg["names_per_concept"],
                   search_batch=cfg["search_batch"], search_params=cfg.get("search_params"), settings=cfg,
                   query_encoder=make_query_encoder(cfg))

    def set_query_encoder(self, query_encoder: Any) -> None:
        """Encode the mentions with ``query_encoder`` (distilled for this generator's encoder; None: the encoder)."""
        if query_encoder is not None:
            check_query_encoder(query_encoder, self.encoder, f"generators.{self.name}.query_model")
        self.query_encoder = query_encoder
        self.clear_cache()

    def config(self) -> dict:
        cfg = dict(self.settings)
        cfg.update({"type": self.type, "name": self.name, "index": self.factory, "train_size": self.train_size,
                    "names_per_concept": self.names_per_concept, "search_batch": self.search_batch})
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
        return self

    def _apply_search_params(self) -> None:
        if not self.search_params:
            return
        import faiss

        for index in self.indexes.values():
            faiss.ParameterSpace().set_index_parameters(index, self.search_params)

    # ---- searching ---------------------------------------------------------------------------------------
    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        encoder = self.query_encoder if self.query_encoder is not None else self.encoder
        return np.ascontiguousarray(encoder.encode(list(texts), kind="query"), dtype=np.float32)

    def search(self, queries: np.ndarray, lang: str, k: int) -> tuple[np.ndarray, np.ndarray]:
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
        return gen
