"""The default HPO pipeline over ``hpo-multilingual`` (names in 8 languages) with and without the shipped reranker.

The shipped reranker was trained over the English-only default index. Over an index that also holds the
translations, the candidate stage routes a mention first to names in its own language, which changes what the
reranker sees; this measures whether it still helps before it is applied there by default. The index is the
default pipeline over hpo-multilingual with the translations of the encoder adapter's dev and test concepts
(split.json) left out, so that:

- ``held-<lang>``: 300 labels per language of the test concepts — concepts with no name in the mention's language
  (about 15% of HPO for Chinese), reached only through English names;
- ``in-<lang>``: 300 labels per language of other concepts, whose label is in the index (exact matches: nothing
  may be lost there);
- ``mantra-<lang>`` / ``xlbel-<lang>``: the HPO-mappable mentions of Mantra GSC and XL-BEL in their sentences —
  real text, mostly of concepts that have names in the mention's language.

    python benchmarks/default_reranker_multilingual.py --index-dir RUNS/idx-multi-dt
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LANGS = ["es", "fr", "de", "it", "ja", "zh", "nl"]
RERANKER = "hpo-translate-rerank-e5small"


def held_out_index(index_dir: Path, split: dict):
    """The default pipeline over hpo-multilingual without the non-English names of split's dev and test concepts
    (built once, then loaded)."""
    from xnorm.candidates import CandidateIndex
    from xnorm.linker import default_candidates
    from xnorm.terminology import load_terminology

    if not index_dir.exists():
        multi = load_terminology("hpo-multilingual")
        rows = np.asarray([multi.concept_index(c) for c in split["dev"] + split["test"] if c in multi])
        keep = ~(np.isin(multi.name_concepts, rows) & (multi.name_langs != "en"))
        term = replace(multi, name_texts=multi.name_texts[keep], name_concepts=multi.name_concepts[keep],
                       name_langs=multi.name_langs[keep], name_types=multi.name_types[keep],
                       name_provenance=multi.name_provenance[keep],
                       metadata={**multi.metadata, "checksum": f"{multi.metadata.get('checksum', '')}-split-held-out"})
        CandidateIndex.build(term, default_candidates(term), show_progress=True).save(index_dir)
    return CandidateIndex.load(index_dir)


def build_sets(term, split: dict, data_root: str) -> dict:
    from xnorm.benchmark.datasets import build_dataset
    from xnorm.rerank import examples_from_documents

    sys.path.insert(0, str(HERE))
    from rerank import sample  # the held-out samples of rerank.py --test-concepts

    rows = lambda ids: np.asarray([term.concept_index(c) for c in ids if c in term])  # noqa: E731
    test_rows, split_rows = rows(split["test"]), rows(split["dev"] + split["test"])
    labels = build_dataset("hpo-labels", {"languages": LANGS, "split": None, "max_per_language": None, "seed": 0},
                           data_root=data_root)
    sets = {}
    for i, lang in enumerate(LANGS):
        ex = examples_from_documents([d for d in labels.documents if d["lang"] == lang], term, context_chars=0)
        held = ex[np.flatnonzero(np.isin(ex.gold, test_rows))]
        sets[f"held-{lang}"] = held[sample(len(held), 300, 0)]
        inside = ex[np.flatnonzero(~np.isin(ex.gold, split_rows) & (ex.gold >= 0))]
        sets[f"in-{lang}"] = inside[sample(len(inside), 300, 7 + i)]
    for key, corpus in (("mantra", "mantra-hpo"), ("xlbel", "xl-bel-hpo")):
        ex = examples_from_documents(build_dataset(corpus, {}, data_root=data_root).documents, term,
                                     context_chars=100).known()
        langs = np.asarray(ex.mentions.langs)
        for lang in sorted(set(langs.tolist())):
            sets[f"{key}-{lang}"] = ex[np.flatnonzero(langs == lang)]
    return sets


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=str(HERE.parent.parent / "shared" / "data"))
    p.add_argument("--index-dir", required=True, type=Path, help="where the held-out index is built (once)")
    p.add_argument("--out", default=str(HERE / "results" / "default_reranker_multilingual"))
    args = p.parse_args()

    import torch

    from xnorm.eval.stats import approximate_randomization
    from xnorm.linker import _resolve_reranker
    from xnorm.rerank import load_reranker

    torch.set_num_threads(2)
    split = json.loads((HERE.parent / "adapters_zoo" / "hpo-align-e5small" / "split.json").read_text())
    index = held_out_index(args.index_dir, split)
    term = index.terminology
    reranker = load_reranker(_resolve_reranker(RERANKER))
    sets = build_sets(term, split, args.data_root)
    rows, t0 = {}, time.perf_counter()
    for name, ex in sets.items():
        cands = index.candidates(ex.mentions, 64)
        a = ex.hits(cands.concepts[:, 0])
        b = ex.hits(reranker.rerank(ex.mentions, cands, term).concepts[:, 0])
        rows[name] = {"n": len(ex), "candidates": float(a.mean()), "reranked": float(b.mean()),
                      "won": int((b & ~a).sum()), "lost": int((a & ~b).sum()),
                      "p": approximate_randomization(b.astype(float), a.astype(float)).p_value}
        print(name, rows[name], flush=True)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    Path(args.out).with_suffix(".json").write_text(json.dumps(
        {"when": when, "index": index.describe(), "reranker": RERANKER, "sets": rows,
         "seconds": round(time.perf_counter() - t0, 1)}, indent=2))
    lines = ["# The shipped reranker over an hpo-multilingual index (benchmarks/default_reranker_multilingual.py)", "",
             f"{when}; {platform.machine()}, 2 torch threads. Index: {index.describe()} — the default pipeline "
             "over hpo-multilingual without the non-English names of split.json's dev and test concepts. "
             f"Reranker: `{RERANKER}` (trained over the English-only default index), 64 candidates.", "",
             "| set | n | acc@1 candidates | acc@1 reranked | change (won/lost) |", "|---|---|---|---|---|"]
    for name, r in rows.items():
        star = "*" if r["p"] < 0.05 else ""
        lines.append(f"| {name} | {r['n']} | {r['candidates']:.3f} | {r['reranked']:.3f} | "
                     f"{r['reranked'] - r['candidates']:+.3f} ({r['won']}/{r['lost']}{star}) |")
    lines += ["", "held: labels of concepts with no name in the mention's language (reached through English); in: "
              "labels that are in the index; mantra / xlbel: HPO-mappable mentions in their sentences. `*`: two-sided "
              "approximate-randomization p < 0.05 (10,000 shuffles)."]
    Path(args.out).with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
