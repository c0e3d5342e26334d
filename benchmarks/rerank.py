"""Reranker ablation: candidates only vs. full fine-tuning vs. task adapter vs. Stack(lang, task), λ = 0 vs 1, and
the feature reranker (``--runs features features-nomemory``) against a lookup of the training annotations
(``--runs lookup``), and the feature reranker with word-piece translation tables (``--runs features+translation``:
learnt from the hpo-multilingual terminology's names, leaving out every concept of the split's dev and test lists).

Data (read where it lies, nothing copied):
- HPO translations, concept-level split (``hpo-labels``, ``split: held_out``): the labels of the index-half
  concepts are training mentions, the OFFICIAL labels of the held-out concepts are test mentions, per language.
- Mantra GSC (``--mantra``): every mention whose UMLS CUI maps to HPO, in context (en, es, fr, de, nl), test only.
- XL-BEL (``--xlbel``): every query whose UMLS CUI maps to HPO, in its Wikipedia sentence, one test set per
  language (de en es fi ja ko ru th tr zh; fi ko ru th tr have no HPO translation), test only.
- GSC+: dev split (mentions in context) for training, test split for testing; or, with
  ``--gsc-test-docs-to-train F``, a seeded fraction F of the *test documents* for training (document-level split,
  about 10x the dev split's mentions), the dev split for early stopping, and the other test documents for testing.
Where an annotation maps to several concepts (one CUI, several HPO terms), any of them counts as correct.
Candidates: a saved ``CandidateIndex`` (``--index``, e.g. ``xnorm index --terminology hpo-en -o DIR``), top k.

Each run trains one reranker on the pooled training mentions (all languages + GSC+), early-stopped on two dev
sets — bare HPO labels and GSC+ mentions in context — by the worse of their acc@1 gains over the candidates, then
reranks every test set. Results are merged into ``<out>.json`` run by run (so runs
can be split over several invocations) and the table ``<out>.md`` is rewritten from it.

    nice -n 10 python benchmarks/rerank.py --index DIR --runs adapter:1 adapter:0 full:1 --max-train-seconds 600
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LANGS = ["es", "fr", "de", "it", "ja", "zh", "nl"]
FEATURE_MODES = ("features", "features-nomemory", "features+translation", "features+translation-nomemory")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", required=True,
                   help="saved CandidateIndex over hpo-en (`xnorm index`); with an index whose encoder was trained "
                        "on HPO labels (the default hpo-align-e5small) pass --test-concepts too")
    p.add_argument("--train-index", default=None,
                   help="index whose candidates the reranker trains on (default: --index). Use the base-encoder index "
                        "when --index holds an encoder trained on the training labels (its training candidates "
                        "would be easier than any test mention's)")
    p.add_argument("--matched", action="store_true",
                   help="train on the labels of the encoder adapter's dev concepts (--test-concepts' \"dev\" list) + GSC+, "
                        "with --index's own candidates, as test mentions get them; dev: a quarter of those concepts")
    p.add_argument("--test-concepts", default=None, metavar="SPLIT_JSON",
                   help='HPO test mentions = labels of the concepts in this split file\'s "test" list, training '
                        "mentions = labels of all other concepts (e.g. adapters_zoo/hpo-align-e5small/split.json, "
                        "so that an index built with that encoder adapter is tested on concepts it never saw); "
                        "default: the hpo-labels held_out split")
    p.add_argument("--data-root", default=str(HERE.parent.parent / "shared" / "data"))
    p.add_argument("--out", default=str(HERE / "results" / "rerank"))
    p.add_argument("--work-dir", default="/tmp/k1_rerank", help="where trained rerankers are saved")
    p.add_argument("--runs", nargs="*", default=["adapter:1", "adapter:0", "full:1"],
                   help="MODE:LAMBDA; stack:L needs an English language adapter in the zoo; `features` / "
                        "`features-nomemory`: the feature reranker (with / without the annotation memory), "
                        "`features+translation[-nomemory]` with translation tables; "
                        "`lookup`: the training annotations of the exact mention text first, no model")
    p.add_argument("--langs", nargs="*", default=LANGS)
    p.add_argument("--train-per-lang", type=int, default=80)
    p.add_argument("--test-per-lang", type=int, default=120)
    p.add_argument("--gsc-train", type=int, default=200)
    p.add_argument("--gsc-test", type=int, default=300)
    p.add_argument("--dev", type=int, default=80, help="HPO label mentions held out for early stopping")
    p.add_argument("--gsc-test-docs-to-train", type=float, default=0.0, metavar="F",
                   help="move this fraction of GSC+ test documents into training (then GSC+ dev is the dev set)")
    p.add_argument("--gsc-repeat", type=int, default=1, help="repeat the GSC+ training mentions this many times")
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--max-length", type=int, default=32)
    p.add_argument("--context-chars", type=int, default=0, help="context characters each side in a pair (0: none)")
    p.add_argument("--parents", action="store_true", help="candidate texts name the concept's is_a parents")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--eval-every", type=int, default=40)
    p.add_argument("--patience", type=int, default=3, help="dev evaluations without improvement before stopping")
    p.add_argument("--lr", type=float, default=None, help="default: 1e-3 for adapters, 3e-5 for full fine-tuning")
    p.add_argument("--adapter-config", type=json.loads, default=None,
                   help='task adapter config as JSON, e.g. \'{"architecture": "seq_bn", "reduction_factor": 16, '
                        '"leave_out": [0, 1, 2, 3, 4, 5]}\' (leave_out: no adapter, hence no backward pass, '
                        'in those layers)')
    p.add_argument("--missing-gold", choices=["insert", "skip"], default="insert",
                   help="training mentions whose gold is not among the k candidates: inserted in the last slot, or skipped")
    p.add_argument("--pooling", choices=["segments", "mean", "cls"], default="segments", help="scoring head input")
    p.add_argument("--base-model", default="multilingual-e5-small",
                   help="the reranker's base: a model, or an encoder adapter such as hpo-align-e5small (frozen under "
                        "the task adapter; adapter runs only)")
    p.add_argument("--tag", default="", help="suffix of the run names in the table (e.g. a training size)")
    p.add_argument("--max-train-seconds", type=float, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--evaluate", nargs="*", default=[], metavar="NAME=DIR",
                   help="also rerank the test sets with these trained reranker folders (e.g. imported from a GPU "
                        "run by rerank_bundle.py), named NAME in the table")
    p.add_argument("--teacher", default=None, metavar="DIR", help="distil this reranker folder into each run")
    p.add_argument("--teacher-weight", type=float, default=0.5)
    p.add_argument("--mantra", action="store_true",
                   help="also test on the Mantra GSC mentions whose CUI maps to HPO (5 languages, in context)")
    p.add_argument("--xlbel", action="store_true",
                   help="also test on the XL-BEL queries whose CUI maps to HPO, one set per language (10, in context)")
    p.add_argument("--calibrate", action="store_true",
                   help="choose each reranker's generator weight per language on the dev sets, with the test index's "
                        "candidates (xnorm.rerank.calibrate), before testing")
    p.add_argument("--refit", action="store_true",
                   help="feature rerankers: once the dev sets chose the L2, fit again on training + dev mentions (dev "
                        "mentions of --test-concepts' test concepts left out) with it; the refitted one is tested")
    p.add_argument("--merge", nargs="*", default=None,
                   help="only merge the runs of these result JSONs (from parallel invocations) into --out")
    return p.parse_args(argv)


def sample(n_total: int, n: int, seed: int) -> np.ndarray:
    if n_total <= n:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, size=n, replace=False))


def build_sets(args, terminology):
    """(train Examples, dev Examples, {test name: Examples})."""
    from xnorm.benchmark.datasets import build_dataset
    from xnorm.rerank import Examples, examples_from_documents, examples_from_labels

    tests: dict[str, Examples] = {}
    n_train = args.train_per_lang + -(-args.dev // len(args.langs))
    held_rows = None
    if args.test_concepts:
        held_rows = test_concept_rows(args, terminology)
        labels = build_dataset("hpo-labels", {"languages": args.langs, "split": None, "max_per_language": None,
                                              "seed": args.seed}, data_root=args.data_root)
        parts = []
        for lang in args.langs:
            ex = examples_from_documents([d for d in labels.documents if d["lang"] == lang], terminology,
                                         context_chars=0)
            is_test = np.isin(ex.gold, held_rows)
            test, pool = ex[np.flatnonzero(is_test)], ex[np.flatnonzero(~is_test & (ex.gold >= 0))]
            test = test[sample(len(test), args.test_per_lang, args.seed)]
            test.description = f"HPO {lang} labels of {Path(args.test_concepts).name}'s test concepts"
            tests[f"hpo-{lang}"] = test
            parts.append(pool[sample(len(pool), n_train, args.seed + 1)])
        hpo_train = Examples.concat(parts)
        label_source = f"HPO translations, labels of concepts outside {args.test_concepts}'s test list"
    else:
        labels = build_dataset("hpo-labels", {"languages": args.langs, "split": "held_out",
                                              "max_per_language": None, "seed": args.seed}, data_root=args.data_root)
        for lang in args.langs:
            docs = [d for d in labels.documents if d["lang"] == lang]
            docs = [docs[i] for i in sample(len(docs), args.test_per_lang, args.seed)]
            tests[f"hpo-{lang}"] = examples_from_documents(docs, terminology, context_chars=0,
                                                           description=f"HPO {lang} held-out labels")
        ex = labels.extra_names  # labels of the index-half concepts: the training mentions
        parts_t, parts_l, parts_c = [], [], []
        for lang in args.langs:
            rows = np.flatnonzero(ex.langs == lang)
            rows = rows[sample(len(rows), n_train, args.seed + 1)]
            parts_t += ex.texts[rows].tolist()
            parts_l += ex.langs[rows].tolist()
            parts_c += ex.concept_ids[rows].tolist()
        hpo_train = examples_from_labels(parts_t, parts_l, parts_c, terminology)
        label_source = "HPO translations held_out split, index-half labels"
    gsc_dev = build_dataset("gsc-plus", {"split": "dev"}, data_root=args.data_root)
    gsc_test = build_dataset("gsc-plus", {"split": "test"}, data_root=args.data_root)
    test_docs = list(gsc_test.documents)
    in_context = "GSC+ dev"
    if args.gsc_test_docs_to_train > 0:
        moved = sample(len(test_docs), int(round(args.gsc_test_docs_to_train * len(test_docs))), args.seed + 4)
        train_docs = [test_docs[i] for i in moved]
        moved_set = set(moved.tolist())
        test_docs = [d for i, d in enumerate(test_docs) if i not in moved_set]
        gsc_train = examples_from_documents(train_docs, terminology, context_chars=100)
        gsc_train = gsc_train[sample(len(gsc_train), args.gsc_train, args.seed + 2)]
        gsc_dev_ex = examples_from_documents(gsc_dev.documents, terminology, context_chars=100,
                                             description="GSC+ dev split")
        in_context = f"{len(train_docs)} of GSC+ test's {len(gsc_test.documents)} documents"
    else:
        g = examples_from_documents(gsc_dev.documents, terminology, context_chars=100)
        g = g[sample(len(g), args.gsc_train + args.dev // 4, args.seed + 2)]
        perm = np.random.default_rng(args.seed).permutation(len(g))
        gsc_dev_ex, gsc_train = g[perm[:args.dev // 4]], g[perm[args.dev // 4:]]
        gsc_dev_ex.description = "held-out slice of GSC+ dev"
    g = examples_from_documents(test_docs, terminology, context_chars=100, description="GSC+ test")
    tests["gsc-plus-test"] = g[sample(len(g), args.gsc_test, args.seed + 3)]
    if args.mantra:
        mantra = build_dataset("mantra-hpo", {}, data_root=args.data_root)
        tests["mantra-hpo"] = examples_from_documents(mantra.documents, terminology, context_chars=100,
                                                      description="Mantra GSC, mentions whose CUI maps to HPO")
    if args.xlbel:
        xl = build_dataset("xl-bel-hpo", {}, data_root=args.data_root)
        ex = examples_from_documents(xl.documents, terminology, context_chars=100,
                                     description="XL-BEL, queries whose CUI maps to HPO")
        for lang in xl.languages():
            tests[f"xlbel-{lang}"] = ex[np.flatnonzero(np.asarray(ex.mentions.langs) == lang)]
    perm = np.random.default_rng(args.seed).permutation(len(hpo_train))
    hpo_dev, hpo_train = hpo_train[perm[:args.dev]], hpo_train[perm[args.dev:]]
    hpo_dev.description = "held-out slice of the HPO training labels"
    if held_rows is not None:  # no GSC+ training mention of a test concept either
        gsc_train = gsc_train[np.flatnonzero(~np.isin(gsc_train.gold, held_rows))]
    train = Examples.concat([hpo_train] + [gsc_train] * args.gsc_repeat)
    train.description = (f"{label_source} ({', '.join(args.langs)}; "
                         f"up to {args.train_per_lang}/lang) + {len(gsc_train)} GSC+ mentions in context from "
                         f"{in_context}" + (f" (x{args.gsc_repeat})" if args.gsc_repeat > 1 else "")
                         + f", seed {args.seed}")
    dev = {"hpo-labels": hpo_dev, "gsc-plus": gsc_dev_ex}
    return train, dev, tests


def _is_gsc(ex) -> np.ndarray:
    """The mentions with context (GSC+), as opposed to bare HPO labels."""
    from xnorm.rerank.features import has_context

    return has_context(ex.mentions)


def matched_split(train, dev, terminology, split_json: str, seed: int):
    """(plain, matched, matched source, matched_dev): training data whose candidates look like test candidates.

    The HPO labels of the encoder adapter's DEV concepts (``split_json``'s "dev" list: concepts it never trained
    on, as the test concepts) get the test index's own candidates, as test mentions do; the labels of a seeded quarter
    of those concepts are the dev set, the rest + the GSC+ training mentions the matched training set (source per
    mention: 0 label, 1 GSC+). ``plain``: the other HPO training labels (for the base-encoder index).
    """
    from xnorm.rerank import Examples

    rows = np.asarray([terminology.concept_index(c) for c in json.loads(Path(split_json).read_text())["dev"]
                       if c in terminology])
    gsc = _is_gsc(train)
    hpo = Examples.concat([train[np.flatnonzero(~gsc)], dev["hpo-labels"]])
    mine = np.isin(hpo.gold, rows)
    held = np.isin(hpo.gold, np.random.default_rng(seed).permutation(rows)[:len(rows) // 4])
    matched_dev = hpo[np.flatnonzero(mine & held)]
    matched_dev.description = "labels of a quarter of the encoder adapter's dev concepts"
    matched = Examples.concat([hpo[np.flatnonzero(mine & ~held)], train[np.flatnonzero(gsc)]])
    matched.description = (f"labels of the other dev concepts of the encoder adapter + {int(gsc.sum())} GSC+ training "
                           "mentions")
    source = np.r_[np.zeros(int((mine & ~held).sum()), np.int8), np.ones(int(gsc.sum()), np.int8)]
    plain = hpo[np.flatnonzero(~mine)]
    plain.description = "HPO training labels of the encoder adapter's training concepts"
    return plain, matched, source, matched_dev


def _bits(flags) -> str:
    return "".join("1" if f else "0" for f in flags)


def metrics(cands, ex, terminology=None) -> dict:
    """acc@1, recall@k and MRR of ``cands`` against the examples' gold rows (any of several counts); with the
    ``terminology`` the rows index, also lenient@1 (the first answer within one is_a level of a gold concept)."""
    hit = ex.hits(cands.concepts)
    first = np.where(hit.any(1), hit.argmax(1), -1)
    out = {"acc1": float((first == 0).mean()), "recall_k": float((first >= 0).mean()),
           "mrr": float(np.where(first >= 0, 1.0 / np.maximum(first + 1, 1), 0.0).mean()), "n": int(len(ex)),
           "hits1": _bits(first == 0)}  # per mention, for the paired tests
    hierarchy = hierarchy_for(terminology)
    if hierarchy is not None and len(ex):
        from xnorm.eval.hierarchy import lineage

        top1 = cands.concept_ids(terminology)[:, 0]
        lenient = lineage(top1, ex.gold_ids(terminology), hierarchy)["lenient"]
        out.update(lenient1=float(lenient.mean()), lenient_hits1=_bits(lenient))
    return out


def hierarchy_for(terminology):
    """The is_a hierarchy for scoring near-misses: the terminology's own, or (for an index saved before
    terminologies kept is_a edges) the embedded hpo-en's when the terminology is HPO; None otherwise."""
    if terminology is None:
        return None
    if len(terminology.is_a):
        return terminology
    if not len(terminology) or not str(terminology.concept_ids[0]).startswith("HP:"):
        return None
    return _hpo_en()


