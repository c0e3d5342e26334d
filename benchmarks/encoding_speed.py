"""Encoding speed of an encoder (default: the embedded multilingual-e5-small; ``--model hpo-align-e5small``: the
shipped encoder adapter on it) on real HPO names, variants measured side by side.

Baseline: plain fp32, texts in input order, batch 256 padded to the batch maximum (what a straightforward loop
does). Variants: the ``Encoder`` (batches sorted by token length) with the torch backend in fp32 (and, on request,
torch int8), and with the ONNX Runtime backend (``backend="onnx"``) as exported (unfused, for reference), fused
fp32, int8 and int8-full. Repeats are interleaved (round r runs every variant once) so that load from other
processes hits all alike; the table reports the median of the repeats and the ratios to the baseline and to fp32
torch (length-sorted) measured in the same run.

Retrieval quality per variant, in the same table: the index is ``--quality-names`` English HPO labels (one per
concept, ``passage: `` prefix): the gold concepts of the queries plus a seeded random sample of other concepts;
the queries are OFFICIAL labels (hpo-labels dataset, ``--quality-queries`` per language, seed 0) of es, fr, ja
and zh (``query: `` prefix). Every variant encodes both sides itself; recall@64 and acc@1 by exact search.

    python benchmarks/encoding_speed.py                 # 2,000 names, 3 repeats, 5,000-name quality index
    python benchmarks/encoding_speed.py --n 500 --repeats 1 --quality-names 1000 --output /tmp/quick.md
    python benchmarks/encoding_speed.py --variants "onnx int8" --model /tmp/model_copy
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BASELINE = "baseline: torch fp32, unsorted, batch 256"
FP32_SORTED = "torch fp32, length-sorted"
UNFUSED = "onnx fp32 as exported (unfused)"
QUALITY_LANGS = ("es", "fr", "ja", "zh")
# Run unless --variants picks others; the torch int8 rows are slower than their ONNX counterparts (earlier runs).
DEFAULT_VARIANTS = (UNFUSED, "onnx fp32", "onnx int8", "onnx int8-full")


# -- data ------------------------------------------------------------------------------------------------------


def hpo_labels() -> tuple[list[str], list[str]]:
    """(HPO ids, English preferred labels) of every current term (the built-in `hpo-en` terminology)."""
    from xnorm.terminology import load_terminology

    hpo = load_terminology("hpo-en")
    return hpo.concept_ids.tolist(), [str(x) for x in hpo.preferred_names.tolist()]


def quality_queries(langs: tuple[str, ...], per_lang: int) -> dict[str, tuple[list[str], list[str]]]:
    """lang -> (OFFICIAL labels, gold HPO ids) from the hpo-labels benchmark dataset (seed 0)."""
    from xnorm.benchmark.datasets import build_dataset

    ds = build_dataset("hpo-labels", {"languages": list(langs), "max_per_language": per_lang})
    out: dict[str, tuple[list[str], list[str]]] = {lang: ([], []) for lang in langs}
    for doc in ds.documents:
        for ent in doc["entities"]:
            out[doc["lang"]][0].append(ent["text"][0])
            out[doc["lang"]][1].append(ent["normalized"][0]["db_id"])
    return out


@dataclass
class QualitySet:
    names: list[str]  # English labels of the index, one per concept
    queries: dict[str, tuple[list[str], np.ndarray]]  # lang -> (texts, row of the gold name in `names`)


def quality_set(ids: list[str], labels: list[str], n_names: int, per_lang: int) -> QualitySet:
    """Index = the queries' gold concepts + seeded random other concepts, ``n_names`` in all."""
    queries = quality_queries(QUALITY_LANGS, per_lang)
    row = {cid: i for i, cid in enumerate(ids)}
    gold = sorted({row[g] for _, golds in queries.values() for g in golds if g in row})
    rest = np.setdiff1d(np.arange(len(ids)), gold)
    fill = np.random.default_rng(0).choice(rest, size=max(0, min(n_names, len(ids)) - len(gold)), replace=False)
    keep = np.sort(np.concatenate([np.array(gold, dtype=np.int64), fill]))
    at = {int(i): j for j, i in enumerate(keep)}
    out = {lang: ([t for t, g in zip(texts, golds) if g in row],
                  np.array([at[row[g]] for g in golds if g in row])) for lang, (texts, golds) in queries.items()}
    return QualitySet([labels[i] for i in keep], out)


