"""Candidate generation at scale: index build time, mentions/s at k=64, peak RSS and index size on disk.

Sizes: ~40k names (the built-in English HPO, ``hpo-en``), ~143k (``hpo-multilingual``: HPO + every translation in
``XNORM_HPO_TRANSLATIONS``) and 1M (the 143k real names plus SCALE-ONLY SYNTHETIC variants of them: seeded
character edits and word-order swaps, made to measure speed and memory, not quality). All names of a size go into
one index (languages merged), so every mention is searched against every name.

Sparse: xnorm's ``SparseGenerator`` (char_wb 2-4-gram TF-IDF; the default config: exhaustive top-k below
``prune_min_names`` names per language, the two-stage search above) through its API (``candidates``: search, concept
dedup, packing). Its index is built (fit + save) in one process and searched in fresh processes that load it, so
build and query peak RSS are measured apart; in the same run the exhaustive search (``prune_df: null``) gives the
CPU ratio and the tie-aware recall@64 vs exact, and below ``prune_min_names`` the two stages are also run forced on.
Baselines: scispaCy's candidate generator (its TF-IDF settings: char_wb 3-grams, min_df 10,
plus nmslib HNSW over sparse cosine; scispaCy's own ``create_tfidf_ann_index`` needs scipy<1.11, so its building
blocks are called directly) and an exact baseline (one scipy sparse product per 1,000 mentions, per-row top-k over
the product's non-zeros). Dense: FAISS ``IndexFlatIP`` alone vs xnorm's ``DenseGenerator.search`` over the same
index and precomputed vectors (random unit vectors of dimension 384: throughput of an exact search does not
depend on the values).

Each (size, method) runs in its own subprocess so that peak RSS (``VmHWM``) is its own. Wall seconds depend
on the neighbours of a shared machine; CPU seconds (user + system of the subprocess) are reported beside them.

    XNORM_HPO_TRANSLATIONS=/work/shared/data/hpo-translations python benchmarks/scale.py
    python benchmarks/scale.py --sizes 40k --methods xnorm-sparse exact-sparse --output /tmp/scale.md
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIZES = ("40k", "143k", "1M")
METHODS = ("xnorm-sparse", "exact-sparse", "scispacy-nmslib", "faiss-flat", "xnorm-dense")
TARGET_1M = 1_000_000
K = 64


# -- data (prepared once by the parent, read by every worker) --------------------------------------------------


def synthetic_variant(text: str, rng: np.random.Generator) -> str:
    """One scale-only variant of a real name: a word-order swap, or a character swap / deletion / duplication."""
    words = text.split()
    op = int(rng.integers(4))
    if op == 0 and len(words) > 1:
        i = int(rng.integers(len(words) - 1))
        words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words)
    if len(text) < 3:
        return text + text[-1:]
    i = int(rng.integers(len(text) - 1))
    if op in (0, 1):
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    if op == 2:
        return text[:i] + text[i + 1:]
    return text[:i] + text[i] + text[i:]


def prepare(work: Path, sizes: list[str], n_mentions: dict[str, int]) -> dict:
    """Write names-<size>.parquet (concept, text, lang, synthetic) and mentions-<size>.parquet (text, concept)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from xnorm.terminology import load_terminology

    info = {}
    real: dict[str, tuple[list, list, list]] = {}
    for size in sizes:
        out = work / f"names-{size}.parquet"
        base = "hpo-en" if size == "40k" else "hpo-multilingual"
        if base not in real:
            term = load_terminology(base)
            real[base] = ([str(term.concept_ids[c]) for c in term.name_concepts.tolist()],
                          [str(t) for t in term.name_texts.tolist()], [str(x) for x in term.name_langs.tolist()])
        concepts, texts, langs = (list(x) for x in real[base])
        synthetic = [False] * len(texts)
        if size == "1M":
            rng = np.random.default_rng(0)
            seen = set(zip(concepts, texts))
            n_real = len(texts)
            while len(texts) < TARGET_1M:
                i = int(rng.integers(n_real))
                variant = synthetic_variant(texts[i], rng)
                if (concepts[i], variant) not in seen:
                    seen.add((concepts[i], variant))
                    concepts.append(concepts[i])
                    texts.append(variant)
                    langs.append(langs[i])
                    synthetic.append(True)
        if not out.is_file():
            pq.write_table(pa.table({"concept": concepts, "text": texts, "lang": langs, "synthetic": synthetic}), out)
        # Mentions: real names (never synthetic ones) with one seeded character edit, gold = their concept.
        rng = np.random.default_rng(1)
        n_real = len(real[base][1])
        pick = rng.choice(n_real, size=n_mentions[size], replace=n_mentions[size] > n_real)
        m_texts = [synthetic_variant(texts[i], rng) for i in pick.tolist()]
        pq.write_table(pa.table({"text": m_texts, "concept": [concepts[i] for i in pick.tolist()]}),
                       work / f"mentions-{size}.parquet")
        info[size] = {"names": len(texts), "synthetic": int(sum(synthetic)), "concepts": len(set(concepts)),
                      "source": base, "languages": len(set(langs))}
        print(f"prepared {size}: {info[size]}", file=sys.stderr, flush=True)
    return info