@functools.lru_cache(maxsize=1)
def _hpo_en():
    from xnorm.terminology import load_terminology

    return load_terminology("hpo-en")


def _hits(entry: dict, key: str = "hits1") -> np.ndarray:
    return np.frombuffer(entry[key].encode(), dtype=np.uint8) == ord("1")


def with_pooled(results: dict, prefix: str = "xlbel-", name: str = "xlbel (all)") -> dict:
    """The table's test sets plus one pooling every ``prefix*`` set (when they carry per-mention hits)."""
    cand = dict(results.get("candidates", {}))
    parts = [t for t in cand if t.startswith(prefix)]
    if len(parts) < 2 or not all("hits1" in cand[t] for t in parts):
        return results

    def pool(entries: dict) -> dict | None:
        if not all(t in entries and "hits1" in entries[t] for t in parts):
            return None
        n = sum(entries[t]["n"] for t in parts)
        out = {"acc1": sum(entries[t]["acc1"] * entries[t]["n"] for t in parts) / n, "n": n,
               "recall_k": sum(entries[t].get("recall_k", 0) * entries[t]["n"] for t in parts) / n,
               "hits1": "".join(entries[t]["hits1"] for t in parts)}
        if all("lenient_hits1" in entries[t] for t in parts):
            out["lenient_hits1"] = "".join(entries[t]["lenient_hits1"] for t in parts)
            out["lenient1"] = float(_hits(out, "lenient_hits1").mean())
        return out

    cand[name] = pool(cand)
    runs = {}
    for run_name, r in results.get("runs", {}).items():
        pooled = pool(r.get("tests", {})) if "tests" in r else None
        runs[run_name] = {**r, "tests": {**r["tests"], name: pooled}} if pooled else r
    return {**results, "candidates": cand, "runs": runs}


