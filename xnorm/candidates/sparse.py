"""Character n-gram TF-IDF candidates with exact sparse top-k (no nmslib: it fails to build for many users).

Names and mentions are normalised (Unicode NFKC + casefold, accents optionally stripped), vectorised with one
shared character n-gram vocabulary (sublinear tf, idf, L2 norm), and compared by cosine = sparse dot product.
Top-k per mention: one sparse product per chunk of mentions (memory stays bounded by ``chunk_bytes`` whatever the
number of names), cut with ``np.argpartition`` over each row's non-zeros (names sharing an n-gram with it).

Large indexes (``prune_min_names`` names or more in one language) use a two-stage, near-exact search, because the
exact product's cost is dominated by a few very common n-grams ("e ", " a", "ti") whose postings cover a large share
of all names: (a) a sparse product over the query's n-grams found in at most ``prune_df`` names (plus its
``PRUNE_KEEP`` rarest n-grams, so that short mentions made of common n-grams still find names) selects the
``prune_rescore x k`` best names by partial score; (b) those names get their exact cosine (the common n-grams' weights
looked up in their postings, one dense scatter per n-gram and block of mentions); (c) top-k by exact score.
Candidates are exact cosines; what can differ from the exhaustive search is which names reach stage (b)
(benchmarks/results/scale.md: recall vs the exact search). Smaller indexes keep the exhaustive search.

One copy of the name vectors is held: per name language, the transposed matrix [n-grams, names] (the postings).

The fitted vectorizer is stored without pickle: vocabulary as JSON, idf as ``.npy``, and the postings as they are
searched, one ``scipy.sparse.save_npz`` file per name language (``postings.json`` lists them; read back with
``allow_pickle=False``), so loading holds one copy (the older single ``names.npz`` [names, n-grams] still loads).
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


# Stage (a) ranks names by partial score + HEAD_GUESS x |query's pruned part| x |name's common-n-gram part|: the
# pruned n-grams' contribution is unknown until stage (b); half of its Cauchy-Schwarz bound is a better guess than 0
# (recall@64 vs exact at 1M names: 0.93 -> 0.96 with HEAD_GUESS 0.5 at prune_df 10k; 1.0 ranks by the bound, 0.92).
HEAD_GUESS = 0.5
# Every query keeps at least its PRUNE_KEEP rarest n-grams in stage (a), even common ones ("ab", "eye").
PRUNE_KEEP = 2
PRUNE_MIN_POSTINGS = 4
# Stage (b) looks up pruned n-grams for a block of this many mentions at once (one scatter per n-gram and block);
# a block's arrays are [block, prune_rescore x k]: 1024 keeps them ~150 MB per thread at k=256 (2048: 1M-name
# query peak RSS 2.2 GB, 1024: see scale.md).
RESCORE_BLOCK = 1024
POSTINGS = "postings.json"


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
                 chunk_bytes: int = 256 << 20, names_per_concept: int = 4, threads: int | None = None,
                 prune_df: int | None = 10_000, prune_min_names: int = 200_000, prune_rescore: int = 16) -> None:
        super().__init__(name, names_per_concept)
        self.analyzer = analyzer
        self.ngram_range = (int(ngram_range[0]), int(ngram_range[1]))
        self.strip_accents = strip_accents
        self.min_df = min_df
        self.max_features = max_features
        self.chunk_bytes = chunk_bytes
        self.threads = threads  # None: one per CPU
        self.prune_df = prune_df  # None: always the exhaustive search
        self.prune_min_names = prune_min_names
        self.prune_rescore = prune_rescore
        self.vocabulary: dict[str, int] = {}
        self.idf: np.ndarray = np.zeros(0, np.float32)
        # The only copy of the name vectors: name language -> [vocabulary, its names] (rows = postings, sorted).
        self._lang_matrices: dict[str, sp.csr_matrix] = {}
        # Languages searched in two stages -> (document frequency per n-gram, norm of each name's common part).
        self._prune: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._counter = None

    @classmethod
    def from_config(cls, cfg: dict) -> "SparseGenerator":
        return cls(name=cfg["name"], analyzer=cfg["analyzer"], ngram_range=cfg["ngram_range"],
                   strip_accents=cfg["strip_accents"], min_df=cfg["min_df"], max_features=cfg["max_features"],
                   chunk_bytes=cfg["chunk_bytes"], names_per_concept=cfg.get("names_per_concept", 4),
                   threads=cfg.get("threads"), prune_df=cfg.get("prune_df", 10_000),
                   prune_min_names=cfg.get("prune_min_names", 200_000), prune_rescore=cfg.get("prune_rescore", 16))

    def config(self) -> dict:
        return {"type": self.type, "name": self.name, "analyzer": self.analyzer,
                "ngram_range": list(self.ngram_range), "strip_accents": self.strip_accents, "min_df": self.min_df,
                "max_features": self.max_features, "chunk_bytes": self.chunk_bytes,
                "names_per_concept": self.names_per_concept, "threads": self.threads, "prune_df": self.prune_df,
                "prune_min_names": self.prune_min_names, "prune_rescore": self.prune_rescore}

    # ---- fitting and vectorising -------------------------------------------------------------------------
    def _normalize(self, texts: Sequence[str]) -> list[str]:
        return [normalize_text(str(t), self.strip_accents) for t in texts]

    def fit(self, terminology: Terminology, show_progress: bool = False) -> "SparseGenerator":
        texts = self._normalize(terminology.name_texts)
        if self.max_features is None:
            matrix, self.vocabulary, self.idf = self._fit_lean(texts)
        else:
            # max_features keeps scikit-learn's own choice of n-grams (its tie order included).
            from sklearn.feature_extraction.text import TfidfVectorizer

            vec = TfidfVectorizer(analyzer=self.analyzer, ngram_range=self.ngram_range, lowercase=False,
                                  sublinear_tf=True, min_df=self.min_df, max_features=self.max_features,
                                  dtype=np.float32)
            matrix = vec.fit_transform(texts).tocsr().astype(np.float32, copy=False)
            self.idf = vec.idf_.astype(np.float32)
            self.vocabulary = {str(t): int(i) for t, i in vec.vocabulary_.items()}
            del vec
        del texts
        self._set_matrix(terminology, matrix)
        return self

    def _fit_lean(self, texts: list[str]) -> tuple[sp.csr_matrix, dict[str, int], np.ndarray]:
        """TfidfVectorizer's numbers (sorted vocabulary, min_df, sublinear tf, smooth idf, L2 rows) with one
        int32 + float32 copy of the counts, transformed in place: at 1M names scikit-learn's fit_transform peaks
        at ~2.4 GB over its input (int64 indices and several copies), this at ~1.1 GB."""
        from array import array

        from sklearn.feature_extraction.text import CountVectorizer

        analyze = CountVectorizer(analyzer=self.analyzer, ngram_range=self.ngram_range,
                                  lowercase=False).build_analyzer()
        seen: dict[str, int] = {}
        idx_buf, count_buf, ptr_buf = array("i"), array("i"), array("q", [0])
        for doc in texts:
            feats: dict[int, int] = {}
            for gram in analyze(doc):
                j = seen.setdefault(gram, len(seen))
                feats[j] = feats.get(j, 0) + 1
            idx_buf.extend(feats.keys())
            count_buf.extend(feats.values())
            ptr_buf.append(len(idx_buf))
        # numpy views of the buffers (no copy); counts become float32 in place, chunk by chunk.
        indices = np.frombuffer(idx_buf, np.int32)
        indptr = np.frombuffer(ptr_buf, np.int64)
        data = np.frombuffer(count_buf, np.float32)
        counts = np.frombuffer(count_buf, np.int32)
        step = 1 << 22
        for a in range(0, len(data), step):
            data[a:a + step] = counts[a:a + step].astype(np.float32)
        del counts
        n_docs = len(indptr) - 1
        df = np.bincount(indices, minlength=len(seen))
        terms = sorted(t for t, j in seen.items() if df[j] >= self.min_df)
        new_id = np.full(len(seen), -1, np.int32)
        new_id[np.fromiter((seen[t] for t in terms), np.int64, len(terms))] = np.arange(len(terms), dtype=np.int32)
        del seen
        vocabulary = {t: i for i, t in enumerate(terms)}
        del terms
        for a in range(0, len(indices), step):
            indices[a:a + step] = new_id[indices[a:a + step]]
        if self.min_df > 1:
            # Drop the entries of n-grams below min_df (new id -1) and recount the rows' lengths.
            keep = indices >= 0
            rows = np.repeat(np.arange(n_docs), np.diff(indptr))
            indptr = np.r_[0, np.cumsum(np.bincount(rows[keep], minlength=n_docs))]
            indices, data = indices[keep], data[keep]
        df_sorted = np.bincount(indices, minlength=len(vocabulary))
        # Smooth idf and sublinear tf exactly as scikit-learn: idf = ln((1 + n) / (1 + df)) + 1, tf = 1 + ln(count).
        idf = (np.log((1.0 + n_docs) / (1.0 + df_sorted)) + 1.0).astype(np.float32)
        for a in range(0, len(data), step):
            block = data[a:a + step]
            np.log(block, out=block)
            block += 1
            block *= idf[indices[a:a + step]]
        lens = np.diff(indptr)
        rows_step = 1 << 18
        for r in range(0, n_docs, rows_step):
            # Row L2 norms by reduceat over the non-empty rows of a block (empty rows have no entries to scale).
            r_lens = lens[r:r + rows_step]
            a, b = indptr[r], indptr[min(n_docs, r + rows_step)]
            if a == b:
                continue
            starts = indptr[:-1][r:r + rows_step][r_lens > 0] - a
            norms = np.sqrt(np.add.reduceat(np.square(data[a:b]), starts))
            data[a:b] /= np.repeat(norms, r_lens[r_lens > 0])
        matrix = sp.csr_matrix((data, indices, indptr), shape=(n_docs, len(vocabulary)))
        matrix.sort_indices()
        return matrix, vocabulary, idf

    def _set_matrix(self, terminology: Terminology, matrix: sp.csr_matrix) -> None:
        """Keep ``matrix`` [names, vocabulary] as per-language postings only (the caller's copy can be freed)."""
        self._set_languages(terminology)
        if len(self.lang_rows) == 1 and np.array_equal(next(iter(self.lang_rows.values())), np.arange(matrix.shape[0])):
            postings = {next(iter(self.lang_rows)): matrix.T.tocsr()}  # no row selection copy
        else:
            # Transposed per-language blocks, so a query chunk is one sparse product per name language.
            postings = {lang: matrix[rows].T.tocsr() for lang, rows in self.lang_rows.items()}
        self._set_postings(postings)

    def _set_postings(self, postings: dict[str, sp.csr_matrix]) -> None:
        self._lang_matrices = postings
        for names_t in self._lang_matrices.values():
            names_t.sort_indices()  # stage (b) looks names up in postings by position
        self._prune = {lang: self._prune_stats(names_t) for lang, names_t in self._lang_matrices.items()
                       if self._prunes(names_t)}
        self._counter = None

    def _prunes(self, names_t: sp.csr_matrix) -> bool:
        """Two-stage search for this language: large enough, and some n-gram is in more than prune_df names."""
        return (self.prune_df is not None and names_t.shape[1] >= self.prune_min_names
                and bool((np.diff(names_t.indptr) > self.prune_df).any()))

    def _prune_stats(self, names_t: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """Document frequency per n-gram and, per name, the L2 norm of its weights on common n-grams."""
        df = np.diff(names_t.indptr).astype(np.int64)
        common = np.flatnonzero(df > self.prune_df)
        sq = np.zeros(names_t.shape[1], np.float64)
        # Groups of postings (a few million entries each): bounded temporaries, few numpy calls.
        bounds = np.searchsorted(np.cumsum(df[common]), np.arange(0, int(df[common].sum()), 4 << 20), "right")
        for a, b in zip(bounds, list(bounds[1:]) + [len(common)]):
            sel = common[a:b]
            if len(sel) == 0:
                continue
            idx = np.concatenate([names_t.indices[names_t.indptr[t]:names_t.indptr[t + 1]] for t in sel])
            val = np.concatenate([names_t.data[names_t.indptr[t]:names_t.indptr[t + 1]] for t in sel])
            sq += np.bincount(idx, weights=np.square(val, dtype=np.float64), minlength=len(sq))
        return df, np.sqrt(sq).astype(np.float32)

    @property
    def matrix(self) -> sp.csr_matrix | None:
        """The name vectors as one [names, vocabulary] CSR matrix (rows L2-normalised), assembled on demand from
        the per-language postings (a temporary copy: the generator itself keeps only the postings)."""
        if not self._lang_matrices:
            return None
        n_names = sum(len(r) for r in self.lang_rows.values())
        shape = (n_names, len(self.vocabulary))
        if len(self._lang_matrices) == 1:
            lang, names_t = next(iter(self._lang_matrices.items()))
            if np.array_equal(self.lang_rows[lang], np.arange(n_names)):
                return names_t.T.tocsr()
        counts = np.zeros(n_names, np.int64)
        blocks = {}
        for lang, names_t in self._lang_matrices.items():
            blocks[lang] = names_t.T.tocsr()
            counts[self.lang_rows[lang]] = np.diff(blocks[lang].indptr)
        indptr = np.r_[0, np.cumsum(counts)]
        indices = np.empty(indptr[-1], np.int32)
        data = np.empty(indptr[-1], np.float32)
        for lang, block in blocks.items():
            # Each local row's entries go to its global row's slot.
            lens = np.diff(block.indptr)
            dest = np.repeat(indptr[self.lang_rows[lang]] - block.indptr[:-1], lens) + np.arange(block.nnz)
            indices[dest] = block.indices
            data[dest] = block.data
        return sp.csr_matrix((data, indices, indptr), shape=shape)

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
        queries = queries.tocsr()
        if lang in self._prune:
            def one_block(start: int) -> None:
                self._search_pruned(queries[start:start + block], names_t, self._prune[lang], k,
                                    out_rows[start:start + block], out_scores[start:start + block])
            threads = min(self.threads or os.cpu_count() or 1, max(1, m // 64))
            # Blocks large enough to share each common n-gram's scatter in stage (b), one per thread at least.
            block = min(RESCORE_BLOCK, -(-m // threads))
            self._run(one_block, range(0, m, block), threads)
            found = out_rows >= 0
            out_rows[found] = global_rows[out_rows[found]]
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

        self._run(one_chunk, range(0, m, chunk), min(self.threads or os.cpu_count() or 1, -(-m // chunk)))
        return out_rows, out_scores

    @staticmethod
    def _run(fn, starts: range, threads: int) -> None:
        if threads <= 1:
            for start in starts:
                fn(start)
        else:
            # scipy's sparse product and numpy's partition release the GIL: chunks run in parallel threads
            # (each holds one chunk's product, so peak memory is threads x chunk_bytes). Chunks write disjoint rows.
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(fn, starts))

    def _search_pruned(self, queries: sp.csr_matrix, names_t: sp.csr_matrix, stats: tuple[np.ndarray, np.ndarray],
                       k: int, out_rows: np.ndarray, out_scores: np.ndarray) -> None:
        """Two-stage top-k of a block of queries (see the module docstring); writes local name rows + scores."""
        df, common_norm = stats
        n_names = names_t.shape[1]
        b = queries.shape[0]
        n_cand = min(max(self.prune_rescore * k, k), n_names)
        q_rows = np.repeat(np.arange(b), np.diff(queries.indptr))
        q_df = df[queries.indices]
        # Per row, n-grams from the rarest: rank and the postings' length of the rarer ones (exclusive cumsum).
        order = np.lexsort((q_df, q_rows))
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order)) - queries.indptr[q_rows[order]]
        cum = np.cumsum(q_df[order])
        rarer = np.empty(len(order), np.int64)
        rarer[order] = cum - q_df[order] - np.r_[0, cum][queries.indptr[q_rows[order]]]
        # Stage (a) uses the rare n-grams, and common ones (rarest first) until their postings reach
        # PRUNE_MIN_POSTINGS x n_cand names: a query whose rare n-grams match few names (a short or cross-lingual
        # mention) still ranks the names it shares common n-grams with.
        in_product = (q_df <= self.prune_df) | (rank < PRUNE_KEEP) | (rarer < PRUNE_MIN_POSTINGS * n_cand)
        rest_norm = np.sqrt(np.bincount(q_rows[~in_product], weights=np.square(queries.data[~in_product],
                                                                                 dtype=np.float64),
                                        minlength=b)).astype(np.float32)
        kept = sp.csr_matrix((queries.data[in_product], queries.indices[in_product],
                              np.r_[0, np.cumsum(np.bincount(q_rows[in_product], minlength=b))]), shape=queries.shape)

        # (a) partial scores; rows per product chunk from its size bound (sum of the kept postings' lengths).
        cand = np.full((b, n_cand), -1, np.int32)  # local name rows (< 2**31)
        partial = np.full((b, n_cand), -np.inf, np.float32)
        work = np.bincount(q_rows[in_product], weights=q_df[in_product], minlength=b)
        per_row = max(1.0, float(np.minimum(work, n_names).mean()))
        chunk = int(max(1, min(b, self.chunk_bytes // (8 * per_row))))
        for start in range(0, b, chunk):
            product = (kept[start:start + chunk] @ names_t).tocsr()
            indptr, cols, data = product.indptr, product.indices, product.data
            for r in range(product.shape[0]):
                a, e = int(indptr[r]), int(indptr[r + 1])
                if a == e:
                    continue
                sel = np.arange(a, e)
                if e - a > n_cand:
                    # Per row, not for the whole chunk: chunk-wide guess / rank arrays were 2-3 more copies of
                    # the product's size (~130 MB each per thread at 1M names).
                    ranked = data[a:e] + HEAD_GUESS * common_norm[cols[a:e]] * rest_norm[start + r]
                    sel = a + np.argpartition(ranked, e - a - n_cand)[e - a - n_cand:]
                sel.sort()  # ascending name ids, as the postings: stage (b) gathers with fewer cache misses
                cand[start + r, :len(sel)] = cols[sel]
                partial[start + r, :len(sel)] = data[sel]

        # (b) exact scores: add each pruned n-gram's weight, looked up in a dense copy of its postings.
        exact = partial.copy()
        lookup = np.zeros(n_names + 1, np.float32)  # the last slot answers padding (-1 -> n_names), always 0
        cand_idx = np.where(cand >= 0, cand, n_names)
        p_rows, p_cols, p_vals = q_rows[~in_product], queries.indices[~in_product], queries.data[~in_product]
        by_ngram = np.argsort(p_cols, kind="stable")
        p_rows, p_cols, p_vals = p_rows[by_ngram], p_cols[by_ngram], p_vals[by_ngram]
        bounds = np.flatnonzero(np.r_[True, p_cols[1:] != p_cols[:-1], True])
        for a, e in zip(bounds[:-1], bounds[1:]):
            t = p_cols[a]
            lo, hi = names_t.indptr[t], names_t.indptr[t + 1]
            posting = names_t.indices[lo:hi]
            rows = p_rows[a:e]  # distinct: a query holds each n-gram once
            if len(rows) * n_cand * 8 < hi - lo:
                # Few queries of the block hold this n-gram: binary search costs less than a scatter of its postings.
                needles = cand_idx[rows]
                pos = np.minimum(np.searchsorted(posting, needles), hi - lo - 1)
                weight = np.where(posting[pos] == needles, names_t.data[lo + pos], 0)
                exact[rows] += p_vals[a:e, None] * weight
                continue
            lookup[posting] = names_t.data[lo:hi]
            exact[rows] += p_vals[a:e, None] * lookup[cand_idx[rows]]
            lookup[posting] = 0

        # (c) top-k by exact score; only positive cosines are candidates, as in the exhaustive search.
        exact[cand < 0] = -np.inf
        if n_cand > k:
            top = np.argpartition(exact, n_cand - k, axis=1)[:, n_cand - k:]
            cand, exact = np.take_along_axis(cand, top, 1), np.take_along_axis(exact, top, 1)
        hit = exact > 0
        out_rows[:, :] = -1
        out_scores[:, :] = -np.inf
        # Pack each row's hits to its front (order within a row does not matter: callers rank).
        pos = np.cumsum(hit, axis=1) - 1
        r_idx = np.nonzero(hit)[0]
        out_rows[r_idx, pos[hit]] = cand[hit]
        out_scores[r_idx, pos[hit]] = exact[hit]

    # ---- persistence -------------------------------------------------------------------------------------
    def save(self, path: Path) -> list[str]:
        path.mkdir(parents=True, exist_ok=True)
        (path / "vocabulary.json").write_text(json.dumps(self.vocabulary, ensure_ascii=False), encoding="utf-8")
        np.save(path / "idf.npy", self.idf, allow_pickle=False)
        files = {lang: f"postings-{i}.npz" for i, lang in enumerate(self._lang_matrices)}
        for lang, name in files.items():
            sp.save_npz(path / name, self._lang_matrices[lang], compressed=False)
        (path / POSTINGS).write_text(json.dumps({"layout": "n-grams x names, per name language", "files": files},
                                                ensure_ascii=False), encoding="utf-8")
        return ["vocabulary.json", "idf.npy", POSTINGS, *files.values()]

    @classmethod
    def load(cls, path: Path, cfg: dict, terminology: Terminology) -> "SparseGenerator":
        gen = cls.from_config(cfg)
        fix = "rebuild the index with `xnorm index`."
        try:
            gen.vocabulary = json.loads((path / "vocabulary.json").read_text(encoding="utf-8"))
            gen.idf = np.load(path / "idf.npy", allow_pickle=False).astype(np.float32)
            if len(gen.idf) != len(gen.vocabulary):
                raise ArtifactError(f"{len(gen.idf)} idf values for {len(gen.vocabulary)} n-grams.",
                                    file=str(path / "idf.npy"), fix=fix)
            if not (path / POSTINGS).is_file():  # written before postings were saved as searched
                matrix = sp.load_npz(path / "names.npz").tocsr().astype(np.float32, copy=False)
                if matrix.shape != (terminology.n_names, len(gen.vocabulary)):
                    raise ArtifactError(f"sparse matrix shape {matrix.shape} does not match {terminology.n_names} "
                                        f"names x {len(gen.vocabulary)} n-grams.", file=str(path / "names.npz"),
                                        fix=fix)
                gen._set_matrix(terminology, matrix)
                return gen
            files = json.loads((path / POSTINGS).read_text(encoding="utf-8"))["files"]
            gen._set_languages(terminology)
            if set(files) != set(gen.lang_rows):
                raise ArtifactError(f"postings for languages {sorted(files)}, names in {sorted(gen.lang_rows)}.",
                                    file=str(path / POSTINGS), fix=fix)
            postings = {}
            for lang, rows in gen.lang_rows.items():
                names_t = sp.load_npz(path / files[lang]).tocsr().astype(np.float32, copy=False)
                if names_t.shape != (len(gen.vocabulary), len(rows)):
                    raise ArtifactError(f"postings shape {names_t.shape} does not match {len(gen.vocabulary)} "
                                        f"n-grams x {len(rows)} {lang!r} names.", file=str(path / files[lang]),
                                        fix=fix)
                postings[lang] = names_t
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ArtifactError(f"cannot read the sparse index ({e}).", file=str(path), fix=fix) from None
        gen._set_postings(postings)
        return gen