def _read(work: Path, size: str) -> tuple[dict, dict]:
    import pyarrow.parquet as pq

    names = pq.read_table(work / f"names-{size}.parquet").to_pydict()
    mentions = pq.read_table(work / f"mentions-{size}.parquet").to_pydict()
    return names, mentions


def _terminology(names: dict):
    """One index of all names: every name tagged with one language so each mention meets all of them."""
    from xnorm.terminology.core import Terminology

    ids, concept_rows = np.unique(np.asarray(names["concept"], dtype=object), return_inverse=True)
    n = len(names["text"])
    first = np.full(len(ids), -1, np.int64)
    first[concept_rows[::-1]] = np.arange(n)[::-1]
    texts = np.asarray(names["text"], dtype=object)
    return Terminology(
        concept_ids=ids, preferred_names=texts[first], semantic_types=np.full(len(ids), "", dtype=object),
        concept_sources=np.full(len(ids), "scale", dtype=object), name_texts=texts,
        name_concepts=concept_rows.astype(np.int32), name_langs=np.full(n, "en", dtype=object),
        name_types=np.full(n, "exact", dtype=object), name_provenance=np.full(n, "scale", dtype=object))


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _recall(found_concepts: np.ndarray, gold: np.ndarray) -> float:
    """Share of mentions whose gold concept is among their row of concept ids (sanity check, not a quality claim)."""
    return float((found_concepts == gold[:, None]).any(1).mean())


# -- workers ---------------------------------------------------------------------------------------------------


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")