def retrieval(names: np.ndarray, queries: np.ndarray, gold: np.ndarray, k: int = 64) -> tuple[float, float]:
    """acc@1 and recall@k (in %) of exact inner-product search (one name per concept)."""
    scores = queries @ names.T
    # rank = number of names scoring strictly higher than the gold name (ties count in its favour)
    better = (scores > scores[np.arange(len(gold)), gold][:, None]).sum(1)
    return 100 * float((better == 0).mean()), 100 * float((better < k).mean())


# -- variants --------------------------------------------------------------------------------------------------


def plain_encode(enc, texts: list[str], batch_size: int = 256) -> np.ndarray:
    """The baseline: batches in input order, each padded to its longest text; same model, pooling and prefix."""
    import torch

    out = []
    with torch.inference_mode():
        for s in range(0, len(texts), batch_size):
            batch = enc.tokenizer([enc.passage_prefix + t for t in texts[s:s + batch_size]], padding=True,
                                  truncation=True, max_length=enc.max_length, return_tensors="pt")
            hidden = enc.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out)


@dataclass
class Variant:
    name: str
    encode: Callable[[list[str], str], np.ndarray]  # (texts, kind) -> vectors
    load_s: float
    times: list[float] = field(default_factory=list)
    kind: str = "passage"  # what the timed rounds encode: a query encoder (role query) encodes mentions only


def unfused_encoder(model: str, workdir: Path):
    """An ONNX ``Encoder`` running the graph as exported, before fusion (what ONNX Runtime alone optimizes)."""
    from xnorm.models import Encoder
    from xnorm.models.encoder import _transformer_dir
    from xnorm.models.onnx_backend import OnnxPooledEncoder, _export
    from xnorm.models.registry import resolve_model
    from xnorm.training.adapter_io import adapter_manifest

    enc = Encoder(model, device="cpu", backend="onnx")
    graph = workdir / "unfused.onnx"
    location = Path(resolve_model(model))
    adapter = adapter_manifest(location)
    base = Path(resolve_model(adapter["base_model"])) if adapter else location
    _export(_transformer_dir(base), enc.pooling, graph, location if adapter else None)
    enc._runtime = OnnxPooledEncoder(graph)
    return enc


def build_variants(model: str, selected: list[str], workdir: Path) -> list[Variant]:
    from xnorm.models import Encoder

    def enc(**kw) -> Callable[[], object]:
        return lambda: Encoder(model, device="cpu", batch_size=128, **kw)

    makers: dict[str, Callable[[], object]] = {
        BASELINE: enc(backend="torch"),
        FP32_SORTED: enc(backend="torch"),
        "torch bf16": enc(backend="torch", precision="bf16"),
        "torch int8 (attention)": enc(backend="torch", precision="int8"),
        "torch int8-full": enc(backend="torch", precision="int8-full"),
        UNFUSED: lambda: unfused_encoder(model, workdir),
        "onnx fp32": enc(backend="onnx"),
        "onnx int8": enc(backend="onnx", precision="int8"),
        "onnx int8-full": enc(backend="onnx", precision="int8-full"),
        "openvino fp32": enc(backend="openvino", precision="fp32"),
        "openvino bf16": enc(backend="openvino", precision="bf16"),
        "openvino int8": enc(backend="openvino", precision="int8"),
        "openvino int8-full": enc(backend="openvino", precision="int8-full"),
    }
    wanted = selected or list(DEFAULT_VARIANTS)
    unknown = sorted(set(wanted) - set(makers))
    if unknown:  # a typo must not silently drop a row
        sys.exit(f"unknown variants {unknown}; known: {', '.join(makers)}")
    variants, torch_fp32 = [], None
    for key, make in makers.items():
        # The baseline and fp32 torch always run: every ratio is taken against them in the same run.
        if key not in (BASELINE, FP32_SORTED) and key not in wanted:
            continue
        t0 = time.perf_counter()
        if key == BASELINE:
            torch_fp32 = make()
            encoder = torch_fp32
            fn = (lambda e: (lambda t, kind="passage": plain_encode(e, t, 256) if kind == "passage"
                             else e.encode(t, kind=kind)))(encoder)
        else:
            # fp32 torch shares the baseline's model (memory: each encoder holds ~0.5-1 GB).
            encoder = torch_fp32 if key == FP32_SORTED else make()  # ONNX: export / quantization on first use
            fn = (lambda e: (lambda t, kind="passage": e.encode(t, kind=kind)))(encoder)
        variants.append(Variant(key, fn, time.perf_counter() - t0))
    return variants