def paired(run_entry: dict, cand_entry: dict, key: str = "hits1") -> tuple[int, int, float] | None:
    """Mentions won / lost at acc@1 (``key="lenient_hits1"``: lenient@1) against the candidates, and the
    approximate-randomization p-value."""
    from xnorm.eval.stats import approximate_randomization, won_lost

    if key not in run_entry or key not in cand_entry:
        return None
    a, b = _hits(cand_entry, key), _hits(run_entry, key)
    won, lost = won_lost(a, b)
    return won, lost, approximate_randomization(a.astype(float), b.astype(float), 10000, 0).p_value


def lang_adapter_for(lang: str):
    try:
        from xnorm import zoo
    except ImportError:
        return None
    hit = zoo.find_adapter("language-adapter", language=lang, base_model="multilingual-e5-small")
    return None if hit is None else str(hit.path)


def run_one(args, name, mode, lam, index, train_index, train, dev, tests, test_cands) -> dict:
    from xnorm.rerank import train_reranker

    if mode in FEATURE_MODES:
        return run_features(args, name, index, train, dev, tests, test_cands, memory=not mode.endswith("-nomemory"),
                            translation=translation_model(args, train, dev) if "+translation" in mode else None)
    if mode == "lookup":
        return run_lookup(index, train, tests, test_cands)

    lang_adapter = None
    if mode == "stack":
        path = lang_adapter_for("en")
        if path is None:
            return {"skipped": "no English language adapter in the zoo (K2's train-lang-adapter)"}
        lang_adapter = ("en", path)
    out_dir = Path(args.work_dir) / name
    rr, report = train_reranker(
        train_index, train, out_dir, mode=mode, lam=lam, k=args.k, dev=dev, epochs=args.epochs,
        base_model=args.base_model,
        batch_size=args.batch_size, seed=args.seed, eval_every=args.eval_every, patience=args.patience, lr=args.lr,
        adapter_config=args.adapter_config, missing_gold=args.missing_gold, pooling=args.pooling,
        lang_adapter=lang_adapter,
        pair_settings={"max_length": args.max_length, "context_chars": args.context_chars, "parents": args.parents},
        threads=args.threads, max_seconds=args.max_train_seconds, calibrate=False, teacher=args.teacher,
        teacher_weight=args.teacher_weight, show_progress=True)
    if args.calibrate:
        calibrate(rr, index, dev, args.k)
    return {"mode": mode, "lambda": lam, "base_model": args.base_model, "train": {k: v for k, v in report.items() if k != "losses"},
            "loss_first_20": float(np.mean(report["losses"][:20])), "loss_last_20": float(np.mean(report["losses"][-20:])),
            "size_on_disk_bytes": int((out_dir / "weights.safetensors").stat().st_size),
            "lang_adapters_used": sorted(rr.lang_adapters), **rerank_tests(rr, index, tests, test_cands)}