def run_xnorm_sparse(work: Path, size: str, threads: int) -> dict:
    """Build (fit + save) here; search in fresh subprocesses that load the saved index (a query process's own
    peak RSS): the default config, the exhaustive search (prune_df None: CPU ratio and recall@64 vs exact) and,
    below prune_min_names, the two-stage search forced on."""
    from xnorm.eval.ranking import tie_aware_overlap

    import shutil

    from xnorm.candidates.config import normalize_config
    from xnorm.candidates.sparse import SparseGenerator

    names, mentions = _read(work, size)
    term = _terminology(names)
    del names
    base_rss = _rss_mb()
    cfg = normalize_config({"generators": [{"type": "sparse", "ngram_range": [2, 4], "threads": threads}]})
    cfg = cfg["generators"][0]
    t0, c0 = time.perf_counter(), time.process_time()
    gen = SparseGenerator.from_config(cfg).fit(term)
    d = Path(tempfile.mkdtemp(dir=work))
    gen.save(d)
    build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    build_peak = peak_rss_mb()
    disk = _dir_size(d)
    detail = f"{len(gen.vocabulary):,} n-grams, {sum(m.nnz for m in gen._lang_matrices.values()):,} non-zeros"
    del gen
    runs = {}
    for variant in ("default", "exhaustive", "forced"):
        cmd = [sys.executable, __file__, "--worker", "xnorm-sparse-query", "--size", size, "--work", str(work),
               "--threads", str(threads), "--index", str(d), "--variant", variant]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            raise RuntimeError(f"query worker {variant} failed: {proc.stderr[-2000:]}")
        runs[variant] = json.loads(line[len("RESULT "):])
        if variant == "exhaustive" and runs["default"]["two_stage"]:
            break  # "forced" is the default already
    shutil.rmtree(d, ignore_errors=True)

    from xnorm.types import Candidates

    def cands(variant: str) -> Candidates:
        z = np.load(work / f"cands-{size}-{variant}.npz", allow_pickle=False)
        c = Candidates.empty(z["concepts"].shape[0], z["concepts"].shape[1])
        c.concepts[:], c.scores[:] = z["concepts"], z["scores"]
        return c

    ref = cands("exhaustive")
    for variant in runs:
        if variant != "exhaustive":
            runs[variant]["recall@64_vs_exact"] = tie_aware_overlap(cands(variant), ref)
    default = runs["default"]
    concept_of = {str(c): i for i, c in enumerate(term.concept_ids.tolist())}
    gold = np.array([concept_of[c] for c in mentions["concept"]])
    ex = runs["exhaustive"]
    notes = [detail, "two-stage search" if default["two_stage"] else "exhaustive search (below prune_min_names)",
             f"exhaustive same run {ex['query_s']:.1f} s ({ex['query_cpu_s']:.1f} CPU s; this/exhaustive "
             f"{default['query_cpu_s'] / ex['query_cpu_s']:.2f}x CPU)"]
    if default["two_stage"]:
        notes.append(f"recall@64 vs exhaustive {default['recall@64_vs_exact']:.4f} (tie-aware)")
    else:
        fo = runs["forced"]
        notes.append(f"two-stage forced: {fo['query_cpu_s']:.1f} CPU s, recall@64 vs exhaustive "
                     f"{fo['recall@64_vs_exact']:.4f} (tie-aware)")
    notes.append(f"peak RSS build {build_peak:,.0f} MB (data + harness before fit {base_rss:,.0f} MB), query "
                 f"process {default['peak_rss_mb']:,.0f} MB (load + search; exhaustive {ex['peak_rss_mb']:,.0f}): "
                 f"harness data {default['rss_data_mb']:,.0f} MB, + index loaded {default['rss_loaded_mb']:,.0f} MB "
                 f"(peak while loading {default['peak_after_load_mb']:,.0f}), search adds "
                 f"{default['peak_rss_mb'] - default['rss_loaded_mb']:,.0f} MB at its peak")
    return {"build_s": build_s, "build_cpu_s": build_cpu, "query_s": default["query_s"],
            "query_cpu_s": default["query_cpu_s"], "n_queries": default["n_queries"], "disk_bytes": disk,
            "base_rss_mb": base_rss, "build_peak_rss_mb": build_peak, "query_peak_rss_mb": default["peak_rss_mb"],
            "runs": runs, "two_stage": default["two_stage"], "prune_df": cfg["prune_df"],
            "prune_rescore": cfg["prune_rescore"], "recall@64": _recall(cands("default").concepts, gold),
            "recall@64_vs_exact": default.get("recall@64_vs_exact", 1.0), "detail": "; ".join(notes),
            "peak_rss_override_mb": max(build_peak, default["peak_rss_mb"])}


def run_sparse_query(work: Path, size: str, threads: int, index: Path, variant: str) -> dict:
    """Load a saved sparse index and search the mentions of ``size`` (variant: default, exhaustive, forced)."""
    from xnorm.candidates.config import normalize_config
    from xnorm.candidates.sparse import SparseGenerator
    from xnorm.types import Mentions

    names, mentions = _read(work, size)
    term = _terminology(names)
    del names
    data_rss = rss_mb()
    over = {"default": {}, "exhaustive": {"prune_df": None}, "forced": {"prune_min_names": 0}}[variant]
    cfg = normalize_config({"generators": [{"type": "sparse", "ngram_range": [2, 4], "threads": threads, **over}]})
    gen = SparseGenerator.load(index, cfg["generators"][0], term)
    batch = Mentions.from_texts(mentions["text"], lang="en")
    gen.transform(["warm-up"])  # the query vectorizer's one-time vocabulary check is setup, not search
    loaded_rss, load_peak = rss_mb(), peak_rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    cands = gen.candidates(batch, k=K)
    query_s, query_cpu = time.perf_counter() - t0, time.process_time() - c0
    np.savez(work / f"cands-{size}-{variant}.npz", concepts=cands.concepts, scores=cands.scores)
    # Stages of the process's memory: harness data (names -> terminology, mentions), + the loaded index, peak.
    return {"query_s": query_s, "query_cpu_s": query_cpu, "n_queries": len(batch), "two_stage": bool(gen._prune),
            "rss_data_mb": data_rss, "rss_loaded_mb": loaded_rss, "peak_after_load_mb": load_peak}


