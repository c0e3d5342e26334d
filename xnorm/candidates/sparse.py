"""Character n-gram TF-IDF candidates with exact sparse top-k (no nmslib: it fails to build for many users).

Names and mentions are normalised (Unicode NFKC + casefold, accents optionally stripped), vectorised with one
shared character n-gram vocabulary (sublinear tf, idf, L2 norm), and compared by cosine = sparse dot product.
Top-k per mention: one sparse product per chunk of mentions (memory stays bounded by ``chunk_bytes`` whatever the
number of names), cut with ``np.argpartition`` over each row's non-zeros (names sharing an n-gram with it).

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
        # Rows per chunk: the sparse product of a chunk holds at most rows x names entries (value + column index).
        chunk = max(1, self.chunk_bytes // (8 * n_names))

        def one_chunk(start: int) -> None:
            product = (queries[start:start + chunk] @ names_t).tocsr()
            indptr, cols, data = product.indptr, product.indices, product.data
            # Top-k among each row's non-zeros only: a name sharing no n-gram (cosine 0) is never a candidate, and
            # not materialising the dense [rows, names] block saves O(names) memory writes and partition work per
            # mention (benchmarks/results/scale.md: before / after).
            for r in range(product.shape[0]):
                a, b = int(indptr[r]), int(indptr[r + 1])
                if a == b:
                    continue
                scores, found = data[a:b], cols[a:b]
                if b - a > k:
                    # Partition the array as it is (negating it first costs a copy and ~3x the time).
                    top = np.argpartition(scores, b - a - k)[b - a - k:]
                    scores, found = scores[top], found[top]
                hit = scores > 0
                n_hit = int(hit.sum())
                out_rows[start + r, :n_hit] = global_rows[found[hit]]
                out_scores[start + r, :n_hit] = scores[hit]

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
