"""Hubness correction (CSLS) for cross-lingual dense retrieval with the shipped encoder adapter: does it help?

Some names may be near many foreign-language queries of other concepts ("hubs"). Cross-domain similarity local
scaling (Conneau et al., 2018, "Word translation without parallel data") ranks by ``cos(q, y) - beta * r(y)``,
where ``r(y)`` is the mean cosine of name ``y`` to its ``--k`` nearest neighbours in a pool (the query-side term of
CSLS is constant per query). Two pools:

- ``--pool labels``: translated labels of the adapter's TRAINING concepts (its split.json), ``--pool-per-lang``
  per training language — never the test or dev concepts;
- ``--pool index``: the index's own names, each name's neighbours taken among the names of OTHER concepts: the pool
  any terminology has, with no labelled data (the candidate for a product option; results/hubness_index.md).

``beta`` is chosen on the DEV concepts' labels and reported on the TEST concepts' (the same queries as
encoder_full_index.py / encoder_r4_4names_lr2.md), against the 41,494 English HPO names. Rule (fixed 2026-12-03
before the ``--pool index`` run, as fusion_tuning.py's): the beta with the best mean dev acc@1 over the languages
with >= 100 dev labels among the training languages (es, fr, ja, zh); ties keep the smaller beta.

    python benchmarks/hubness.py --pool index --vectors /work/runs/vec/<fingerprint>.npy   # cached index vectors
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import train_encoder as te  # noqa: E402

BETAS = (0.0, 0.25, 0.5, 0.75, 1.0)
LANGS = ["es", "fr", "de", "it", "ja", "zh", "nl"]
MIN_DEV = 100  # languages with fewer dev labels are reported, not used to choose beta


def hub_scores(names: np.ndarray, pool: np.ndarray, k: int, concepts: np.ndarray | None = None) -> np.ndarray:
    """r(y): mean cosine of each name to its k most similar pool vectors. ``concepts`` (the pool is the names
    themselves): a name's concept per row, and only names of OTHER concepts count."""
    r = np.empty(len(names), dtype=np.float32)
    for b in range(0, len(names), 2048):
        sims = names[b:b + 2048] @ pool.T
        if concepts is not None:
            sims[concepts[b:b + 2048, None] == concepts[None, :]] = -np.inf
        r[b:b + 2048] = np.partition(sims, -k, axis=1)[:, -k:].mean(1)
    return r


def main(argv=None) -> None:
    import torch

    from xnorm.benchmark.datasets import babelon_file, read_babelon_labels
    from xnorm.models import Encoder
    from xnorm.terminology import load_terminology

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hpo-align-e5small")
    ap.add_argument("--vectors", type=Path, help="the model's vectors of the hpo-en names (encoder_full_index cache)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--pool", choices=("labels", "index"), default="labels")
    ap.add_argument("--pool-per-lang", type=int, default=2000)
    ap.add_argument("--out", help="results/hubness (labels) or results/hubness_index (index) without suffix")
    args = ap.parse_args(argv)
    args.out = args.out or str(HERE / "results" / ("hubness" if args.pool == "labels" else "hubness_index"))
    torch.set_num_threads(2)
    data = Path(os.environ.get("XNORM_DATA", "/work/shared/data"))
    split = json.loads((HERE.parent / "adapters_zoo" / "hpo-align-e5small" / "split.json").read_text())
    multi = load_terminology("hpo-multilingual")
    english = load_terminology("hpo-en")
    name_concepts = english.concept_ids[english.name_concepts]
    enc = Encoder(args.model)
    t0 = time.perf_counter()
    names = (np.load(args.vectors, allow_pickle=False) if args.vectors
             else enc.encode(english.name_texts.tolist(), kind="passage", show_progress=True))
    if args.pool == "index":
        r = hub_scores(names, names, args.k, concepts=english.name_concepts)
        pool_desc = f"the index's own {len(names):,} names (only names of other concepts count)"
    else:
        train = set(split["train"])
        rng = np.random.default_rng(0)
        pool_texts = []
        for lang in te.TRAIN_LANGS:
            labels = [label for sid, label, _ in read_babelon_labels(babelon_file(data / "hpo-translations", lang),
                                                                     ["OFFICIAL"]) if multi.resolve(sid) in train]
            pick = rng.choice(len(labels), min(args.pool_per_lang, len(labels)), replace=False)
            pool_texts += [labels[i] for i in pick]
        r = hub_scores(names, enc.encode(pool_texts, kind="query"), args.k)
        pool_desc = (f"{len(pool_texts):,} OFFICIAL labels of training concepts ({args.pool_per_lang} per language "
                     f"of {', '.join(te.TRAIN_LANGS)})")
    te.EVAL_LANGS = LANGS
    sets = {part: te.eval_task(multi, np.asarray(sorted(split[part]), dtype=object), data)[0]
            for part in ("dev", "test")}
    acc = {part: {} for part in sets}
    for part, queries in sets.items():
        for lang, (texts, gold) in queries.items():
            if len(texts) < 10:
                continue
            q = enc.encode(texts, kind="query")
            for beta in BETAS:
                rk = te.concept_ranks(q, names, name_concepts, gold.astype(str), penalty=beta * r)
                acc[part].setdefault(beta, {})[lang] = {"n": len(texts), "acc1": float((rk == 1).mean()),
                                                       "r64": float((rk <= 64).mean())}
    choose = [lang for lang in te.TRAIN_LANGS if acc["dev"][0.0].get(lang, {}).get("n", 0) >= MIN_DEV]
    dev_mean = {b: float(np.mean([acc["dev"][b][lang]["acc1"] for lang in choose])) for b in BETAS}
    chosen = max(BETAS, key=lambda b: (round(dev_mean[b], 6), -b))
    langs = [lang for lang in LANGS if lang in acc["test"][0.0]]
    lines = ["# Hubness correction (CSLS) for the encoder adapter's cross-lingual retrieval", "",
             f"- model `{args.model}`; index: the {len(names):,} English hpo-en names; pool: {pool_desc}; "
             f"r(y) = mean cosine of a name to its {args.k} nearest in the pool; score = cos - beta * r(y)",
             f"- queries: labels of the adapter's dev / test concepts (encoder_full_index.py's samples; nl "
             f"machine-translated); beta chosen on the mean dev acc@1 over {', '.join(choose)}: **{chosen}** "
             "(dev means: "
             + ", ".join(f"{b}: {dev_mean[b]:.3f}" for b in BETAS) + ")",
             f"- {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {time.perf_counter() - t0:.0f} s",
             "- command: `python benchmarks/hubness.py" + "".join(f" {a}" for a in (argv or sys.argv[1:])) + "`", ""]
    for part in ("test", "dev"):
        lines += [f"## {part.capitalize()}: acc@1 / R@64", "",
                  "| beta | " + " | ".join(f"{lang} (n={acc[part][0.0][lang]['n']})" for lang in langs
                                         if lang in acc[part][0.0]) + " |",
                  "|---|" + "---|" * sum(lang in acc[part][0.0] for lang in langs)]
        for b in BETAS:
            cells = [f"{acc[part][b][lang]['acc1']:.3f} / {acc[part][b][lang]['r64']:.3f}" for lang in langs
                     if lang in acc[part][b]]
            lines.append(f"| {'**' + str(b) + '**' if b == chosen else b} | " + " | ".join(cells) + " |")
        lines.append("")
    Path(args.out + ".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    Path(args.out + ".json").write_text(json.dumps({"chosen": chosen, "dev_mean": dev_mean,
                                                    "acc": {p: {str(b): v for b, v in d.items()}
                                                            for p, d in acc.items()}}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