def run_exact_sparse(work: Path, size: str, threads: int) -> dict:
    """The straightforward exact search: same TF-IDF, one scipy product per 1,000 mentions, top-k per row of the
    sparse product (no dedup by concept: names, not concepts, as a plain nearest-neighbour baseline would)."""
    from xnorm.candidates.sparse import SparseGenerator

    names, mentions = _read(work, size)
    term = _terminology(names)
    t0, c0 = time.perf_counter(), time.process_time()
    gen = SparseGenerator(ngram_range=(2, 4)).fit(term)
    matrix_t = gen.matrix.T.tocsr()
    build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    q = gen.transform(mentions["text"])
    top = np.full((q.shape[0], K), -1, np.int64)
    for s in range(0, q.shape[0], 1000):
        prod = (q[s:s + 1000] @ matrix_t).tocsr()
        for r in range(prod.shape[0]):
            a, b = prod.indptr[r], prod.indptr[r + 1]
            data, cols = prod.data[a:b], prod.indices[a:b]
            if len(data) > K:
                sel = np.argpartition(data, len(data) - K)[len(data) - K:]
                data, cols = data[sel], cols[sel]
            order = np.argsort(-data, kind="stable")
            top[s + r, :len(order)] = cols[order]
    query_s, query_cpu = time.perf_counter() - t0, time.process_time() - c0
    found = np.where(top >= 0, term.name_concepts[np.maximum(top, 0)], -1)
    concept_of = {str(c): i for i, c in enumerate(term.concept_ids.tolist())}
    gold = np.array([concept_of[c] for c in mentions["concept"]])
    return {"build_s": build_s, "build_cpu_s": build_cpu, "query_s": query_s, "query_cpu_s": query_cpu,
            "n_queries": q.shape[0], "disk_bytes": None, "recall@64": _recall(found, gold),
            "detail": "names (not concepts) top-64, one thread"}


def run_scispacy(work: Path, size: str, threads: int, m: int, ef_construction: int, ef_search: int) -> dict:
    import nmslib
    from sklearn.feature_extraction.text import TfidfVectorizer

    names, mentions = _read(work, size)
    texts = names["text"]
    t0, c0 = time.perf_counter(), time.process_time()
    # scispaCy's settings (candidate_generation.create_tfidf_ann_index), HNSW parameters scaled down (see report).
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3), min_df=10, dtype=np.float32)
    tfidf = vec.fit_transform(texts)
    keep = np.flatnonzero(np.asarray(tfidf.sum(axis=1)).ravel() != 0)  # nmslib crashes on empty vectors
    tfidf = tfidf[keep]
    index = nmslib.init(method="hnsw", space="cosinesimil_sparse", data_type=nmslib.DataType.SPARSE_VECTOR)
    index.addDataPointBatch(tfidf)
    index.createIndex({"M": m, "indexThreadQty": threads, "efConstruction": ef_construction, "post": 0},
                      print_progress=False)
    build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    with tempfile.TemporaryDirectory(dir=work) as d:
        index.saveIndex(str(Path(d) / "ann"), save_data=True)
        disk = _dir_size(Path(d))
    index.setQueryTimeParams({"efSearch": ef_search})
    t0, c0 = time.perf_counter(), time.process_time()
    q = vec.transform(mentions["text"])
    nonempty = np.flatnonzero(np.asarray(q.sum(axis=1)).ravel() != 0)
    results = index.knnQueryBatch(q[nonempty], k=K, num_threads=threads)
    query_s, query_cpu = time.perf_counter() - t0, time.process_time() - c0
    concept_rows = np.unique(np.asarray(names["concept"], dtype=object), return_inverse=True)[1]
    found = np.full((q.shape[0], K), -1, np.int64)
    for row, (ids, _) in zip(nonempty.tolist(), results):
        found[row, :len(ids)] = concept_rows[keep[ids]]
    ids_sorted = np.unique(np.asarray(names["concept"], dtype=object))
    gold = np.searchsorted(ids_sorted, np.asarray(mentions["concept"], dtype=object))
    return {"build_s": build_s, "build_cpu_s": build_cpu, "query_s": query_s, "query_cpu_s": query_cpu,
            "n_queries": q.shape[0], "disk_bytes": disk, "recall@64": _recall(found, gold),
            "detail": f"HNSW M={m}, efConstruction={ef_construction}, efSearch={ef_search}; "
                      f"{len(vec.vocabulary_):,} 3-grams"}


