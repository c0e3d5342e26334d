"""Distil the shipped encoder into a symmetric 4-layer student on a lent GPU machine (issue 3's encoding speed).

The GPU machine (the ``device`` tool) receives at most 64 MiB and has neither the embedded model nor xnorm's
dependencies, so the work is cut in three:

``export`` (here)  a bundle: the student cut from e5-small (layers 0 4 8 11, fp16) with its word embeddings PRUNED
                   to the ~19k tokens its texts use (ids remapped; the rows are frozen and unchanged, so nothing is
                   lost), the texts pre-tokenized, and the teacher's vectors as targets (int8 + per-vector scale:
                   cos to the fp32 vector > 0.9999). Texts: every English name of the teacher's training concepts
                   as a passage, cached training queries (``distill_encoder.py --role query`` runs) and newly
                   encoded other-language passages, capped so the bundle fits; dev: the teacher's dev concepts;
                   and every English name (token ids only) so the device can rank dev queries against the
                   student's own full index.
``benchmarks/distill_device.py`` (there)  trains variants in parallel and returns each one's best tensors.
``import`` (here)  puts a returned variant back into the full student (the base's own word embeddings) and writes
                   the same student folder ``distill_encoder.py`` writes (``--pack NAME`` also into the user zoo).

    python benchmarks/distill_bundle.py export --cache RUNS/distill-cache --out .gpu/bundle
    (device) python3 benchmarks/distill_device.py --bundle .gpu/bundle --out $OUT --seconds 420 ...
    python benchmarks/distill_bundle.py import --result FILES_AT --variant a --out RUNS/student-gpu
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LAYERS = [0, 4, 8, 11]
MAX_LENGTH = 32


def quantize(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 rows and their fp16 scales (row = int8 * scale)."""
    scale = np.abs(vectors).max(1, keepdims=True) / 127.0
    return np.round(vectors / scale).astype(np.int8), scale.astype(np.float16)