def test_concept_rows(args, terminology) -> np.ndarray:
    """Rows of --test-concepts' test concepts (none without it)."""
    if not args.test_concepts:
        return np.zeros(0, dtype=np.int64)
    held = json.loads(Path(args.test_concepts).read_text())["test"]
    return np.asarray([terminology.concept_index(c) for c in held if c in terminology], dtype=np.int64)


def translation_model(args, train, dev):
    """Word-piece translation tables from the hpo-multilingual terminology's names, leaving out every concept a
    training, dev or test mention is annotated with (the split's dev and test concepts, GSC+'s concepts only
    in English, which has no table)."""
    from xnorm.rerank import TranslationModel
    from xnorm.terminology import load_terminology

    split = json.loads(Path(args.test_concepts).read_text())
    t = time.perf_counter()
    model = TranslationModel.from_terminology(load_terminology("hpo-multilingual"), languages=args.langs,
                                              exclude=set(split["dev"]) | set(split["test"]))
    print(f"  translation tables {model.info['pairs']} in {time.perf_counter() - t:.0f} s", flush=True)
    return model


def run_features(args, name, index, train, dev, tests, test_cands, memory: bool, translation=None) -> dict:
    """The feature reranker (xnorm.rerank.FeatureReranker): L2 chosen on the dev sets; its figures in the shape the
    cost table reads (one "step" over every training mention with the gold among its candidates)."""
    from xnorm.rerank import Examples, FeatureReranker

    rr, report = FeatureReranker.train(index, train, k=args.k, dev=dev, memory=memory, translation=translation)
    if args.refit:  # the chosen L2, every labelled mention: training + dev
        held = test_concept_rows(args, index.terminology)
        full = Examples.concat([train] + [ex[np.flatnonzero(~np.isin(ex.gold, held))] for ex in dev.values()])
        full.description = f"{train.description} + the dev sets (refit)"
        rr, refit = FeatureReranker.train(index, full, k=args.k, l2=(report["l2"]["shared"], report["l2"]["in_domain"]),
                                          memory=memory, translation=translation)
        report["train_seconds"] += refit["train_seconds"]
        report["trained_on"] = refit["trained_on"]
        print(f"  refit on {len(full)} training + dev mentions", flush=True)
    out_dir = rr.save(Path(args.work_dir) / name)
    chosen, sets = report["dev_chosen"], list(report["dev_candidates"])
    l2 = f"l2 {report['l2']['shared']:g} / {report['l2']['in_domain']:g}"
    n_weights = int(rr.weights.size)
    train_info = {"parameters": {"trained": n_weights, "total": n_weights}, "steps": 1,
                  "batch_size": report["trained_on"], "train_seconds": report["train_seconds"],
                  "seconds_per_mention": report["train_seconds"] / max(1, report["trained_on"]),
                  "best_dev_acc1": float(np.mean([chosen[n] for n in sets])),
                  "best_dev_gain": min(chosen[n] - report["dev_candidates"][n] for n in sets),
                  "best_step": l2,
                  "dev_acc1_candidates": float(np.mean([report["dev_candidates"][n] for n in sets])),
                  "dev_per_l2": report["dev"], "remembered_annotations": len(rr.memory)}
    print(f"  trained in {report['train_seconds']:.1f} s, {l2}", flush=True)
    return {"mode": "features", "lambda": None, "base_model": "none (features)", "train": train_info,
            "loss_first_20": float("nan"), "loss_last_20": float("nan"),
            "size_on_disk_bytes": sum(f.stat().st_size for f in out_dir.iterdir()),
            "lang_adapters_used": [], **rerank_tests(rr, index, tests, test_cands)}


