"""Where the first answer goes wrong (the candidate stage's, or the reranked one), per in-context dataset: the gold
concept is not among the top k at all (a recall problem), or it is but another concept comes first (a ranking
problem, a reranker's job) —
and how many of the wrong first answers are the gold's is_a descendant or ancestor in HPO (a granularity
near-miss: "Neoplasm of the breast" for an annotated "Neoplasm", or the reverse).

    python benchmarks/error_breakdown.py --index IDX --reranker none --out benchmarks/results/error_breakdown
    python benchmarks/error_breakdown.py --out benchmarks/results/error_breakdown_default   # the default pipeline

The lists are what the linker returns (``Linker.predict``, top k): with ``--reranker auto`` (the default) the
shipped reranker's order where the index is HPO's default pipeline, with ``--reranker none`` the candidate stage's.

Writes ``<out>.json`` and ``<out>.md``. Any of a mention's gold ids counts (one CUI may map to several HPO terms).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

DATASETS = {"gsc-plus-test": ("gsc-plus", {"split": "test"}), "mantra-hpo": ("mantra-hpo", {}),
            "xl-bel-hpo": ("xl-bel-hpo", {})}


def breakdown(ex, cands, terminology, hierarchy) -> dict:
    """Counts of each kind of first answer over the examples (see the module doc); ``hierarchy``: a
    ``Terminology`` with is_a edges (near-misses at any number of levels, ``xnorm.eval.hierarchy.lineage``)."""
    from xnorm.eval.hierarchy import lineage

    hits = ex.hits(cands.concepts)
    first_ok, in_k = hits[:, 0], hits.any(axis=1)
    near = lineage(cands.concept_ids(terminology)[:, 0], ex.gold_ids(terminology), hierarchy, max_levels=None)
    return {"n": int(len(ex)), "acc1": float(first_ok.mean()), "recall_k": float(in_k.mean()),
            "wrong": int((~first_ok).sum()), "gold_not_in_k": int((~in_k).sum()),
            "gold_in_k_not_first": int((in_k & ~first_ok).sum()),
            "first_finer_than_gold": int((near["finer"] & ~first_ok).sum()),
            "first_coarser_than_gold": int((near["coarser"] & ~first_ok).sum())}


def render(res: dict) -> str:
    k = res["k"]
    lines = ["# Where the first answer goes wrong", "",
             f"Index: `{res['index']}`; pipeline: {res['index_describe']}; k = {k}; {res['date']}. "
             "Any of a mention's gold ids counts. *Finer* / *coarser*: the wrong first answer is an is_a descendant / "
             "ancestor of a gold concept in hp.obo.", "",
             f"| dataset | n | acc@1 | recall@{k} | wrong first | gold not in top {k} | gold in top {k}, not first | "
             "first finer than gold | first coarser than gold | acc@1 if near-misses counted |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in res["datasets"].items():
        n = r["n"]
        near = r["first_finer_than_gold"] + r["first_coarser_than_gold"]
        lines.append(f"| {name} | {n} | {r['acc1']:.3f} | {r['recall_k']:.3f} | {r['wrong']} | {r['gold_not_in_k']} | "
                     f"{r['gold_in_k_not_first']} | {r['first_finer_than_gold']} | {r['first_coarser_than_gold']} | "
                     f"{r['acc1'] + near / n:.3f} |")
    return "\n".join(lines + [""] + res.get("notes", [])) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", default=None, help="a saved CandidateIndex over HPO (default: the embedded default)")
    p.add_argument("--reranker", default="auto", help="auto (the default pipeline's), none, or a reranker folder/name")
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default="benchmarks/results/error_breakdown")
    args = p.parse_args(argv)
    from xnorm.benchmark import build_dataset
    from xnorm.linker import Linker, LinkerConfig
    from xnorm.rerank import examples_from_documents
    from xnorm.terminology import load_terminology

    reranker = None if args.reranker == "none" else args.reranker
    linker = Linker.from_config(LinkerConfig(index=args.index, reranker=reranker, candidate_cache_mb=0))
    index = linker.index
    hierarchy = load_terminology("hpo-en")  # the index's own copy may predate is_a edges
    res = {"index": args.index or "the embedded default", "index_describe": linker.pipeline, "k": args.k,
           "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "datasets": {}}
    for name, (key, opts) in DATASETS.items():
        ds = build_dataset(key, opts, data_root=args.data_root)
        ex = examples_from_documents(ds.documents, index.terminology, context_chars=100)
        res["datasets"][name] = breakdown(ex, linker.predict(ex.mentions, top_k=args.k), index.terminology, hierarchy)
        print(name, res["datasets"][name], flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=2, ensure_ascii=False))
    out.with_suffix(".md").write_text(render(res))


if __name__ == "__main__":
    sys.exit(main())