def other_model_variants(model: str, selected: list[str], main_model: str) -> list[Variant]:
    """Rows for another model (e.g. a distilled student) in the same rounds, named ``<model>: <variant>``; their
    ratios and quality deltas are against the main model's baseline and torch fp32. A query encoder is searched
    against the main model's name vectors, so it must have been distilled from ``main_model``."""
    from xnorm.models import Encoder
    from xnorm.models.registry import weights_fingerprint

    backends = {FP32_SORTED: ("torch", "fp32"), "torch bf16": ("torch", "bf16"), "onnx fp32": ("onnx", "fp32"),
                "onnx int8": ("onnx", "int8"),
                "onnx int8-full": ("onnx", "int8-full"), "openvino bf16": ("openvino", "bf16"),
                "openvino int8": ("openvino", "int8"), "openvino int8-full": ("openvino", "int8-full")}
    variants = []
    for key in selected:
        backend, precision = backends[key]
        t0 = time.perf_counter()
        e = Encoder(model, device="cpu", batch_size=128, backend=backend, precision=precision)
        if e.role == "query" and e.index_fingerprint != weights_fingerprint(main_model):
            sys.exit(f"{model} is a query encoder of {e.index_model}, not of --model {main_model}")
        kind = "query" if e.role == "query" else "passage"
        variants.append(Variant(f"{Path(model).name}: {key}" + (" (queries)" if kind == "query" else ""),
                                (lambda e: (lambda t, kind="passage": e.encode(t, kind=kind)))(e),
                                time.perf_counter() - t0, kind=kind))
    return variants


# -- report ----------------------------------------------------------------------------------------------------


