"""Linking speed when mentions repeat: each (language, text) encoded and searched once per batch, or once per run.

Real corpora repeat their mentions (GSC+ abstracts name "ataxia" or "seizures" several times; NCBI Disease's
test set has 960 mentions of 451 distinct texts). The candidate generators search each distinct (language, text)
pair of a batch once and share its rows (``CandidateGenerator.candidates``); the linker's candidate cache
(``candidate_cache_mb``) carries rows over to later batches. This script links real corpora with the default
linker (the cached default index: TF-IDF + hpo-align-e5small, fused) as ``xnorm link`` does (batches of 64
documents, top 1) in three variants, in interleaved rounds, and checks that all give the same predictions:

- per-row: every generator forced onto its per-row path (``_candidates_per_row``: every mention searched);
- per-batch: deduplication within each batch, no cache (``candidate_cache_mb: 0``);
- cached: deduplication + the default 64 MB cache, empty at the start of each round (a cold run).

    XNORM_HOME=... python benchmarks/repeated_mentions.py [--rounds 3] [--out benchmarks/results/repeated_mentions]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CORPORA = {  # label -> (dataset key, options)
    "gsc-plus test": ("gsc-plus", {"split": "test"}),
    "ncbi-disease test": ("ncbi-disease", {"split": "test"}),
    "ncbi-disease train": ("ncbi-disease", {"split": "train"}),
    "mantra-hpo": ("mantra-hpo", {}),
}
VARIANTS = ("per-row", "per-batch", "cached")
BATCH = 64  # documents per batch, as Linker.link / xnorm link


def per_row(generator):
    """``generator.candidates`` without the deduplication (the baseline)."""
    from xnorm.candidates.base import mention_langs

    def candidates(mentions, k=64, routing="fallback", default_lang="en"):
        langs = mention_langs(mentions, default_lang)
        return generator._candidates_per_row(langs, np.asarray(mentions.texts, dtype=object), k, routing,
                                             default_lang)
    return candidates


def link_all(linker, docs: list[dict]) -> tuple[float, list]:
    """Seconds to link ``docs`` (a fresh copy) and the predicted ids of every entity."""
    docs = copy.deepcopy(docs)
    t = time.perf_counter()
    linked = list(linker.link(docs, top_k=1, overwrite=True, batch_size=BATCH))
    seconds = time.perf_counter() - t
    preds = [[(n["db_id"], round(n["score"], 4)) for n in e["normalized"]] for d in linked for e in d["entities"]]
    return seconds, preds


def distinct_texts(docs: list[dict]) -> tuple[int, int]:
    """Distinct (language, text) pairs summed over the batches, and in the whole corpus."""
    from xnorm.data import mentions_from_documents

    per_batch, corpus = 0, set()
    for i in range(0, len(docs), BATCH):
        mentions, _ = mentions_from_documents(docs[i:i + BATCH], context_chars=0)
        pairs = set(zip(mentions.langs, mentions.texts))
        per_batch += len(pairs)
        corpus |= pairs
    return per_batch, len(corpus)


def use_variant(linker, variant: str) -> None:
    for g in linker.index.generators:
        if variant == "per-row":
            g.candidates = per_row(g)
        elif "candidates" in vars(g):
            del g.candidates
    linker.index.set_cache(64 if variant == "cached" else 0)  # a new cache: empty


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "repeated_mentions")
    ap.add_argument("--corpora", nargs="*", default=list(CORPORA), choices=list(CORPORA))
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    args = ap.parse_args(argv)

    import torch

    from xnorm import Linker
    from xnorm.benchmark.datasets import build_dataset

    torch.set_num_threads(2)
    linker = Linker.default()
    base = args.variants[0]
    rows = []
    for label in args.corpora:
        key, options = CORPORA[label]
        docs = build_dataset(key, options).documents
        for d in docs:  # gold out: linking writes predictions, never reads them
            for e in d["entities"]:
                e["normalized"] = []
        n = sum(len(d["entities"]) for d in docs)
        per_batch, corpus = distinct_texts(docs)
        times: dict[str, list[float]] = {v: [] for v in args.variants}
        preds, cache_mb = {}, None
        use_variant(linker, base)
        link_all(linker, docs[:BATCH])  # warm-up: encoder and index loaded
        for _ in range(args.rounds):
            for variant in times:
                use_variant(linker, variant)
                seconds, preds[variant] = link_all(linker, docs)
                times[variant].append(seconds)
                if variant == "cached":
                    cache_mb = linker.index.generators[0].cache.nbytes / 2**20
        same = {v: sum([x[0] for x in a[:1]] == [x[0] for x in b[:1]] for a, b in zip(preds[base], p))
                for v, p in preds.items()}
        score_diff = {v: max((abs(a[0][1] - b[0][1]) for a, b in zip(preds[base], p) if a and b), default=0.0)
                      for v, p in preds.items()}
        med = {v: statistics.median(t) for v, t in times.items()}
        rows.append({"corpus": label, "documents": len(docs), "mentions": n, "distinct_per_batch": per_batch,
                     "distinct_in_corpus": corpus, "seconds": times, "median_s": med,
                     "mentions_per_s": {v: n / s for v, s in med.items()},
                     "speedup_vs_first": {v: med[base] / s for v, s in med.items()},
                     "same_top1_as_first": same, "max_top1_score_diff": score_diff, "cache_mb": cache_mb})
        print(json.dumps(rows[-1]), flush=True)

    lines = ["# Linking repeated mentions: each distinct (language, text) searched once per batch, or once per run",
             "",
             f"- {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {platform.machine()}, "
             f"{os.cpu_count()} CPUs, torch threads 2; the default linker ({linker.pipeline})",
             f"- `Linker.link` as `xnorm link` runs it: batches of {BATCH} documents, top 1, gold removed first; "
             f"{args.rounds} interleaved rounds per corpus, medians; per-row = every generator forced onto "
             "`_candidates_per_row` (each mention encoded and searched); per-batch = each distinct (language, text) "
             "of a batch searched once, no cache; cached = per-batch + the linker's candidate cache (default 64 MB), "
             "empty at the start of each round",
             "- command: `python benchmarks/repeated_mentions.py" + "".join(f" {x}" for x in (argv or sys.argv[1:]))
             + "`", "",
             "| corpus | documents | mentions | distinct per batch | distinct in corpus | "
             + " | ".join(f"{v} s (mentions/s)" for v in args.variants)
             + " | " + " | ".join(f"{v} vs {base}" for v in args.variants[1:])
             + f" | same top-1 as {base} | max top-1 score Δ | cache MB |",
             "|---|" + "---:|" * (7 + 2 * len(args.variants) - 1)]
    for r in rows:
        cells = [r["corpus"], str(r["documents"]), f"{r['mentions']:,}",
                 f"{r['distinct_per_batch']:,} ({r['distinct_per_batch'] / r['mentions']:.0%})",
                 f"{r['distinct_in_corpus']:,} ({r['distinct_in_corpus'] / r['mentions']:.0%})"]
        cells += [f"{r['median_s'][v]:.1f} ({r['mentions_per_s'][v]:.0f})" for v in args.variants]
        cells += [f"{r['speedup_vs_first'][v]:.2f}x" for v in args.variants[1:]]
        cells += [" / ".join(f"{r['same_top1_as_first'][v]:,}" for v in args.variants[1:]),
                  " / ".join(f"{r['max_top1_score_diff'][v]:.4f}" for v in args.variants[1:]),
                  "—" if r["cache_mb"] is None else f"{r['cache_mb']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2))
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