def flat_ids(tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of ``texts`` as one flat array + offsets (ragged)."""
    ids = tokenizer(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]
    lengths = np.array([len(x) for x in ids], dtype=np.int32)
    flat = np.fromiter((t for x in ids for t in x), dtype=np.int64, count=int(lengths.sum()))
    return flat, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)


def export(args: argparse.Namespace) -> None:
    import torch
    from safetensors.torch import save_file

    from distill_encoder import QUERY_PREFIX, TEACHER, make_student, sample
    from xnorm.models import Encoder
    from xnorm.models.registry import weights_fingerprint
    from xnorm.terminology import load_terminology

    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    fingerprint = weights_fingerprint(TEACHER)
    split = json.loads((REPO / "adapters_zoo" / TEACHER / "split.json").read_text())
    manifest = json.loads((REPO / "adapters_zoo" / TEACHER / "manifest.json").read_text())
    other_langs = [lang for lang in manifest["languages"] if lang != "en"]
    english, multi = load_terminology("hpo-en"), load_terminology("hpo-multilingual")
    en_concepts = english.concept_ids[english.name_concepts].astype(str)
    multi_concepts = multi.concept_ids[multi.name_concepts].astype(str)
    index_vectors = np.load(args.cache / f"passages-{fingerprint}.npy", allow_pickle=False)

    # cached teacher query vectors (distill_encoder --role query runs), one row per distinct text
    caches = sorted(args.cache.glob(f"targets-{fingerprint}-query-*.npz"))
    if not caches:
        raise SystemExit(f"no cached query targets in {args.cache}: run distill_encoder.py --role query first")
    parts: dict[str, dict[str, np.ndarray]] = {}
    for part in ("train", "dev"):
        loaded = [np.load(f, allow_pickle=False) for f in caches]
        texts, concepts, targets = (np.concatenate([d[f"{part}_{key}"] for d in loaded])
                                    for key in ("texts", "concepts", "targets"))
        _, first = np.unique(texts, return_index=True)
        parts[part] = {"texts": texts[first], "concepts": concepts[first], "targets": targets[first]}
    # the union of the caches' dev concepts must not meet any training concept
    assert not set(parts["dev"]["concepts"]) & set(split["train"]), "a cached dev query belongs to a train concept"
    lang_of = dict(zip(multi.name_texts.tolist(), multi.name_langs.tolist()))

    teacher = Encoder(TEACHER)
    data: dict[str, np.ndarray] = {}
    for part in ("train", "dev"):
        keep = np.asarray(split[part])
        en_rows = np.flatnonzero(np.isin(en_concepts, keep))  # every English name of the part: passages
        q = parts[part]
        # queries: languages balanced (every de / it name; English and the big languages capped alike); dev: all
        langs = np.array([lang_of.get(t, "en") for t in q["texts"]])
        per_lang = args.queries // (len(other_langs) + 1) if part == "train" else len(langs)
        chosen = np.concatenate([sample(rng, np.flatnonzero(langs == lang), per_lang)
                                 for lang in ["en", *other_langs]])
        other_rows = np.flatnonzero(np.isin(multi_concepts, keep) & np.isin(multi.name_langs, other_langs))
        p_other = sample(rng, other_rows, args.other_passages if part == "train" else args.other_passages // 20)
        p_other_vectors = teacher.encode(multi.name_texts[p_other].tolist(), kind="passage", show_progress=True)
        groups = [  # (texts, kind 0 query / 1 passage, concepts, teacher vectors)
            (english.name_texts[en_rows], 1, en_concepts[en_rows], index_vectors[en_rows]),
            (q["texts"][chosen], 0, q["concepts"][chosen], q["targets"][chosen]),
            (multi.name_texts[p_other], 1, multi_concepts[p_other], p_other_vectors),
        ]
        data[f"{part}_texts"] = np.concatenate([g[0].astype(str) for g in groups])
        data[f"{part}_kinds"] = np.concatenate([np.full(len(g[0]), g[1], dtype=np.int8) for g in groups])
        data[f"{part}_concepts"] = np.concatenate([g[2].astype(str) for g in groups])
        data[f"{part}_targets"] = np.concatenate([g[3] for g in groups]).astype(np.float32)
        data[f"{part}_langs"] = np.concatenate([np.full(len(en_rows), "en"), langs[chosen],
                                                multi.name_langs[p_other].astype(str)])

    tokenizer, model = make_student(LAYERS)
    inputs = {part: [(QUERY_PREFIX if k == 0 else "") + t
                     for t, k in zip(data[f"{part}_texts"], data[f"{part}_kinds"])] for part in ("train", "dev")}
    inputs["index"] = english.name_texts.tolist()  # passages: no prefix
    ids = {part: flat_ids(tokenizer, texts) for part, texts in inputs.items()}
    vocab = np.unique(np.concatenate([flat for flat, _ in ids.values()] + [[tokenizer.pad_token_id]]))  # in id order

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.config.vocab_size = len(vocab)
    state = {k: v.to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    state["embeddings.word_embeddings.weight"] = state["embeddings.word_embeddings.weight"][torch.from_numpy(vocab)]
    model.config.torch_dtype = "float16"
    (out / "model").mkdir(exist_ok=True)
    model.config.to_json_file(out / "model" / "config.json")
    save_file(state, str(out / "model" / "model.safetensors"), metadata={"format": "pt"})

    arrays: dict[str, np.ndarray] = {"vocab": vocab.astype(np.int32), "pad_id": np.array(
        np.searchsorted(vocab, tokenizer.pad_token_id), dtype=np.int32)}
    assert vocab[arrays["pad_id"]] == tokenizer.pad_token_id
    for part, (flat, offsets) in ids.items():
        arrays[f"{part}_ids"] = np.searchsorted(vocab, flat).astype(np.uint16)
        arrays[f"{part}_offsets"] = offsets
    concepts, arrays["index_concepts"] = np.unique(en_concepts, return_inverse=True)
    arrays["index_concepts"] = arrays["index_concepts"].astype(np.int32)
    for part in ("train", "dev"):
        arrays[f"{part}_kinds"] = data[f"{part}_kinds"]
        arrays[f"{part}_targets"], arrays[f"{part}_scales"] = quantize(data[f"{part}_targets"])
    code = np.searchsorted(concepts, data["dev_concepts"])  # dev gold as index concept codes (-1: not indexed)
    arrays["dev_concepts"] = np.where(concepts[np.minimum(code, len(concepts) - 1)] == data["dev_concepts"],
                                      code, -1).astype(np.int32)
    arrays["dev_langs"] = data["dev_langs"].astype("U3")
    np.savez(out / "data.npz", **arrays)
    # the teacher's own dev figures, to read the student's beside (its index vectors would not fit the bundle)
    teacher_dev = dev_recall(data["dev_targets"], data["dev_kinds"], data["dev_langs"], data["dev_concepts"],
                             index_vectors, en_concepts)
    info = {"teacher": TEACHER, "teacher_fingerprint": fingerprint, "layers": LAYERS, "max_length": MAX_LENGTH,
            "vocab_kept": int(len(vocab)), "caches": [f.name for f in caches], "seed": args.seed,
            "train": {"examples": int(len(data["train_texts"])),
                      "by_kind_lang": _counts(data["train_kinds"], data["train_langs"])},
            "dev": {"examples": int(len(data["dev_texts"])),
                    "by_kind_lang": _counts(data["dev_kinds"], data["dev_langs"])},
            "index_names": len(english.name_texts), "teacher_dev": teacher_dev,
            "seconds": round(time.perf_counter() - t0, 1)}
    (out / "bundle.json").write_text(json.dumps(info, indent=1))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(json.dumps(info, indent=1), f"\nbundle {size / 2**20:.1f} MiB (the device tool carries 64 MiB, the "
          "repository's tracked files included)", flush=True)


def dev_recall(queries: np.ndarray, kinds: np.ndarray, langs: np.ndarray, gold: np.ndarray, index: np.ndarray,
               index_concepts: np.ndarray) -> dict[str, dict[str, float]]:
    """acc@1 / recall@64 of the dev QUERIES' gold concepts against an index, overall and per language."""
    from train_encoder import concept_ranks

    q = kinds == 0
    ranks, langs = concept_ranks(queries[q], index, index_concepts, gold[q]), langs[q]
    return {lang: {"acc1": round(float((ranks[sel] == 1).mean()), 4), "r64": round(float((ranks[sel] <= 64).mean()), 4),
                   "n": int(sel.sum())}
            for lang, sel in [("all", np.ones(len(ranks), bool))] + [(x, langs == x) for x in np.unique(langs)]}


def _counts(kinds: np.ndarray, langs: np.ndarray) -> dict[str, int]:
    keys, n = np.unique(np.char.add(np.where(kinds == 0, "query-", "passage-"), langs.astype(str)),
                        return_counts=True)
    return dict(zip(keys.tolist(), n.tolist()))


def import_result(args: argparse.Namespace) -> None:
    """A variant's returned tensors + the base's word embeddings -> the student folder distill_encoder writes."""
    from safetensors.torch import load_file

    from distill_encoder import make_student, save_student

    result = Path(args.result)
    report = json.loads((result / f"{args.variant}.json").read_text())
    tensors = load_file(str(result / f"{args.variant}.safetensors"))
    tokenizer, model = make_student(report["layers"])
    state = model.state_dict()
    missing = set(state) - set(tensors) - {"embeddings.word_embeddings.weight"}
    unexpected = set(tensors) - set(state)
    if missing or unexpected:
        raise SystemExit(f"{result}: tensors do not match the student: missing {sorted(missing)}, "
                         f"unexpected {sorted(unexpected)}")
    model.load_state_dict({**state, **{k: v.float() for k, v in tensors.items()}})
    save_student(Path(args.out), model, tokenizer, role="both", layers=report["layers"], steps=report["best_step"],
                 fields={"planned_steps": report["steps"], "batch_size": report["batch_size"], "lr": report["lr"],
                         "examples": report["examples"], "training_seconds": report["seconds"],
                         "machine": report["machine"], "history": report["history"],
                         "bundle": report.get("bundle")},
                 pack=args.pack)
    print(f"saved {args.out} (variant {args.variant}, best step {report['best_step']} of {report['steps']})")


def main(argv=None) -> None:
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="write the bundle the GPU machine trains from")
    ex.add_argument("--cache", type=Path, required=True, help="distill_encoder.py's cache folder (passages + "
                    "--role query targets)")
    ex.add_argument("--out", type=Path, required=True)
    ex.add_argument("--queries", type=int, default=40000, help="training queries, balanced over languages")
    ex.add_argument("--other-passages", type=int, default=6000, help="other-language names encoded as passages")
    ex.add_argument("--seed", type=int, default=0)
    im = sub.add_parser("import", help="turn a variant the GPU machine returned into a student folder")
    im.add_argument("--result", type=Path, required=True, help="the folder the device's files were fetched into")
    im.add_argument("--variant", required=True)
    im.add_argument("--out", type=Path, required=True)
    im.add_argument("--pack", metavar="NAME", help="also put the student into the user zoo as NAME")
    args = ap.parse_args(argv)
    export(args) if args.command == "export" else import_result(args)


if __name__ == "__main__":
    main()
