"""Speed of the translation tables of the shipped feature reranker: loading, tokenizing, scoring.

Each step runs the current code and, in the same process and alternating with it, the code it replaced (session
27; kept here as the baseline, nothing else uses it): loading by numpy ``unique`` over the pieces' strings instead
of Arrow dictionary encoding; pieces through transformers' ``tokenizer(...)`` + ``convert_ids_to_tokens`` instead of
the Rust tokenizer's ``encode_batch``; scoring by sampling the unsorted [sources, pairs] CSR product instead of the
sorted one, and with every pair's pieces looked up again instead of once per distinct mention and name (session 28).
Every step checks that both give the same result. Mentions: a seeded sample of Japanese and Chinese HPO labels (../shared/data/hpo-translations) with their 64 candidates from the default index.

    XNORM_HOME=... XNORM_DATA=../shared/data python benchmarks/translation_speed.py --repeats 5
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
RERANKER = "hpo-translate-rerank-e5small"


def baseline_load(path: Path, tokenizer: str):
    """The loader before Arrow dictionary encoding: every column to Python lists, pieces sorted by numpy."""
    import pyarrow.parquet as pq

    from xnorm.rerank.translation import NULL, Table, TranslationModel

    cols = pq.read_table(path).to_pydict()
    lang, direction = np.asarray(cols["lang"], dtype=object), np.asarray(cols["direction"], dtype=object)
    source, target = np.asarray(cols["source"], dtype=object), np.asarray(cols["target"], dtype=object)
    prob = np.asarray(cols["prob"], dtype=np.float64)
    tables = {}
    for key in sorted(set(zip(lang.tolist(), direction.tolist()))):
        rows = np.flatnonzero((lang == key[0]) & (direction == key[1]))
        s_names, s_ids = np.unique(source[rows].astype(str), return_inverse=True)
        t_names, t_ids = np.unique(np.r_[[NULL], target[rows].astype(str)], return_inverse=True)
        order = np.r_[np.flatnonzero(t_names == NULL), np.flatnonzero(t_names != NULL)]
        remap = np.empty(len(order), dtype=np.int64)
        remap[order] = np.arange(len(order))
        matrix = sp.csr_matrix((prob[rows], (s_ids, remap[t_ids[1:]])), shape=(len(s_names), len(t_names)))
        tables[key] = Table(s_names.tolist(), t_names[order].tolist(), matrix)
    return TranslationModel(tables, tokenizer)


def baseline_tokens(model, texts: list[str]) -> list[list[str]]:
    tok = model._tokenizer()
    return [tok.convert_ids_to_tokens(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]


def baseline_mass(matrix, bags, s_ids, s_pair):
    """``explained_mass`` as it was: the product's rows sampled unsorted."""
    return np.asarray((matrix @ bags).tocsr()[s_ids, s_pair]).ravel()


def baseline_piece_ids(docs, vocab, lead=None):
    """``_piece_ids`` as it was: each pair's pieces looked up, however often its mention or name recurs."""
    ids, pair = [], []
    for p, doc in enumerate(docs):
        known = ([vocab[lead]] if lead is not None else []) + [vocab[x] for x in doc if x in vocab]
        ids += known
        pair += [p] * len(known)
    return np.asarray(ids, dtype=np.int64), np.asarray(pair, dtype=np.int64)


def baseline_features(model, mentions, cands, term):
    from xnorm.rerank import translation

    current = translation.explained_mass, translation._piece_ids
    translation.explained_mass, translation._piece_ids = baseline_mass, baseline_piece_ids
    try:
        return model.features(mentions, cands, term)
    finally:
        translation.explained_mass, translation._piece_ids = current