class AnnotationLookup:
    """The baseline the feature reranker's memory must beat: a candidate annotated for this exact mention text (same
    language) in training moves first (the most often annotated one first); the others keep the generator's order."""

    def __init__(self, memory) -> None:
        self.memory = memory
        self.info: dict = {}

    def rerank(self, mentions, candidates, terminology):
        from xnorm.rerank import reorder

        _, counts = self.memory.lookup(mentions, candidates.concepts, terminology)
        return reorder(candidates, np.where(candidates.concepts >= 0, counts, -np.inf))


def run_lookup(index, train, tests, test_cands) -> dict:
    from xnorm.rerank.features import CorpusMemory

    t = time.perf_counter()
    memory = CorpusMemory.from_examples(train, index.terminology)
    seconds = time.perf_counter() - t
    train_info = {"parameters": {"trained": 0, "total": 0}, "steps": 1, "batch_size": len(train),
                  "train_seconds": seconds, "seconds_per_mention": seconds / max(1, len(train)),
                  "best_step": "-", "remembered_annotations": len(memory)}
    return {"mode": "lookup", "lambda": None, "base_model": "none (lookup)", "train": train_info,
            "loss_first_20": float("nan"), "loss_last_20": float("nan"), "size_on_disk_bytes": 0,
            **rerank_tests(AnnotationLookup(memory), index, tests, test_cands)}


