"""The shipped encoder adapter (``hpo-align-e5small``) vs the base e5-small against the FULL English HPO index.

``benchmarks/train_encoder.py`` scores held-out concepts against a subset index (their English names + 2,000
distractor names) to keep encoding affordable; this script asks the same question against all 41,494 English names
of the default ``hpo-en`` terminology (what the default linker searches). Queries: the adapter's TEST concepts
(its split.json; never trained on) — their OFFICIAL labels per language, the same seeded samples as
train_encoder.py. Dense retrieval only (exact inner product), names deduplicated by concept.

    XNORM_HOME=/tmp/xh_default XNORM_HPO_TRANSLATIONS=/work/shared/data/hpo-translations \\
        python benchmarks/encoder_full_index.py [--adapters hpo-align-e5small /tmp/longer-run ...]

Every adapter given (zoo name or folder) is a row beside the base model, measured in the same run; an adapter must
have been trained on the shipped adapter's split (its test concepts are the queries). With two or more adapters,
each later one is also tested against the first, paired query by query (approximate randomization).
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import train_encoder as te  # noqa: E402  (its query sampling, so both tables ask the same questions)

LANGS = ["es", "fr", "de", "it", "de-mt", "it-mt", "ja", "zh", "nl", "nna"]


def machine_translated_queries(terminology, test_ids: np.ndarray, data: Path, langs: list[str]) -> dict:
    """``L-mt``: every machine-translated (CANDIDATE) label of a test concept in language L whose text is not also
    one of that concept's OFFICIAL labels — more queries for languages with few OFFICIAL ones (de 63, it 56)."""
    from xnorm.benchmark.datasets import babelon_file, read_babelon_labels

    test = set(test_ids.tolist())
    out = {}
    for lang in langs:
        labels = read_babelon_labels(babelon_file(data / "hpo-translations", lang), ["OFFICIAL", "CANDIDATE"])
        resolved = [(terminology.resolve(sid), label, status) for sid, label, status in labels]
        official = {(cid, label) for cid, label, status in resolved if status == "OFFICIAL"}
        rows = [(label, cid) for cid, label, status in resolved
                if status == "CANDIDATE" and cid in test and (cid, label) not in official]
        out[f"{lang}-mt"] = ([r[0] for r in rows], np.asarray([r[1] for r in rows], dtype=object))
    return out