def _random_unit(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, 100_000):  # chunked: no float64 temporary of the whole matrix
        block = rng.standard_normal((min(100_000, n - s), dim), dtype=np.float32)
        out[s:s + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def run_dense(work: Path, size: str, threads: int, n_queries: int, through_xnorm: bool) -> dict:
    import faiss

    faiss.omp_set_num_threads(threads)
    names, _ = _read(work, size)
    n = len(names["text"])
    vectors = _random_unit(n, 384, 0)
    queries = _random_unit(n_queries, 384, 1)
    t0, c0 = time.perf_counter(), time.process_time()
    index = faiss.IndexFlatIP(384)
    index.add(vectors)
    del vectors
    build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    if through_xnorm:
        from xnorm.candidates.dense import DenseGenerator

        gen = DenseGenerator(encoder=None)
        gen._set_languages(_terminology(names))
        gen.indexes = {"en": index}
        t0, c0 = time.perf_counter(), time.process_time()  # the terminology above is setup, not search
        rows, scores = gen.search(queries, "en", K)
        detail = "DenseGenerator.search (search_batch 4096): global name rows + -inf padding"
    else:
        scores, rows = index.search(queries, K)
        detail = "faiss IndexFlatIP.search, one call"
    query_s, query_cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"build_s": build_s, "build_cpu_s": build_cpu, "query_s": query_s, "query_cpu_s": query_cpu,
            "n_queries": n_queries, "disk_bytes": n * 384 * 4 + 45, "recall@64": None,
            "detail": detail + "; random unit vectors (dim 384)"}


def _proc_status_mb(key: str) -> float | None:
    """A memory field of /proc/self/status (e.g. ``VmRSS``) in MB; None where there is none (not Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """Current RSS of this process (Linux VmRSS; 0 elsewhere)."""
    return _proc_status_mb("VmRSS") or 0.0


def peak_rss_mb() -> float:
    """Peak RSS of this process. Linux: VmHWM, which starts afresh at exec; ru_maxrss does not (a child started
    by a large parent reports at least the parent's peak at fork time)."""
    peak = _proc_status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args: argparse.Namespace) -> int:
    method, size, work = args.worker, args.size, args.work
    if method == "xnorm-sparse":
        res = run_xnorm_sparse(work, size, args.threads)
    elif method == "xnorm-sparse-query":
        res = run_sparse_query(work, size, args.threads, args.index, args.variant)
    elif method == "exact-sparse":
        res = run_exact_sparse(work, size, args.threads)
    elif method == "scispacy-nmslib":
        res = run_scispacy(work, size, args.threads, args.hnsw_m, args.hnsw_ef_construction, args.hnsw_ef_search)
    elif method in ("faiss-flat", "xnorm-dense"):
        res = run_dense(work, size, args.threads, args.dense_queries, method == "xnorm-dense")
    else:
        raise SystemExit(f"unknown method {method}")
    res.update(method=method, size=size, peak_rss_mb=res.pop("peak_rss_override_mb", None) or peak_rss_mb())
    print("RESULT " + json.dumps(res), flush=True)
    return 0


# -- parent ----------------------------------------------------------------------------------------------------


def _fmt_bytes(n: int | None) -> str:
    return "–" if n is None else f"{n / 2**20:,.0f} MB"