def calibrate(rr, index, dev, k: int) -> None:
    """The reranker's generator weight from the dev sets, with the (test) index's candidates."""
    from xnorm.rerank import candidates_for
    from xnorm.rerank.calibrate import calibrate_generator_weight

    gw = calibrate_generator_weight(rr, {n: (ex, candidates_for(index, ex, k)) for n, ex in dev.items()},
                                    index.terminology)
    print(f"  generator weight: default {gw['default']:g}, per language {gw['languages']}", flush=True)


def rerank_tests(rr, index, tests, test_cands) -> dict:
    """Test metrics of a reranker, and its inference time per 1k mentions."""
    res: dict = {"tests": {}, "generator_weight": rr.info.get("generator_weight")}
    n_inf, t_inf = 0, 0.0
    for tname, ex in tests.items():
        t = time.perf_counter()
        out = rr.rerank(ex.mentions, test_cands[tname], index.terminology)
        t_inf += time.perf_counter() - t
        n_inf += len(ex)
        res["tests"][tname] = metrics(out, ex, index.terminology)
        if hasattr(rr, "adapter_for"):
            res["tests"][tname]["lang_adapter"] = rr.adapter_for(str(ex.mentions.langs[0]) if len(ex) else "en")
        print(f"  {tname}: acc@1 {res['tests'][tname]['acc1']:.3f}", flush=True)
    res["inference_seconds_per_1k_mentions"] = round(1000 * t_inf / max(1, n_inf), 1)
    return res


def evaluate_one(folder: str, index, tests, test_cands, dev=None, k: int = 8) -> dict:
    """A trained reranker folder on the test sets (calibrated on ``dev`` first, if given); its training figures
    from its manifest."""
    from xnorm.rerank import Reranker

    rr = Reranker.load(folder)
    if dev is not None:
        calibrate(rr, index, dev, k)
    # train_reranker's report keys (rerank_bundle.py import writes them too)
    train = {**rr.info.get("training", {}), "parameters": rr.parameter_counts()}
    history = rr.info.get("dev_metrics") or []
    losses = [h["loss_last_50"] for h in history if "loss_last_50" in h]
    return {"mode": rr.mode, "lambda": rr.info.get("lam"), "base_model": rr.base_model, "folder": folder,
            "train": train, "loss_first_20": losses[0] if losses else float("nan"),
            "loss_last_20": losses[-1] if losses else train.get("final_loss", float("nan")),
            "size_on_disk_bytes": int((Path(folder) / "weights.safetensors").stat().st_size),
            **rerank_tests(rr, index, tests, test_cands)}


def _num(x) -> str:
    return "—" if x is None else f"{x:.1f}" if x < 10 else f"{x:.0f}"


def _loss(x) -> str:
    return "—" if x is None or x != x else f"{x:.3f}"  # NaN: not recorded