def paired_lines(rows: dict, reference: str, others: list[str], langs: list[str]) -> list[str]:
    """acc@1 of each later adapter against the first one on the same queries: difference, approximate-
    randomization p (10,000 shuffles, seed 0), queries won / lost."""
    from xnorm.eval.documents import compare_ranks
    from xnorm.eval.stats import format_p

    lines = ["", f"Paired against `{reference}` on the same queries (acc@1 difference, two-sided approximate-"
             "randomization p, 10,000 shuffles, seed 0; won / lost = queries whose top concept turned right / wrong):",
             "", "| encoder | " + " | ".join(f"{lang} Δ acc@1, p (won / lost)" for lang in langs) + " |",
             "|---" * (len(langs) + 1) + "|"]
    for label in others:
        cells = []
        for lang in langs:
            t = compare_ranks(np.asarray(rows[reference][lang]["ranks"]), np.asarray(rows[label][lang]["ranks"]),
                              test="randomization")["accuracy@1"]
            cells.append(f"{t['delta']:+.3f}, p {format_p(t['p_value'])} ({t['won']} / {t['lost']})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> None:
    import argparse

    import torch

    from xnorm.eval.ranking import metrics_from_ranks
    from xnorm.models import Encoder
    from xnorm.models.registry import weights_fingerprint
    from xnorm.terminology import load_terminology

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--adapters", nargs="*", default=["hpo-align-e5small"],
                    help="zoo names, adapter folders or distilled students (benchmarks/distill_encoder.py)")
    ap.add_argument("--out", default=str(HERE / "results" / "encoder_full_index"))
    ap.add_argument("--cache", type=Path, help="folder for each encoder's index vectors (keyed by its weights), so "
                    "a later run re-encodes only new encoders")
    ap.add_argument("--machine-translated", nargs="*", default=[], metavar="LANG",
                    help="also query with these languages' machine-translated labels of the test concepts (L-mt)")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    data = Path(os.environ.get("XNORM_DATA", "/work/shared/data"))
    split = json.loads((HERE.parent / "adapters_zoo" / "hpo-align-e5small" / "split.json").read_text())
    multi = load_terminology("hpo-multilingual")
    test_ids = np.asarray(sorted(split["test"]), dtype=object)
    te.EVAL_LANGS = [lang for lang in LANGS if not lang.endswith("-mt")]
    queries, _, _ = te.eval_task(multi, test_ids, data)
    queries.update(machine_translated_queries(multi, test_ids, data, args.machine_translated))
    english = load_terminology("hpo-en")
    names = english.name_texts.tolist()
    name_concepts = english.concept_ids[english.name_concepts]
    rows = {}
    timings = {}
    encoders = [("base e5-small", lambda: Encoder("multilingual-e5-small", backend="auto"))]
    keys = {"base e5-small": weights_fingerprint("multilingual-e5-small")}  # cache keys: they change with weights
    index_models: dict[str, str] = {}  # label of a query encoder -> the model whose name vectors it searches
    for a in args.adapters:
        path = Path(a)
        if path.is_dir() and json.loads((path / "split.json").read_text())["test"] != split["test"]:
            sys.exit(f"{a}: trained on another split than hpo-align-e5small (its test concepts would leak)")
        m = json.loads((path / "manifest.json").read_text()) if path.is_dir() else {}
        if m.get("kind") == "distilled-encoder" and m.get("role") == "query":  # distill_encoder.py --role query
            label = f"{path.name} ({len(m['layers'])}-layer query encoder, {m['steps']} steps, over the index of " \
                    f"{m['teacher']})"
            index_models[label] = m["teacher"]
        elif m.get("kind") == "distilled-encoder":  # benchmarks/distill_encoder.py
            label = f"{path.name} ({len(m['layers'])}-layer student, {m['steps']} steps)"
        else:
            steps = f" (best of {m['steps']} steps: {m['best_step']})" if m else ""
            label = f"{path.name} adapter{steps}"
        encoders.append((label, lambda a=a: Encoder(a)))
        keys[label] = weights_fingerprint(index_models.get(label, a))
    index_vectors: dict[str, np.ndarray] = {}  # by weights key: a query encoder reuses its teacher's row's vectors
    for label, make in encoders:
        enc = make()
        cached = args.cache / f"{keys[label]}.npy" if args.cache else None
        if keys[label] in index_vectors:
            vecs = index_vectors[keys[label]]
        elif cached is not None and cached.is_file():
            vecs = np.load(cached, allow_pickle=False)
        else:
            t = time.perf_counter()
            # a query encoder searches the names as its index model encoded them
            index_encoder = Encoder(index_models[label]) if label in index_models else enc
            vecs = index_encoder.encode(names, kind="passage", show_progress=True)
            timings[label] = round(time.perf_counter() - t, 1)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                np.save(cached, vecs)
        index_vectors[keys[label]] = vecs
        rows[label] = {}
        for lang, (texts, gold_idx) in queries.items():
            if not texts:
                continue
            gold = gold_idx.astype(str)  # concept ids (eval_task resolves them)
            ranks = te.concept_ranks(enc.encode(texts, kind="query"), vecs, name_concepts, gold)
            m = metrics_from_ranks(ranks, ks=(1, 64))
            rows[label][lang] = {"n": len(texts), "acc1": m["accuracy@1"], "r64": m["recall@64"],
                                 "ranks": np.asarray(ranks).tolist()}
        print(label, {k: (round(v["acc1"], 3), round(v["r64"], 3)) for k, v in rows[label].items()}, flush=True)
    langs = [lang for lang in LANGS if lang in rows["base e5-small"]]
    lines = ["# Encoder adapter vs base against the full English HPO index", "",
             f"- {len(names):,} English names of {len(english):,} concepts (`hpo-en`, the default linker's terminology); "
             f"queries: OFFICIAL labels (nl: machine-translated CANDIDATE) of the adapter's {len(test_ids):,} TEST concepts "
             f"(never trained on; ≤ {te.MAX_QUERIES} per language, train_encoder.py's seeded samples); dense exact "
             "search, concepts ranked by their best name (train_encoder.py's `concept_ranks`)"
             + ("; L-mt: every machine-translated CANDIDATE label of a test concept in L that is not one of its "
                "OFFICIAL labels, unsampled" if args.machine_translated else ""),
             f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads 2; encoding the index took "
             + (", ".join(f"{k} {v} s" for k, v in timings.items()) or "nothing (every encoder's vectors cached)"),
             "- command: `python benchmarks/encoder_full_index.py" + "".join(f" {x}" for x in (argv or sys.argv[1:]))
             + "`", "",
             "| encoder | " + " | ".join(f"{lang} acc@1 / R@64 (n)" for lang in langs) + " |",
             "|---" * (len(langs) + 1) + "|"]
    for label, r in rows.items():
        lines.append(f"| {label} | " + " | ".join(
            f"{r[lang]['acc1']:.3f} / {r[lang]['r64']:.3f} ({r[lang]['n']})" for lang in langs) + " |")
    adapters = list(rows)[1:]
    if len(adapters) > 1:
        lines += paired_lines(rows, adapters[0], adapters[1:], langs)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"rows": rows, "timings_s": timings}, indent=2))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
