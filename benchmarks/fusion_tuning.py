"""Choose a saved index's fusion settings on DEV concepts, report them on TEST concepts (issue 3's fusion goal).

``candidates_quality.py --fusion`` re-fuses on the test queries themselves; choosing settings there would fit the
test set. Here the choice is made on the OFFICIAL labels of the encoder adapter's DEV concepts (its split.json
"dev" list: never trained on, used only for early stopping) and then reported, unchanged, on the same test
queries as candidates_quality.py (the split's "test" concepts, <= N labels per language, seeded). Each
generator's lists are computed once; every setting of the grid re-fuses them
(``xnorm.candidates.fusion.fuse_by_config``, what the index does at query time).

    python benchmarks/fusion_tuning.py --index IDX --split adapters_zoo/hpo-align-e5small/split.json \\
        --out benchmarks/results/fusion_tuning
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
from candidates_quality import DEFAULT_DATA, KS, english_hpo, official_labels

LANGS = ("es", "fr", "de", "it", "ja", "zh", "nl")
MIN_DEV = 100  # languages with fewer dev labels are reported, not used to choose
REPORT_ONLY = ("nl",)  # never trained on, machine-translated labels: reported, never used to choose


def grid(current: dict) -> list[dict]:
    """The current fusion config first (ties keep it), then variants of it: min-max / z-score with other weights
    for TF-IDF's cross-lingual hits, and reciprocal-rank fusion. Every query here reaches the English-only index
    through the fallback route, so only ``fallback_weights`` act (``weights`` is for same-language hits)."""
    dense = float(current["fallback_weights"][1]) if current.get("fallback_weights") else 2.0
    settings = [dict(current)]
    for method, w_sparse in itertools.product(("minmax", "zscore"), (0.0, 0.25, 0.5, 1.0)):
        settings.append({**current, "method": method, "fallback_weights": [w_sparse, dense]})
    settings += [{**current, "method": "rrf", "weights": [1.0, w], "fallback_weights": [1.0, w]} for w in (1.0, 4.0)]
    return settings


def label(setting: dict) -> str:
    return ", ".join(f"{key} {value}" for key, value in setting.items() if key != "k" or setting["method"] == "rrf")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, required=True, help="a saved two-generator CandidateIndex over hpo-en")
    ap.add_argument("--split", type=Path, required=True, help="the encoder adapter's split.json (dev and test lists)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--n", type=int, default=1000, help="test labels per language (as candidates_quality.py)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fusion_tuning")
    args = ap.parse_args(argv)

    from xnorm import Mentions
    from xnorm.benchmark.hpo_obo import read_hpo_ids
    from xnorm.candidates import CandidateIndex
    from xnorm.candidates.fusion import fuse_by_config
    from xnorm.eval.ranking import first_hit_ranks, metrics_from_ranks
    from xnorm.eval.stats import approximate_randomization

    term, ids = english_hpo(), read_hpo_ids()
    index = CandidateIndex.load(args.index)
    if len(index.generators) != 2:
        sys.exit(f"error: {args.index} has {len(index.generators)} generator(s); fusion tuning needs two")
    split = json.loads(args.split.read_text())
    settings = grid(index.config["fusion"])
    names = [g.name for g in index.generators]

    tables: dict = {}
    hits: dict = {"dev": {}, "test": {}}  # per-label acc@1 hits, for the paired tests
    for part, n in (("dev", None), ("test", args.n)):
        only = {ids.resolve(c) for c in split[part]}
        tables[part] = {}
        for lang in LANGS:
            texts, gold, _ = official_labels(args.data, lang, n, args.seed, ids, only)
            if not texts:
                continue
            lists = index.generator_candidates(Mentions(texts=texts, langs=[lang] * len(texts)), k=args.k)
            rows = {f"{g} only": lists[g] for g in names}
            for i, s in enumerate(settings):
                rows[f"#{i} {label(s)}"] = fuse_by_config(list(lists.values()), args.k, s)
            ranks = {r: first_hit_ranks(c.concept_ids(term), [[g] for g in gold]) for r, c in rows.items()}
            tables[part][lang] = {r: {**metrics_from_ranks(rk, KS), "n": len(texts)} for r, rk in ranks.items()}
            hits[part][lang] = {r: (rk == 1).astype(float) for r, rk in ranks.items()}
            print(f"{part} {lang}: {len(texts)} labels", file=sys.stderr)

    choose_langs = [lang for lang, t in tables["dev"].items()
                    if next(iter(t.values()))["n"] >= MIN_DEV and lang not in REPORT_ONLY]
    fused = [r for r in next(iter(tables["dev"].values())) if r.startswith("#")]

    def macro(r: str, key: str) -> float:
        return sum(tables["dev"][lang][r][key] for lang in choose_langs) / len(choose_langs)

    dev_macro = {r: {key: macro(r, key) for key in ("accuracy@1", "mrr")} for r in fused}
    best = max(fused, key=lambda r: tuple(round(v, 6) for v in dev_macro[r].values()))  # first wins ties
    # Test acc@1 of every row against the chosen one: difference and approximate-randomization p-value.
    paired = {lang: {r: approximate_randomization(h[best], h[r]).p_value for r in h if r != best}
              for lang, h in hits["test"].items()}
    # Is the choice more than noise? Chosen vs current on the pooled dev labels of the choosing languages.
    pooled = [np.concatenate([hits["dev"][lang][r] for lang in choose_langs]) for r in (fused[0], best)]
    dev_test = approximate_randomization(*pooled)
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "index": str(args.index),
              "describe": index.describe(), "split": str(args.split), "settings": settings,
              "chosen_on": choose_langs, "current": fused[0], "best": best, "dev_macro": dev_macro,
              "tables": tables, "paired_p": paired,
              "dev_chosen_vs_current": {"delta": dev_test.delta, "p": dev_test.p_value, "n": dev_test.n},
              "command": "python benchmarks/fusion_tuning.py " + " ".join(argv or sys.argv[1:])}
    args.out.mkdir(parents=True, exist_ok=True)
    report = markdown(result)
    (args.out / "fusion_tuning.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    (args.out / "fusion_tuning.md").write_text(report)
    print(report)
    return 0


def markdown(r: dict) -> str:
    from xnorm.eval.stats import format_p

    dev, test = r["tables"]["dev"], r["tables"]["test"]
    langs = list(test)
    rows = list(next(iter(test.values())))
    dev_n = r["dev_chosen_vs_current"]["n"]
    def cells(table, row):
        return " | ".join(f"{table[lang][row]['accuracy@1']:.3f} / {table[lang][row]['recall@64']:.3f}"
                          if lang in table else "—" for lang in langs)
    head = "| setting | dev macro acc@1 | " + " | ".join(f"{lang} (n={test[lang][rows[0]]['n']})" for lang in langs)
    lines = ["# Fusion settings chosen on dev concepts, reported on test concepts", "",
             f"- {r['date']}; index `{r['index']}`: {r['describe']}",
             f"- command: `{r['command']}`",
             f"- dev: OFFICIAL labels of the {r['split']} \"dev\" concepts (per language n: "
             + ", ".join(f"{lang} {t[rows[0]]['n']}" for lang, t in dev.items())
             + f"); the setting with the best mean dev acc@1 over {', '.join(r['chosen_on'])} is chosen (ties: "
             "the earlier row; #0 is the index's own setting)",
             f"- **chosen: {r['best']}**; current: {r['current']}; chosen minus current on the {dev_n:,} pooled dev "
             f"labels: {r['dev_chosen_vs_current']['delta']:+.4f} acc@1 (approximate randomization p = "
             f"{format_p(r['dev_chosen_vs_current']['p'])})", "",
             "## Test: acc@1 / R@64", "", head + " |", "|---" * (len(langs) + 2) + "|"]
    for row in rows:
        mark = "**" if row in (r["best"], r["current"]) else ""
        dm = f"{r['dev_macro'][row]['accuracy@1']:.3f}" if row in r["dev_macro"] else "—"
        lines.append(f"| {mark}{row}{mark} | {dm} | {cells(test, row)} |")
    lines += ["", "## Test: acc@1 of each setting minus the chosen one (approximate-randomization p, 10,000 shuffles)",
              "", "| setting | " + " | ".join(langs) + " |", "|---" * (len(langs) + 1) + "|"]
    for row in rows:
        if row != r["best"]:
            lines.append(f"| {row} | " + " | ".join(
                f"{test[lang][row]['accuracy@1'] - test[lang][r['best']]['accuracy@1']:+.3f} "
                f"(p {format_p(r['paired_p'][lang][row])})" for lang in langs) + " |")
    lines += ["", "## Dev: acc@1 / R@64", "",
              "| setting | " + " | ".join(f"{lang} (n={t[rows[0]]['n']})" for lang, t in dev.items()) + " |",
              "|---" * (len(dev) + 1) + "|"]
    for row in rows:
        lines.append(f"| {row} | " + " | ".join(f"{t[row]['accuracy@1']:.3f} / {t[row]['recall@64']:.3f}"
                                                 for t in dev.values()) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