def _base_models(runs: dict) -> str:
    bases: dict = {}
    for name, r in runs.items():
        bases.setdefault(r.get("base_model", "multilingual-e5-small"), []).append(name)
    if list(bases) in ([], ["multilingual-e5-small"]):
        return "Base model of every reranker: the embedded multilingual-e5-small (frozen except in `full`)."
    return "Base models (frozen except in `full`): " + "; ".join(
        f"`{b}` for {', '.join(names)}" for b, names in bases.items()) + "."


def _score_table(tests: list, cand: dict, runs: dict, key: str, hits_key: str) -> list[str]:
    """Markdown rows: the candidates' ``key`` per test set, then each run's with its change and paired test."""
    lines = ["| pipeline | " + " | ".join(tests) + " |", "|---" * (len(tests) + 1) + "|",
             "| candidates only | " + " | ".join(f"{cand[t][key]:.3f}" for t in tests) + " |"]
    for name, r in runs.items():
        if "skipped" in r:
            lines.append(f"| {name} | skipped: {r['skipped']} |")
            continue
        cells = []
        for t in tests:
            if key not in r["tests"].get(t, {}):
                cells.append("—")
                continue
            v = r["tests"][t][key]
            d = v - cand[t][key]
            test = paired(r["tests"][t], cand[t], hits_key)
            cells.append(f"{v:.3f} ({d:+.3f})" if test is None else
                         f"{v:.3f} ({d:+.3f}; {test[0]}/{test[1]}{'*' if test[2] < 0.05 else ''})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def render(results: dict) -> str:
    results = with_pooled(results)
    meta = results.get("meta", {})
    runs = results.get("runs", {})
    tests = list(results.get("candidates", {}))
    cand = results.get("candidates", {})
    lines = ["# Reranker ablation (issue 6)", "",
             f"Machine: {meta.get('machine', '?')} — **shared with other jobs**; times are indicative, compare "
             "them only within this table.", "",
             f"Index: `{meta.get('index')}` "
             f"({meta.get('index_describe', 'English HPO names, TF-IDF + dense e5-small fused')}); "
             + (f"training and dev candidates from `{meta['train_index']}`; "
                if meta.get("train_index", meta.get("index")) != meta.get("index") else "") +
             f"k = {meta.get('k')} candidates reranked; pair max_length {meta.get('max_length')}. "
             + _base_models(runs), "",
             f"Training: {meta.get('train_description')}; dev (early stopping): "
             + ("; ".join(f"{n}: {d}" for n, d in meta["dev_sets"].items()) + " (selection: the worse of the two "
                "sets' acc@1 gains over the candidates)" if "dev_sets" in meta else f"{meta.get('dev_size')} mentions")
             + ". "
             f"Test: per language {meta.get('test_per_lang')} "
             + (f"labels of the test concepts of `{meta['test_concepts']}`" if meta.get("test_concepts")
                else "held-out HPO labels (OFFICIAL)") + ", GSC+ test "
             f"{meta.get('gsc_test')} mentions in context (seeded samples)"
             + (f"; Mantra GSC: all {cand['mantra-hpo']['n']} mentions whose CUI maps to HPO, in context"
                if "mantra-hpo" in cand else "")
             + ("; XL-BEL (`xlbel-*`): every query whose CUI maps to HPO, in its Wikipedia sentence, per language"
                if any(t.startswith("xlbel-") for t in cand) else "") + ".", "",
             "## acc@1", ""]
    table = _score_table(tests, cand, runs, "acc1", "hits1")
    table.insert(3, f"| (recall@{meta.get('k')}: the ceiling) | "  # below the candidates' row
                 + " | ".join(f"{cand[t]['recall_k']:.3f}" for t in tests) + " |")
    lines += table
    if any("hits1" in c for c in cand.values()):
        lines += ["", "In parentheses: the change against the candidates, then the mentions it turned right / wrong "
                  "at acc@1; `*`: two-sided approximate-randomization p < 0.05 (10,000 shuffles, seed 0). Without a "
                  "`*` the change is within what chance moves on that many mentions."]
    lenient = [t for t in tests if "lenient1" in cand[t]]
    if lenient:
        lines += ["", "## lenient@1", "", "The first answer is a gold concept or its direct is_a parent or child "
                  "(hp.obo; `xnorm.eval.hierarchy`): how many of a change's mentions are granularity slips. Same "
                  "notation as above.", ""]
        lines += _score_table(lenient, cand, runs, "lenient1", "lenient_hits1")
    lines += ["", "## Cost", "", "| run | trained params | total params | weights on disk | train mentions seen | "
              "train time | train ms / mention | inference s / 1k mentions (k candidates each) | best dev acc@1 (step) | "
              "loss first→last 20 steps |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in runs.items():
        if "skipped" in r:
            continue
        tr = r["train"]
        lines.append(
            f"| {name} | {tr['parameters']['trained']:,} | {tr['parameters']['total']:,} | "
            f"{r['size_on_disk_bytes'] / 1e6:.2f} MB | {tr['steps'] * tr['batch_size']:,} | {tr['train_seconds']:.0f} s | "
            f"{1000 * tr['seconds_per_mention']:.1f} | {_num(r.get('inference_seconds_per_1k_mentions'))} | "
            + (f"{tr['best_dev_acc1']:.3f}" if "best_dev_acc1" in tr else "—")
            + (f", worst-set gain {tr['best_dev_gain']:+.3f}" if "best_dev_gain" in tr else "")
            + f" ({tr.get('best_step', '-')}) | "
            f"{_loss(r['loss_first_20'])} → {_loss(r['loss_last_20'])} |")
    lines += ["", "Dev acc@1 of the candidates alone (same dev slice): "
              + ", ".join(f"{n}: {r['train'].get('dev_acc1_candidates', float('nan')):.3f}"
                          for n, r in runs.items()
                          if "skipped" not in r and "dev_acc1_candidates" in r["train"]), ""]
    weights = {n: r["generator_weight"] for n, r in runs.items() if r.get("generator_weight")}
    if weights:
        lines += ["Generator weights (`xnorm.rerank.calibrate`, chosen on the dev sets): " + "; ".join(
            f"{n}: default {gw['default']:g}" + "".join(f", {lang} {w:g}" for lang, w in sorted(gw["languages"].items()))
            for n, gw in weights.items()), ""]
    lines += results.get("notes", [])
    return "\n".join(lines) + "\n"


def merge(paths, out) -> None:
    """One table from several invocations' JSONs (same data and settings, different runs)."""
    merged: dict = {}
    for p in paths:
        r = json.loads(Path(p).read_text())
        runs = merged.get("runs", {})
        merged.update({k: v for k, v in r.items() if k != "runs"})
        merged["runs"] = {**runs, **r.get("runs", {})}
    Path(out).with_suffix(".json").write_text(json.dumps(merged, indent=2, ensure_ascii=False))
    Path(out).with_suffix(".md").write_text(render(merged))


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.merge:
        merge(args.merge, args.out)
        return
    import torch

    torch.set_num_threads(args.threads)
    from xnorm.candidates import CandidateIndex

    out_json = Path(args.out).with_suffix(".json")
    results = json.loads(out_json.read_text()) if out_json.is_file() else {}
    index = CandidateIndex.load(args.index, verify=False)
    train_index = CandidateIndex.load(args.train_index, verify=False) if args.train_index else index
    train, dev, tests = build_sets(args, index.terminology)
    if args.matched:
        if not args.test_concepts or args.train_index:
            raise SystemExit("--matched needs --test-concepts (the encoder adapter's split.json) and no --train-index")
        _, train, _, hpo_dev = matched_split(train, dev, index.terminology, args.test_concepts, args.seed)
        dev = {"hpo-labels": hpo_dev, "gsc-plus": dev["gsc-plus"]}
    t = time.perf_counter()
    test_cands = {name: index.candidates(ex.mentions, args.k) for name, ex in tests.items()}
    print(f"candidates for {sum(len(e) for e in tests.values())} test mentions in {time.perf_counter() - t:.0f} s",
          flush=True)
    results["meta"] = {"index": args.index, "index_describe": index.describe(),
                       "train_index": args.train_index or args.index, "k": args.k, "max_length": args.max_length,
                       "train_description": train.description, "train_size": len(train),
                       "dev_sets": {n: f"{len(ex)} mentions, {ex.description}" for n, ex in dev.items()},
                       "test_per_lang": args.test_per_lang, "test_concepts": args.test_concepts,
                       "gsc_test": args.gsc_test, "seed": args.seed,
                       "machine": f"{platform.machine()}, {os.cpu_count()} visible CPUs, torch threads {args.threads}, "
                                  "no GPU" if not torch.cuda.is_available() else "GPU"}
    results["candidates"] = {name: metrics(test_cands[name], ex, index.terminology) for name, ex in tests.items()}
    results.setdefault("runs", {})
    for spec in args.runs:
        mode, _, lam = spec.partition(":")
        name = f"{mode}{args.tag}" if mode in FEATURE_MODES + ("lookup",) else \
            f"{mode} λ={float(lam):g}{args.tag}"
        print(f"run {name}", flush=True)
        results["runs"][name] = run_one(args, name.replace(" ", "_").replace("λ=", "lam"), mode, float(lam or 0),
                                        index,
                                        train_index, train, dev, tests, test_cands)
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
        Path(args.out).with_suffix(".md").write_text(render(results))
    for spec in args.evaluate:
        name, _, folder = spec.rpartition("=")  # the name may hold "=" (λ=0)
        print(f"evaluate {name}", flush=True)
        results["runs"][name] = evaluate_one(folder, index, tests, test_cands, dev if args.calibrate else None,
                                             args.k)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    Path(args.out).with_suffix(".md").write_text(render(results))


if __name__ == "__main__":
    sys.exit(main())
