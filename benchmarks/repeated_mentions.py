"""Linking speed when mentions repeat: every (language, text) pair of a batch encoded and searched once.

Real corpora repeat their mentions (GSC+ abstracts name "ataxia" or "seizures" several times; NCBI Disease's
test set has 960 mentions of 451 distinct texts). The candidate generators search each distinct (language, text)
pair of a batch once and share its rows (``CandidateGenerator.candidates``). This script links real corpora with the
default linker (the cached default index: TF-IDF + hpo-align-e5small, fused) as ``xnorm link`` does (batches of 64
documents, top 1), once with that deduplication and once with every generator forced onto its per-row path
(``_candidates_per_row``: every mention encoded and searched), in interleaved rounds, and checks that both give the
same predictions.

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
CORPORA = {  # dataset key -> options (the test split where the corpus has one)
    "gsc-plus": {"split": "test"},
    "ncbi-disease": {"split": "test"},
    "mantra-hpo": {},
}
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


def distinct_per_batch(docs: list[dict]) -> int:
    from xnorm.data import mentions_from_documents

    total = 0
    for i in range(0, len(docs), BATCH):
        mentions, _ = mentions_from_documents(docs[i:i + BATCH], context_chars=0)
        total += len({(lang, text) for lang, text in zip(mentions.langs, mentions.texts)})
    return total


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "repeated_mentions")
    ap.add_argument("--corpora", nargs="*", default=list(CORPORA))
    args = ap.parse_args(argv)

    import torch

    from xnorm import Linker
    from xnorm.benchmark.datasets import build_dataset

    torch.set_num_threads(2)
    linker = Linker.default()
    generators = linker.index.generators
    rows = []
    for key in args.corpora:
        docs = build_dataset(key, CORPORA[key]).documents
        for d in docs:  # gold out: linking writes predictions, never reads them
            for e in d["entities"]:
                e["normalized"] = []
        n = sum(len(d["entities"]) for d in docs)
        distinct = distinct_per_batch(docs)
        times: dict[str, list[float]] = {"per-row": [], "deduplicated": []}
        preds = {}
        link_all(linker, docs[:BATCH])  # warm-up: encoder and index loaded, caches filled
        for _ in range(args.rounds):
            for variant in times:
                for g in generators:
                    if variant == "per-row":
                        g.candidates = per_row(g)
                    elif "candidates" in vars(g):
                        del g.candidates
                seconds, preds[variant] = link_all(linker, docs)
                times[variant].append(seconds)
        same = sum(a[0][0] == b[0][0] for a, b in zip(preds["per-row"], preds["deduplicated"]) if a and b)
        score_diff = max((abs(a[0][1] - b[0][1]) for a, b in zip(preds["per-row"], preds["deduplicated"])
                          if a and b), default=0.0)
        med = {v: statistics.median(t) for v, t in times.items()}
        rows.append({"corpus": key, "documents": len(docs), "mentions": n, "distinct_per_batch": distinct,
                     "seconds": times, "median_s": med,
                     "mentions_per_s": {v: n / s for v, s in med.items()},
                     "speedup": med["per-row"] / med["deduplicated"],
                     "same_top1": same, "max_top1_score_diff": score_diff})
        print(json.dumps(rows[-1]), flush=True)

    lines = ["# Linking repeated mentions: each distinct (language, text) of a batch encoded and searched once", "",
             f"- {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {platform.machine()}, "
             f"{os.cpu_count()} CPUs, torch threads 2; the default linker ({linker.pipeline})",
             f"- `Linker.link` as `xnorm link` runs it: batches of {BATCH} documents, top 1, gold removed first; "
             f"{args.rounds} interleaved rounds per corpus (per-row, deduplicated, per-row, ...), medians; "
             "per-row = every generator forced onto `_candidates_per_row` (each mention encoded and searched)",
             "- command: `python benchmarks/repeated_mentions.py" + "".join(f" {x}" for x in (argv or sys.argv[1:]))
             + "`", "",
             "| corpus | documents | mentions | distinct per batch | per-row s (mentions/s) | deduplicated s "
             "(mentions/s) | speed-up | same top-1 | max top-1 score Δ |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['corpus']} | {r['documents']} | {r['mentions']:,} | {r['distinct_per_batch']:,} "
            f"({r['distinct_per_batch'] / r['mentions']:.0%}) | {r['median_s']['per-row']:.1f} "
            f"({r['mentions_per_s']['per-row']:.0f}) | {r['median_s']['deduplicated']:.1f} "
            f"({r['mentions_per_s']['deduplicated']:.0f}) | {r['speedup']:.2f}x | {r['same_top1']:,} / "
            f"{r['mentions']:,} | {r['max_top1_score_diff']:.4f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2))
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
