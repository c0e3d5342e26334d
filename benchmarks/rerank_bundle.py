"""Fine-tune a full reranker on a lent GPU machine (issue 6): a bundle is exported here, trained there, imported here.

The GPU machine (the ``device`` tool) receives at most 64 MiB, the repository included, and has neither the
embedded model nor xnorm's dependencies, so:

``export`` (here)  the sets of ``rerank.py`` (same seeds, same test mentions) with every training label instead of
                   a sample, plus English synonyms as weakly supervised mentions (test concepts left out), and their
                   top-K candidates (training and dev from ``--train-index``, test from ``--index``); mentions and
                   candidate descriptions tokenized ONCE each (a pair is assembled on the device exactly as the
                   tokenizer builds it: checked here on every dev/test pair and a training sample); the base model
                   (multilingual-e5-small) with its word embeddings pruned to the tokens used, linear weights and
                   embedding rows as int8 + per-row scale for the trip.
``benchmarks/rerank_device.py`` (there)  trains variants at once (mode ``full``: every layer but the word
                   embeddings, xnorm's pooling + head + rank-regularized loss) and returns the best variant by dev.
``import`` (here)  writes that variant as an ``xnorm train-reranker --mode full`` folder over the real base model
                   (``xnorm link --reranker DIR`` and ``rerank.py --evaluate`` load it).

    python benchmarks/rerank_bundle.py export --index IDX --train-index PLAIN --out .gpu/rerank
    (device) python3 benchmarks/rerank_device.py --bundle .gpu/rerank --out $OUT --seconds 300 --variant a:5e-5:0:8:64
    python benchmarks/rerank_bundle.py import --result FILES_AT --bundle .gpu/rerank --out RUNS/reranker-gpu
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SETS_DEV = ("dev_hpo-labels", "dev_gsc-plus")


# ---- pair assembly (numpy only: the device runs it too) ------------------------------------------------------
def truncated_lengths(n1: np.ndarray, n2: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Lengths the fast tokenizers keep of a pair's two sides under ``truncation='longest_first'``: when the pair
    is too long the longer side is cut to the room left by the shorter, and when both exceed half the room each
    keeps half (the second-longest side the odd token)."""
    short, long_ = np.minimum(n1, n2), np.maximum(n1, n2)
    long_cut = np.where(short > budget, short, np.maximum(short, budget - short))
    both = short + long_cut > budget
    short_cut = np.where(both, budget // 2, short)
    long_cut = np.where(both, budget // 2 + budget % 2, long_cut)
    swap = n1 > n2
    t1 = np.where(swap, long_cut, short_cut)
    t2 = np.where(swap, short_cut, long_cut)
    fits = n1 + n2 <= budget
    return np.where(fits, n1, np.minimum(n1, t1)), np.where(fits, n2, np.minimum(n2, t2))


def assemble_pairs(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], pair_a: np.ndarray,
                   pair_b: np.ndarray, template: dict, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids [P, longest] and segments (0 first side, 1 second side, -1 special / pad) of the pairs
    ``(a[pair_a], b[pair_b])``; ``a``/``b``: ragged token ids as (flat, offsets) without special tokens;
    ``template``: ``prefix``/``middle``/``suffix`` special ids and ``pad``."""
    pre, mid, suf = (np.asarray(template[x], dtype=np.int64) for x in ("prefix", "middle", "suffix"))
    budget = max_length - len(pre) - len(mid) - len(suf)
    (a_flat, a_off), (b_flat, b_off) = a, b
    t1, t2 = truncated_lengths(np.diff(a_off)[pair_a], np.diff(b_off)[pair_b], budget)
    total = len(pre) + t1 + len(mid) + t2 + len(suf)
    width = int(total.max()) if len(total) else 0
    j = np.arange(width)[None, :]
    start_a, start_m = len(pre), len(pre) + t1[:, None]
    start_b = start_m + len(mid)
    start_s = start_b + t2[:, None]
    ids = np.full((len(pair_a), width), int(template["pad"]), dtype=np.int64)
    seg = np.full(ids.shape, -1, dtype=np.int8)
    ids[:, :len(pre)] = pre
    in_a = (j >= start_a) & (j < start_m)
    in_b = (j >= start_b) & (j < start_s)
    src_a = np.clip(a_off[pair_a][:, None] + j - start_a, 0, max(len(a_flat) - 1, 0))
    src_b = np.clip(b_off[pair_b][:, None] + j - start_b, 0, max(len(b_flat) - 1, 0))
    ids = np.where(in_a, a_flat[src_a], ids)
    ids = np.where(in_b, b_flat[src_b], ids)
    for specials, start in ((mid, start_m), (suf, start_s)):
        for i, t in enumerate(specials):
            ids = np.where(j == start + i, t, ids)
    seg[in_a], seg[in_b] = 0, 1
    return ids, seg


# ---- export ----------------------------------------------------------------------------------------------------
def _ragged(tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    flat = np.fromiter((t for x in ids for t in x), dtype=np.int64, count=int(lengths.sum()))
    return flat, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def _template(tokenizer) -> dict:
    built = tokenizer.build_inputs_with_special_tokens([-1], [-2])
    a, b = built.index(-1), built.index(-2)
    return {"prefix": built[:a], "middle": built[a + 1:b], "suffix": built[b + 1:], "pad": tokenizer.pad_token_id}


def quantize_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 rows and their fp32 scales (row = int8 * scale)."""
    scale = np.maximum(np.abs(w).max(1, keepdims=True), 1e-12) / 127.0
    return np.round(w / scale).astype(np.int8), scale.astype(np.float32)


def export(args: argparse.Namespace) -> None:
    from safetensors.numpy import save_file
    from transformers import AutoModel

    import rerank
    from xnorm.candidates import CandidateIndex
    from xnorm.models.registry import resolve_model
    from xnorm.models.tokenizers import load_tokenizer
    from xnorm.rerank import candidates_for, examples_from_synonyms, place_gold
    from xnorm.rerank.model import DEFAULT_BASE, DEFAULT_PAIRS
    from xnorm.rerank.pairs import CandidateTexts, PairEncoder

    t0 = time.perf_counter()
    index = CandidateIndex.load(args.index, verify=False)
    train_index = CandidateIndex.load(args.train_index, verify=False)
    term = index.terminology
    assert np.array_equal(term.concept_ids, train_index.terminology.concept_ids), "indexes over different terminologies"
    rargs = rerank.parse_args(["--index", args.index, "--test-concepts", args.test_concepts, "--train-per-lang",
                               str(args.train_per_lang), "--dev", str(args.dev), "--test-per-lang",
                               str(args.test_per_lang), "--gsc-test", str(args.gsc_test), "--gsc-train", "2000",
                               "--gsc-test-docs-to-train", "0.5", "--seed", str(args.seed),
                               "--data-root", args.data_root])
    train, dev, tests = rerank.build_sets(rargs, term)
    held = json.loads(Path(args.test_concepts).read_text())["test"]
    held_rows = np.asarray([term.concept_index(c) for c in held if c in term])
    train_concepts = np.setdiff1d(np.arange(len(term)), held_rows)
    synonyms = examples_from_synonyms(term, languages=["en"], max_examples=args.synonyms, seed=args.seed,
                                      concepts=train_concepts)
    sources = {"train": (train, train_index, rerank._is_gsc(train).astype(np.int8)),
               "train_synonyms": (synonyms, train_index, np.full(len(synonyms), 2, np.int8)),
               **{f"dev_{n}": (ex, train_index, None) for n, ex in dev.items()},
               **{f"test_{n}": (ex, index, None) for n, ex in tests.items()}}
    if args.matched:  # see rerank.matched_split
        plain, matched, source, matched_dev = rerank.matched_split(train, dev, term, args.test_concepts, args.seed)
        sources.update({"train": (plain, train_index, np.zeros(len(plain), np.int8)),
                        "train_matched": (matched, index, source),
                        "dev_hpo-labels": (matched_dev, index, None), "dev_gsc-plus": (dev["gsc-plus"], index, None)})

    model_path = resolve_model(DEFAULT_BASE)
    tokenizer = load_tokenizer(model_path)
    pairs = {**DEFAULT_PAIRS, "max_length": args.max_length, "parents": args.parents}
    encoder = PairEncoder(tokenizer, term, **pairs)
    describe = CandidateTexts(term, pairs["n_names"], pairs["semantic_types"], pairs["parents"])
    texts: dict[tuple[int, str], int] = {}  # (concept row, language) -> candidate text row
    arrays: dict[str, np.ndarray] = {}
    mention_texts: list[str] = []
    info_sets = {}
    for name, (ex, idx, source) in sources.items():
        t = time.perf_counter()
        known = ex.known() if name.startswith("train") else ex
        cands = candidates_for(idx, known, args.k)
        if name.startswith("train"):  # the gold must be among the K candidates to be learnt from
            cands, col, keep = place_gold(cands, known.gold, "skip")
            cands, col, known, source = cands[keep], col[keep], known[keep], source[ex.gold >= 0][keep]
        else:  # any of a mention's gold concepts counts (one CUI may map to several HPO terms)
            hit = known.hits(cands.concepts)
            col = np.where(hit.any(1), hit.argmax(1), -1)
            arrays[f"{name}_gold_mask"] = hit.astype(np.int8)
        langs = [str(x) if x else "en" for x in known.mentions.langs]
        table = np.full(cands.concepts.shape, -1, dtype=np.int32)
        for r, c in zip(*np.nonzero(cands.concepts >= 0)):
            key = (int(cands.concepts[r, c]), langs[r])
            table[r, c] = texts.setdefault(key, len(texts))
        first = len(mention_texts)
        mention_texts += encoder.mention_sides(known.mentions)
        arrays[f"{name}_mention"] = np.arange(first, len(mention_texts), dtype=np.int32)
        arrays[f"{name}_text"] = table
        arrays[f"{name}_scores"] = np.where(cands.concepts >= 0, cands.scores, 0).astype(np.float32)
        arrays[f"{name}_gold"] = col.astype(np.int8)
        arrays[f"{name}_lang"] = np.asarray(langs, dtype="U3")
        if source is not None:
            arrays[f"{name}_source"] = source
        info_sets[name] = {"mentions": int(len(known)), "dropped_gold_not_in_top_k": int(len(ex.known()) - len(known))
                           if name.startswith("train") else 0,
                           "description": known.description or ex.description,
                           "acc1_candidates": round(float((col == 0).mean()), 4),
                           "recall_8": round(float(((col >= 0) & (col < 8)).mean()), 4),
                           "recall_k": round(float((col >= 0).mean()), 4), "seconds": round(time.perf_counter() - t, 1)}
        print(name, info_sets[name], flush=True)
    keys = sorted(texts, key=texts.get)
    candidate_texts = [describe.text(c, lang) for c, lang in keys]
    a, b = _ragged(tokenizer, mention_texts), _ragged(tokenizer, candidate_texts)
    template = _template(tokenizer)

    # every dev/test pair and a training sample assembled as the device will, against the tokenizer itself
    checked = 0
    rng = np.random.default_rng(args.seed)
    for name in sources:
        rows, cols = np.nonzero(arrays[f"{name}_text"] >= 0)
        if name.startswith("train"):
            pick = rng.choice(len(rows), size=min(len(rows), 20000), replace=False)
            rows, cols = rows[pick], cols[pick]
        pa, pb = arrays[f"{name}_mention"][rows], arrays[f"{name}_text"][rows, cols]
        ids, seg = assemble_pairs(a, b, pa, pb, template, args.max_length)
        for s in range(0, len(pa), 4096):
            batch = encoder.tokenize([mention_texts[i] for i in pa[s:s + 4096]],
                                     [candidate_texts[i] for i in pb[s:s + 4096]])
            want, want_seg = batch["input_ids"].numpy(), batch["segments"].numpy()
            got, got_seg = ids[s:s + 4096, :want.shape[1]], seg[s:s + 4096, :want.shape[1]]
            if got.shape != want.shape or not (np.array_equal(got, want) and np.array_equal(got_seg, want_seg)):
                bad = np.flatnonzero((got != want).any(1) | (got_seg != want_seg).any(1))[:1] + s
                sys.exit(f"{name}: assembled pair {bad} differs from the tokenizer's: "
                         f"{ids[bad[0]].tolist()} vs {want[bad[0] - s].tolist()}")
        checked += len(pa)
    print(f"{checked:,} assembled pairs identical to the tokenizer's", flush=True)

    vocab = np.unique(np.concatenate([a[0], b[0], [t for k in ("prefix", "middle", "suffix") for t in template[k]],
                                      [template["pad"]]]))
    remap = lambda x: np.searchsorted(vocab, x)  # noqa: E731
    template_small = {k: remap(np.asarray(v)).tolist() for k, v in template.items() if k != "pad"}
    template_small["pad"] = int(remap(template["pad"]))
    arrays.update({"vocab": vocab.astype(np.int32), "a_ids": remap(a[0]).astype(np.uint16), "a_offsets": a[1],
                   "b_ids": remap(b[0]).astype(np.uint16), "b_offsets": b[1]})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "data.npz", **arrays)

    model = AutoModel.from_pretrained(model_path, add_pooling_layer=False)
    state = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    state["embeddings.word_embeddings.weight"] = state["embeddings.word_embeddings.weight"][vocab]
    tensors = {}
    for k, v in state.items():
        if v.ndim == 2 and v.size >= 65536:  # linear weights and embedding tables travel as int8 rows
            tensors[k], tensors[k + ".scale"] = quantize_rows(v)
        else:
            tensors[k] = v.astype(np.float32)
    save_file(tensors, str(out / "model.safetensors"))
    config = model.config.to_dict()
    config["vocab_size"] = int(len(vocab))
    (out / "config.json").write_text(json.dumps(config, indent=1))
    info = {"base_model": DEFAULT_BASE, "k": args.k, "pairs": pairs, "template": template_small,
            "vocab_kept": int(len(vocab)), "candidate_texts": len(candidate_texts), "mention_texts": len(mention_texts),
            "pairs_checked": checked, "sets": info_sets, "seed": args.seed, "index": args.index,
            "index_describe": index.describe(), "train_index": args.train_index, "test_concepts": args.test_concepts,
            "rerank_args": {k: v for k, v in vars(rargs).items() if k in ("train_per_lang", "dev", "test_per_lang",
                                                                           "gsc_test", "gsc_test_docs_to_train")},
            "synonyms": args.synonyms, "seconds": round(time.perf_counter() - t0, 1)}
    (out / "bundle.json").write_text(json.dumps(info, indent=1))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(json.dumps({k: v for k, v in info.items() if k != "sets"}, indent=1),
          f"\nbundle {size / 2**20:.1f} MiB (the device tool carries 64 MiB, the repository's tracked files included)",
          flush=True)


# ---- import ----------------------------------------------------------------------------------------------------
def import_result(args: argparse.Namespace) -> None:
    """The chosen variant's returned tensors -> an ``xnorm train-reranker --mode full`` folder."""
    from safetensors.torch import load_file

    from xnorm.rerank import Reranker

    result = Path(args.result)
    report = json.loads((result / "chosen.json").read_text())
    info = json.loads((Path(args.bundle) / "bundle.json").read_text())
    tensors = {}
    for f in sorted(result.glob("weights-*.safetensors")):
        tensors.update(load_file(str(f)))
    rr = Reranker.create(info["base_model"], mode="full", pooling=report["pooling"],
                         prior_weight=report["prior_weight_init"], pair_settings=info["pairs"])
    # the pooler is trainable in mode full but never read (the head pools itself): it keeps the base's values
    model_params = [n for n, p in rr.model.named_parameters() if p.requires_grad and ".pooler." not in n]
    wanted = {n.split(".", 1)[1] if n.startswith("bert.") else n: n for n in model_params}
    head = {k[len("head."):]: v for k, v in tensors.items() if k.startswith("head.")}
    body = {k: v for k, v in tensors.items() if not k.startswith("head.")}
    if set(body) != set(wanted):
        raise SystemExit(f"{result}: tensors do not match the reranker: missing {sorted(set(wanted) - set(body))[:3]}, "
                         f"unexpected {sorted(set(body) - set(wanted))[:3]}")
    rr.model.load_state_dict({wanted[k]: v.float() for k, v in body.items()}, strict=False)
    rr.head.load_state_dict({k: v.float() for k, v in head.items()})
    variant = report["variants"][report["chosen"]]
    best = variant["best_dev"]
    rr.save(args.out, lam=variant["lambda"], k=variant["k_train"], training={
        "data": "; ".join(f"{n}: {s['mentions']} mentions ({s['description']})" for n, s in info["sets"].items()
                          if n.startswith("train")),
        "trained_on": variant["machine"], "bundle": {k: v for k, v in info.items() if k != "sets"},
        **{k: v for k, v in variant.items() if k not in ("history", "tests")},
        # the report keys of train_reranker, so that a folder reads the same whoever trained it (the device's
        # dev acc@1 is the unweighted mean of its dev sets)
        "batch_size": variant["batch_mentions"], "train_seconds": variant["seconds"],
        "seconds_per_mention": variant["train_seconds_per_1k_mentions"] / 1000, "best_dev_acc1": best["acc1"],
        "best_dev_gain": best["gain"], "best_step": best["step"],
        "dev_acc1_candidates": float(np.mean([info["sets"][s]["acc1_candidates"] for s in SETS_DEV]))},
        dev_metrics=variant["history"])
    print(f"saved {args.out} (variant {report['chosen']}, best step {variant['best_step']} of {variant['steps']})")


def report(args: argparse.Namespace) -> None:
    """One markdown table of every variant of the device runs (their ``chosen.json``), test acc@1 at ``--k``."""
    lines, sets = [], None
    for path in args.runs:
        run = json.loads(Path(path).read_text())
        for name, v in run["variants"].items():
            tests = {t[len("test_"):]: r[f"k{args.k}"] for t, r in sorted(v["tests"].items())}
            if sets is None:
                sets = list(tests)
                lines += ["| variant | lr | λ | k train | batch | training sets | steps (kept) | dev worst-set gain | "
                          + " | ".join(sets) + " |", "|---" * (8 + len(sets)) + "|",
                          "| candidates (first k of the bundle's list) | | | | | | | | "
                          + " | ".join(f"{tests[t]['acc1_candidates']:.3f}" for t in sets) + " |"]
            cells = [f"{tests[t]['acc1']:.3f} ({tests[t]['acc1'] - tests[t]['acc1_candidates']:+.3f})" for t in sets]
            chosen = " (chosen)" if name == run["chosen"] else ""
            lines.append(f"| {name}{chosen} | {v['lr']:g} | {v['lambda']:g} | {v['k_train']} | {v['batch_mentions']} | "
                         f"{'+'.join(v.get('train_sets', ['train', 'train_synonyms']))} | {v['steps']} "
                         f"({v['best_step']}) | {v['best_dev']['gain']:+.3f} | " + " | ".join(cells) + " |")
    print("\n".join(lines))


def main(argv=None) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="write the bundle the GPU machine trains from")
    ex.add_argument("--index", required=True, help="the test candidates' index (the default fusion-aligned one)")
    ex.add_argument("--train-index", required=True, help="the training and dev candidates' index (plain e5-small)")
    ex.add_argument("--test-concepts", default=str(REPO / "adapters_zoo" / "hpo-align-e5small" / "split.json"))
    ex.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    ex.add_argument("--out", type=Path, required=True)
    ex.add_argument("--k", type=int, default=16, help="candidates kept per mention (the device uses the first k)")
    ex.add_argument("--max-length", type=int, default=32)
    ex.add_argument("--parents", action="store_true",
                    help="candidate texts name the concept's is_a parents (needs indexes whose terminology has them)")
    ex.add_argument("--train-per-lang", type=int, default=100000, help="HPO training labels per language (all)")
    ex.add_argument("--synonyms", type=int, default=20000, help="English synonyms as weakly supervised mentions")
    ex.add_argument("--dev", type=int, default=280)
    ex.add_argument("--test-per-lang", type=int, default=300)
    ex.add_argument("--gsc-test", type=int, default=500)
    ex.add_argument("--matched", action="store_true",
                    help="also train_matched: labels of the encoder adapter's dev concepts with --index's candidates; "
                         "dev sets from --index (a quarter of those concepts, GSC+ dev)")
    ex.add_argument("--seed", type=int, default=0)
    im = sub.add_parser("import", help="turn the variant the GPU machine returned into a reranker folder")
    im.add_argument("--result", type=Path, required=True, help="the folder the device's files were fetched into")
    im.add_argument("--bundle", type=Path, required=True)
    im.add_argument("--out", type=Path, required=True)
    rp = sub.add_parser("report", help="a markdown table of every variant of device runs")
    rp.add_argument("runs", nargs="+", help="chosen.json files")
    rp.add_argument("--k", type=int, default=8)
    args = ap.parse_args(argv)
    {"export": export, "import": import_result, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