def table_lines(info: dict, results: list[dict]) -> list[str]:
    """The Markdown table of a run's results (also used to merge the results of several runs)."""
    header = ("size (names)", "method", "build s (CPU s)", "queries", "query s (CPU s)", "mentions/s",
              "mentions per CPU s", "peak RSS", "on disk", "recall@64", "notes")
    rows = []
    for r in results:
        label = f"{r['size']} ({info[r['size']]['names']:,})"
        if "skipped" in r:
            rows.append((label, r["method"], *["–"] * 8, r["skipped"]))
            continue
        rows.append((label, r["method"], f"{r['build_s']:.1f} ({r['build_cpu_s']:.1f})", f"{r['n_queries']:,}",
                     f"{r['query_s']:.1f} ({r['query_cpu_s']:.1f})", f"{r['n_queries'] / r['query_s']:,.0f}",
                     f"{r['n_queries'] / max(r['query_cpu_s'], 1e-9):,.0f}", f"{r['peak_rss_mb']:,.0f} MB", _fmt_bytes(r["disk_bytes"]),
                     "–" if r["recall@64"] is None else f"{r['recall@64']:.3f}", r["detail"]))
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="*", default=list(SIZES), choices=SIZES)
    ap.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    ap.add_argument("--mentions", type=int, default=10_000)
    ap.add_argument("--mentions-1m", type=int, default=None, help="mentions at 1M names (default: --mentions)")
    ap.add_argument("--dense-queries", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hnsw-m", type=int, default=16)
    ap.add_argument("--hnsw-ef-construction", type=int, default=100)
    ap.add_argument("--hnsw-ef-search", type=int, default=200)
    ap.add_argument("--skip", nargs="*", default=[], help="size:method pairs not to run (e.g. 1M:scispacy-nmslib)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per subprocess")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "xnorm-scale")
    ap.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "scale.md")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--size", help=argparse.SUPPRESS)
    ap.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    cli_args = argv if argv is not None else sys.argv[1:]

    from xnorm._io import atomic_write

    args.work.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = os.getloadavg()
    n_mentions = {s: args.mentions for s in args.sizes}
    if args.mentions_1m is not None and "1M" in n_mentions:
        n_mentions["1M"] = args.mentions_1m
    info = prepare(args.work, args.sizes, n_mentions)
    results = []
    for size in args.sizes:
        for method in args.methods:
            if f"{size}:{method}" in args.skip:
                results.append({"size": size, "method": method, "skipped": "skipped (--skip)"})
                continue
            cmd = [sys.executable, __file__, "--worker", method, "--size", size, "--work", str(args.work),
                   "--threads", str(args.threads), "--dense-queries", str(args.dense_queries),
                   "--hnsw-m", str(args.hnsw_m), "--hnsw-ef-construction", str(args.hnsw_ef_construction),
                   "--hnsw-ef-search", str(args.hnsw_ef_search)]
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                results.append({"size": size, "method": method, "skipped": f"timed out after {args.timeout} s"})
                print(f"{size} {method}: timed out", file=sys.stderr, flush=True)
                continue
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                tail = (proc.stderr.strip().splitlines() or ["?"])[-1][:200]
                results.append({"size": size, "method": method, "skipped": f"failed: {tail}"})
                print(f"{size} {method}: failed: {proc.stderr[-2000:]}", file=sys.stderr, flush=True)
                continue
            res = json.loads(line[len("RESULT "):])
            res["wall_total_s"] = time.perf_counter() - t0
            results.append(res)
            print(f"{size} {method}: {res}", file=sys.stderr, flush=True)
            with atomic_write(args.output.with_suffix(".json")) as f:  # partial results survive a stop
                json.dump({"info": info, "results": results}, f, indent=1)
    load_after = os.getloadavg()

    lines = [
        "# Candidate generation at scale",
        "",
        f"- date: {started}; machine: {os.cpu_count()} logical CPUs, {args.threads} threads per method",
        f"- command: `python benchmarks/scale.py{''.join(' ' + a for a in cli_args)}`",
        f"- machine load (1-min load average) before / after: {load_before[0]:.1f} / {load_after[0]:.1f} — the "
        "cores were shared with other jobs: wall seconds are inflated by them, CPU seconds (user + system of the "
        "method's own subprocess) much less so",
        "- sizes: " + "; ".join(f"{s}: {v['names']:,} names of {v['concepts']:,} concepts ({v['source']}, "
                                f"{v['languages']} languages" + (f", {v['synthetic']:,} SYNTHETIC scale-only variants"
                                                                 if v['synthetic'] else "") + ")"
                                for s, v in info.items()),
        f"- queries: {', '.join(f'{n:,} at {s}' for s, n in n_mentions.items())} mentions = real names of that size with one seeded character edit "
        "or word swap (gold = their concept; recall@64 is a sanity check that a method works, not a quality "
        "benchmark); dense rows search random unit vectors",
        "",
        *table_lines(info, results),
        "",
    ]
    with atomic_write(args.output) as f:
        f.write("\n".join(lines))
    with atomic_write(args.output.with_suffix(".json")) as f:
        json.dump({"info": info, "results": results}, f, indent=1)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
