"""Character n-gram TF-IDF candidates with exact sparse top-k (no nmslib: it fails to build for many users).

Names and mentions are normalised (Unicode NFKC + casefold, accents optionally stripped), vectorised with one
shared character n-gram vocabulary (sublinear tf, idf, L2 norm), and compared by cosine = sparse dot product.
Top-k per mention: the sparse product is made dense one chunk of mentions at a time (memory stays bounded by
``chunk_bytes`` whatever the number of names) and cut with ``np.argpartition``.

The fitted vectorizer is stored without pickle: vocabulary as JSON, idf as ``.npy``, the name matrix with
``scipy.sparse.save_npz`` (read back with ``allow_pickle=False``).
"""
from __future__ import annotations

import json
import os
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from ..errors import ArtifactError
from ..terminology.core import Terminology
from .base import CandidateGenerator


def normalize_text(text: str, strip_accents: bool = False) -> str:
    """NFKC + casefold (full-width forms, ligatures and case fold together); accents removed on request."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if strip_accents:
        decomposed = unicodedata.normalize("NFD", text)
        text = unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))
    return text


class SparseGenerator(CandidateGenerator):
    """TF-IDF over character n-grams of names; cosine top-k per name language."""

    type = "sparse"

    def __init__(self, name: str = "sparse", analyzer: str = "char_wb", ngram_range: Sequence[int] = (2, 4),
                 strip_accents: bool = False, min_df: int = 1, max_features: int | None = None,
                 chunk_bytes: int = 256 << 20, names_per_concept: int = 4, threads: int | None = None) -> None:
        super().__init__(name, names_per_concept)
        self.analyzer = analyzer
        self.ngram_range = (int(ngram_range[0]), int(ngram_range[1]))
        self.strip_accents = strip_accents
        self.min_df = min_df
        self.max_features = max_features
        self.chunk_bytes = chunk_bytes
        self.threads = threads  # None: one per CPU
        self.vocabulary: dict[str, int] = {}
        self.idf: np.ndarray = np.zeros(0, np.float32)
        self.matrix: sp.csr_matrix | None = None  # [names, vocabulary], rows L2-normalised
        self._lang_matrices: dict[str, sp.csr_matrix] = {}  # name language -> [vocabulary, its names]
        self._counter = None

    @classmethod
    def from_config(cls, cfg: dict) -> "SparseGenerator":
        return cls(name=cfg["name"], analyzer=cfg["analyzer"], ngram_range=cfg["ngram_range"],
                   strip_accents=cfg["strip_accents"], min_df=cfg["min_df"], max_features=cfg["max_features"],
                   chunk_bytes=cfg["chunk_bytes"], names_per_concept=cfg.get("names_per_concept", 4),
                   threads=cfg.get("threads"))

    def config(self) -> dict:
        return {"type": self.type, "name": self.name, "analyzer": self.analyzer,
                "ngram_range": list(self.ngram_range), "strip_accents": self.strip_accents, "min_df": self.min_df,
                "max_features": self.max_features, "chunk_bytes": self.chunk_bytes,
                "names_per_concept": self.names_per_concept, "threads": self.threads}

    # ---- fitting and vectorising -------------------------------------------------------------------------
    def _normalize(self, texts: Sequence[str]) -> list[str]:
        return [normalize_text(str(t), self.strip_accents) for t in texts]

    def fit(self, terminology: Terminology, show_progress: bool = False) -> "SparseGenerator":
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(analyzer=self.analyzer, ngram_range=self.ngram_range, lowercase=False,
                              sublinear_tf=True, min_df=self.min_df, max_features=self.max_features,
                              dtype=np.float32)
        matrix = vec.fit_transform(self._normalize(terminology.name_texts))
        self.vocabulary = {str(t): int(i) for t, i in vec.vocabulary_.items()}
        self.idf = vec.idf_.astype(np.float32)
        self._set_matrix(terminology, matrix.tocsr().astype(np.float32))
        return self

    def _set_matrix(self, terminology: Terminology, matrix: sp.csr_matrix) -> None:
        self._set_languages(terminology)
        self.matrix = matrix
        # Transposed per-language blocks, so a query chunk is one sparse product per name language.
        self._lang_matrices = {lang: matrix[rows].T.tocsr() for lang, rows in self.lang_rows.items()}
        self._counter = None

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """TF-IDF vectors (rows L2-normalised) of ``texts`` in the names' vector space."""
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.preprocessing import normalize

        if self._counter is None:
            # A CountVectorizer over the stored vocabulary + our own sublinear tf * idf: the same numbers as the
            # fitted TfidfVectorizer, rebuilt from plain data (no pickle).
            self._counter = CountVectorizer(analyzer=self.analyzer, ngram_range=self.ngram_range, lowercase=False,
                                            vocabulary=self.vocabulary, dtype=np.float32)
        counts = self._counter.transform(self._normalize(texts)).tocsr().astype(np.float32)
        counts.data = 1.0 + np.log(counts.data)
        tfidf = counts.multiply(self.idf[None, :]).tocsr().astype(np.float32)
        return normalize(tfidf, norm="l2", copy=False)

    def encode_queries(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self.transform(texts)

    def search(self, queries: sp.csr_matrix, lang: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        names_t = self._lang_matrices[lang]
        global_rows = self.lang_rows[lang]
        n_names = names_t.shape[1]
        m = queries.shape[0]
        k = min(k, n_names)
        out_rows = np.full((m, k), -1, np.int64)
        out_scores = np.full((m, k), -np.inf, np.float32)
        if k == 0 or m == 0:
            return out_rows, out_scores
        chunk = max(1, self.chunk_bytes // (4 * n_names))

        def one_chunk(start: int) -> None:
            dense = (queries[start:start + chunk] @ names_t).toarray()
            if k < n_names:
                # Partition the array as it is (negating it first costs a copy and ~3x the time).
                top = np.argpartition(dense, n_names - k, axis=1)[:, n_names - k:]
            else:
                top = np.broadcast_to(np.arange(n_names), (dense.shape[0], n_names))
            scores = np.take_along_axis(dense, top, axis=1)
            # Zero cosine = no shared n-gram: not a candidate (padding instead of arbitrary names).
            hit = scores > 0
            out_rows[start:start + chunk] = np.where(hit, global_rows[top], -1)
            out_scores[start:start + chunk] = np.where(hit, scores, -np.inf)

        starts = range(0, m, chunk)
        threads = min(self.threads or os.cpu_count() or 1, len(starts))
        if threads <= 1:
            for start in starts:
                one_chunk(start)
        else:
            # scipy's sparse product and numpy's partition release the GIL: chunks run in parallel threads
            # (each holds one dense chunk, so peak memory is threads x chunk_bytes). Chunks write disjoint rows.
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(one_chunk, starts))
        return out_rows, out_scores

    # ---- persistence -------------------------------------------------------------------------------------
    def save(self, path: Path) -> list[str]:
        path.mkdir(parents=True, exist_ok=True)
        (path / "vocabulary.json").write_text(json.dumps(self.vocabulary, ensure_ascii=False), encoding="utf-8")
        np.save(path / "idf.npy", self.idf, allow_pickle=False)
        sp.save_npz(path / "names.npz", self.matrix, compressed=False)
        return ["vocabulary.json", "idf.npy", "names.npz"]

    @classmethod
    def load(cls, path: Path, cfg: dict, terminology: Terminology) -> "SparseGenerator":
        gen = cls.from_config(cfg)
        try:
            gen.vocabulary = json.loads((path / "vocabulary.json").read_text(encoding="utf-8"))
            gen.idf = np.load(path / "idf.npy", allow_pickle=False).astype(np.float32)
            matrix = sp.load_npz(path / "names.npz").tocsr().astype(np.float32)
        except (OSError, ValueError) as e:
            raise ArtifactError(f"cannot read the sparse index ({e}).", file=str(path),
                                fix="rebuild the index with `xnorm index`.") from None
        if matrix.shape != (terminology.n_names, len(gen.vocabulary)) or len(gen.idf) != len(gen.vocabulary):
            raise ArtifactError(
                f"sparse matrix shape {matrix.shape} does not match {terminology.n_names} names x "
                f"{len(gen.vocabulary)} n-grams.", file=str(path / "names.npz"),
                fix="rebuild the index with `xnorm index`.")
        gen._set_matrix(terminology, matrix)
        return gen