def openvino_version() -> str:
    try:
        import openvino
    except ImportError:
        return ""
    return f"; openvino {openvino.__version__} (CPU, latency hint, threads = usable cores)"


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
    ap.add_argument("--n", type=int, default=2000, help="English HPO names encoded per timed round (seeded)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (ONNX Runtime: all cores)")
    ap.add_argument("--model", default="multilingual-e5-small")
    ap.add_argument("--variants", nargs="*", default=[],
                    help="variants to run besides the baseline and torch fp32 (default: "
                    f"{', '.join(DEFAULT_VARIANTS)}; also: 'torch bf16', 'torch int8 (attention)', 'torch int8-full', "
                    "'openvino fp32', 'openvino bf16', 'openvino int8', 'openvino int8-full' (the openvino extra))")
    ap.add_argument("--others", nargs="*", default=[],
                    help="other models (e.g. distilled students) measured in the same rounds against this one")
    ap.add_argument("--other-variants", nargs="*", default=[FP32_SORTED, "onnx fp32", "onnx int8"],
                    help="their variants (torch fp32 length-sorted, onnx fp32, onnx int8, onnx int8-full)")
    ap.add_argument("--quality-names", type=int, default=5000, help="English names in the quality index")
    ap.add_argument("--quality-queries", type=int, default=400, help="OFFICIAL labels per language (es fr ja zh)")
    ap.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "encoding_speed.md")
    args = ap.parse_args(argv)
    cli_args = argv if argv is not None else sys.argv[1:]

    import onnxruntime
    import torch

    from xnorm._io import atomic_write

    torch.set_num_threads(args.threads)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    ids, labels = hpo_labels()
    rng = np.random.default_rng(0)
    names = [labels[i] for i in sorted(rng.choice(len(labels), size=min(args.n, len(labels)), replace=False))]
    qs = quality_set(ids, labels, args.quality_names, args.quality_queries)
    print(f"{len(names)} names per round; quality: {len(qs.names)} names, "
          f"{', '.join(f'{k} {len(v[0])}' for k, v in qs.queries.items())} queries; loading variants", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="xnorm-encoding-speed-") as tmp:
        variants = build_variants(args.model, args.variants, Path(tmp))
        for other in args.others:
            variants += other_model_variants(other, args.other_variants, args.model)
        for v in variants:  # warm-up: first calls allocate and pick kernels
            v.encode(names[:256], v.kind)
        load_before = os.getloadavg()
        for r in range(args.repeats):
            for v in variants:
                t0 = time.perf_counter()
                v.encode(names, v.kind)
                v.times.append(time.perf_counter() - t0)
                print(f"round {r + 1}: {v.name}: {len(names) / v.times[-1]:.0f} names/s", file=sys.stderr)
        load_after = os.getloadavg()

        quality: dict[str, dict[str, tuple[float, float]]] = {}
        vectors: dict[str, np.ndarray] = {}
        for v in variants:
            if v.name == BASELINE:
                continue  # same model as fp32 torch; its quality is fp32's
            # a query encoder searches the main model's fp32 name vectors (its index)
            vectors[v.name] = vectors[FP32_SORTED] if v.kind == "query" else v.encode(qs.names, "passage")
            quality[v.name] = {lang: retrieval(vectors[v.name], v.encode(texts, "query"), gold)
                               for lang, (texts, gold) in qs.queries.items()}
            print(f"quality: {v.name}: {quality[v.name]}", file=sys.stderr)

    rate = {v.name: len(names) / statistics.median(v.times) for v in variants}
    ref_q, ref_v = quality[FP32_SORTED], vectors[FP32_SORTED]
    header = ("variant", "names/s (median)", "vs baseline", "vs torch fp32 sorted", "range", "min cos to fp32",
              *(f"{lang} R@64 (Δ)" for lang in QUALITY_LANGS), "worst Δ R@64", "mean Δ acc@1", "load s")
    rows = []
    for v in variants:
        q = quality.get(v.name, ref_q)
        deltas = [q[lang][1] - ref_q[lang][1] for lang in QUALITY_LANGS]
        cos = float((vectors.get(v.name, ref_v) * ref_v).sum(1).min())  # 1.0 for a query encoder: same index
        rows.append((
            v.name, f"{rate[v.name]:.0f}", f"{rate[v.name] / rate[BASELINE]:.2f}x",
            f"{rate[v.name] / rate[FP32_SORTED]:.2f}x",
            f"{min(len(names) / t for t in v.times):.0f}–{max(len(names) / t for t in v.times):.0f}", f"{cos:.4f}",
            *(f"{q[lang][1]:.1f} ({d:+.1f})" for lang, d in zip(QUALITY_LANGS, deltas)), f"{min(deltas):+.1f}",
            f"{statistics.mean(q[lang][0] - ref_q[lang][0] for lang in QUALITY_LANGS):+.1f}", f"{v.load_s:.1f}",
        ))
    acc_header = ("variant", *(f"{lang} acc@1 / R@64" for lang in QUALITY_LANGS))
    acc_rows = [(name, *(f"{q[lang][0]:.1f} / {q[lang][1]:.1f}" for lang in QUALITY_LANGS))
                for name, q in quality.items()]
    per_round = [f"| {r + 1} | " + " | ".join(f"{len(names) / v.times[r]:.0f}" for v in variants) + " |"
                 for r in range(args.repeats)]
    n_q = ", ".join(f"{k} {len(v[0])}" for k, v in qs.queries.items())
    lines = [
        f"# Encoding speed: {args.model} on English HPO names",
        "",
        f"- date: {started}",
        f"- machine: {machine()}; torch {torch.__version__} with {args.threads} intra-op threads; onnxruntime "
        f"{onnxruntime.__version__} (CPUExecutionProvider, intra-op threads = usable cores)" + openvino_version(),
        f"- command: `python benchmarks/encoding_speed.py{''.join(' ' + a for a in cli_args)}`",
        f"- speed: {len(names)} English HPO labels per round (seeded sample of the {len(labels):,} current terms' "
        "preferred labels, `hpo-en`), each model's passage prefix (a query encoder's query prefix: "
        "\"(queries)\" rows), max_length 32, batch 128 (baseline 256); "
        f"{args.repeats} rounds, interleaved across variants; names/s is the median, range is min–max",
        f"- quality: index of {len(qs.names):,} English labels (the queries' gold concepts + seeded random others), "
        f"queries: OFFICIAL labels ({n_q}; hpo-labels, seed 0), each variant encoding both sides; exact search; "
        "Δ = variant minus torch fp32, in points (one query is 0.25 points at 400 per language)",
        f"- machine load (1-min load average) at the first / last timed round: {load_before[0]:.2f} / "
        f"{load_after[0]:.2f} on {os.cpu_count()} CPUs — shared with other jobs, so absolute rates vary between "
        "runs; compare the ratios",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        "min cos to fp32: lowest cosine between an index name's vector and its torch fp32 vector (a query "
        "encoder searches the torch fp32 name vectors: 1.0); worst Δ R@64: "
        "the largest recall@64 loss over the four languages; load s: building the encoder (first ONNX use: export, "
        "fusion, quantization; cached afterwards).",
        "",
        "acc@1 / recall@64 (%):",
        "",
        "| " + " | ".join(acc_header) + " |",
        "|" + "|".join("---" for _ in acc_header) + "|",
        *("| " + " | ".join(row) + " |" for row in acc_rows),
        "",
        "Per-round rates (names/s):",
        "",
        "| round | " + " | ".join(v.name for v in variants) + " |",
        "|" + "|".join("---" for _ in range(len(variants) + 1)) + "|",
        *per_round,
        "",
    ]
    with atomic_write(args.output) as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