def every_table(model):
    """``model`` with all its tables built (they are built at first use)."""
    for key in model.tables:
        model.tables[key]
    return model


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--mentions", type=int, default=600)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "translation_speed.md")
    args = ap.parse_args(argv)

    import pyarrow.parquet as pq

    from xnorm import zoo
    from xnorm.benchmark.datasets import build_dataset
    from xnorm.linker import Linker
    from xnorm.rerank import load_reranker
    from xnorm.rerank.features import normalise
    from xnorm.rerank.translation import TranslationModel
    from xnorm.types import Mentions

    folder = zoo.reranker_folder(RERANKER)
    ranker = load_reranker(folder)
    model = ranker.translation
    linker = Linker.default()
    options = {"languages": ["ja", "zh"], "split": None, "max_per_language": args.mentions // 2, "seed": 0}
    docs = build_dataset("hpo-labels", options).documents
    texts, langs = [], []
    for d in docs:
        for e in d["entities"]:
            texts.append(" ".join(e["text"]))
            langs.append(d["lang"])
    mentions = Mentions(texts=np.asarray(texts, dtype=object), langs=np.asarray(langs, dtype=object))
    cands = linker.index.candidates(mentions, k=args.k)
    term = linker.terminology
    names = sorted({n for c in np.unique(cands.concepts[cands.concepts >= 0]).tolist()
                    for n in model._pivot_names(term)(int(c))})
    norm = [normalise(n) for n in names]

    steps = {
        "load tables": (lambda: baseline_load(folder / "translation.parquet", model.tokenizer),
                        lambda: every_table(TranslationModel.from_arrow(pq.read_table(folder / "translation.parquet"),
                                                                        model.tokenizer))),
        "tokenize candidate names": (lambda: baseline_tokens(model, norm), lambda: model._tokens(norm)),
        "score (features)": (lambda: baseline_features(model, mentions, cands, term),
                             lambda: model.features(mentions, cands, term)),
    }
    times: dict[str, dict[str, list[float]]] = {s: {"baseline": [], "current": []} for s in steps}
    model.pieces(names, cache=True)  # scoring is timed with the names' pieces cached (as in a run, after batch 1)
    for _ in range(args.repeats):
        for step, (base, cur) in steps.items():
            t_base, out_base = timed(base)
            t_cur, out_cur = timed(cur)
            times[step]["baseline"].append(t_base)
            times[step]["current"].append(t_cur)
            _check_same(step, out_base, out_cur)
        print({s: {m: round(v[-1], 3) for m, v in t.items()} for s, t in times.items()}, flush=True)

    med = {s: {m: statistics.median(v) for m, v in t.items()} for s, t in times.items()}
    entries = sum(t.matrix.nnz for t in model.tables.values())
    rows = [f"| {s} | {m['baseline']:.3f} | {m['current']:.3f} | {m['baseline'] / m['current']:.2f}x |"
            for s, m in med.items()]
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    text = "\n".join([
        "# Translation tables: load, tokenize, score (benchmarks/translation_speed.py)", "",
        f"Machine: {platform.machine()}, {len(__import__('os').sched_getaffinity(0))} visible CPUs, no GPU; {stamp}.",
        f"Reranker `{RERANKER}` ({entries:,} table entries, {len(model.tables)} tables); {len(texts)} Japanese and "
        f"Chinese HPO labels (seed 0), {args.k} candidates each from the default index, {len(names):,} distinct "
        f"English names among them. Medians of {args.repeats} alternating repeats, seconds; every step checked to "
        "give the baseline's result.", "",
        "| step | baseline (before) | current | speed-up |", "|---|---|---|---|", *rows, "",
        "- load tables: `TranslationModel.from_arrow` (Arrow `dictionary_encode` / `group_by`) vs numpy `unique` over "
        "the pieces' strings after `to_pydict()`.",
        "- tokenize: the Rust tokenizer's `encode_batch` (unknown pieces mapped to `<unk>`) vs transformers' "
        "`tokenizer(...)` + `convert_ids_to_tokens`.",
        "- score: `explained_mass` sampling the [sources, pairs] product with sorted rows (binary search) vs "
        "unsorted rows (scipy scans them), pieces mapped to table ids once per distinct mention and name vs once "
        "per pair; names' pieces cached in both.",
        "",
        f"Command: `python benchmarks/translation_speed.py --repeats {args.repeats} --mentions {args.mentions} "
        f"--k {args.k}`.", ""])
    args.output.write_text(text)
    args.output.with_suffix(".json").write_text(json.dumps({"medians_s": med, "runs_s": times, "mentions": len(texts),
                                                            "k": args.k, "names": len(names), "entries": entries},
                                                           indent=2))
    print(text)


def _check_same(step: str, a, b) -> None:
    if step == "load tables":
        assert a.tables.keys() == b.tables.keys()
        for key in a.tables:
            ea = dict(zip(zip(*a.tables[key].rows()[:2]), a.tables[key].rows()[2]))
            eb = dict(zip(zip(*b.tables[key].rows()[:2]), b.tables[key].rows()[2]))
            assert ea.keys() == eb.keys() and all(abs(ea[k] - eb[k]) < 1e-9 for k in ea), key
    elif step == "tokenize candidate names":
        assert a == b
    else:
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


if __name__ == "__main__":
    main()
