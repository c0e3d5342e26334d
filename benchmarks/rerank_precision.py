"""Reranker precision: bf16 autocast vs fp32, for training and for inference, in one run on this machine.

1. Training: the same reranker (task adapter, λ = 1, segments pooling; same data, seed, steps and dev-based model
   selection) is trained twice, with ``precision="fp32"`` and ``precision="bf16"``; seconds per step are compared.
2. Inference, same weights: the fp32-trained reranker reranks every test set in fp32 and in bf16, in interleaved
   rounds (pairs/s: median over rounds); acc@1 per set and the share of mentions whose first concept differs.
3. Whole pipeline: the bf16-trained reranker with bf16 inference vs the fp32-trained one with fp32 inference.

Data as in ``benchmarks/rerank.py`` (its ``build_sets``: HPO translation labels of concepts outside the encoder's
test split for training, the test concepts' OFFICIAL labels and GSC+ test mentions for testing).

    python benchmarks/rerank_precision.py --index default --test-concepts adapters_zoo/hpo-align-e5small/split.json \\
        --out benchmarks/results/rerank_precision
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from rerank import LANGS, build_sets, metrics  # noqa: E402  (the ablation's data, same seeds)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", required=True, help="a saved CandidateIndex folder, or `default` (the cached "
                                                  "default HPO index that `xnorm link` builds)")
    p.add_argument("--test-concepts", default=None, metavar="SPLIT_JSON")
    p.add_argument("--data-root", default=str(HERE.parent.parent / "shared" / "data"))
    p.add_argument("--out", default=str(HERE / "results" / "rerank_precision"))
    p.add_argument("--work-dir", default="/tmp/xnorm_rerank_precision", help="where the trained rerankers go")
    p.add_argument("--langs", nargs="*", default=LANGS)
    p.add_argument("--train-per-lang", type=int, default=300)
    p.add_argument("--test-per-lang", type=int, default=300)
    p.add_argument("--gsc-train", type=int, default=500)
    p.add_argument("--gsc-test", type=int, default=500)
    p.add_argument("--dev", type=int, default=280)
    p.add_argument("--gsc-test-docs-to-train", type=float, default=0.5)
    p.add_argument("--gsc-repeat", type=int, default=1)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--rounds", type=int, default=2, help="inference rounds per precision (interleaved)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, default=None, help="learning rate [default: train_reranker's, 1e-3]")
    p.add_argument("--final-weights", action="store_true",
                   help="keep each run's last weights (no dev selection), so that the compared rerankers have "
                        "moved off the candidates' ranking even where no dev evaluation beats it")
    return p.parse_args(argv)


def _rerank_all(rr, tests, test_cands, terminology) -> tuple[dict, dict, float, int]:
    """(metrics per set, first concepts per set, seconds, pairs) of one pass over every test set."""
    res, firsts, seconds, pairs = {}, {}, 0.0, 0
    for name, ex in tests.items():
        t = time.perf_counter()
        out = rr.rerank(ex.mentions, test_cands[name], terminology)
        seconds += time.perf_counter() - t
        pairs += int((test_cands[name].concepts >= 0).sum())
        res[name] = metrics(out, ex)
        firsts[name] = out.concepts[:, 0]
    return res, firsts, seconds, pairs


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from xnorm.candidates import CandidateIndex
    from xnorm.linker import _cached_index
    from xnorm.models.encoder import _native_bf16
    from xnorm.rerank import Reranker, train_reranker

    index = _cached_index("hpo-en", None, True) if args.index == "default" else CandidateIndex.load(args.index)
    train, dev, tests = build_sets(args, index.terminology)
    test_cands = {name: index.candidates(ex.mentions, args.k) for name, ex in tests.items()}
    index.clear_cache()
    result: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} threads, "
                   f"native bf16: {_native_bf16()}",
        "command": "python benchmarks/rerank_precision.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "index": index.describe(), "train": f"{len(train)} mentions: {train.description}",
        "dev": {n: len(ex) for n, ex in dev.items()}, "tests": {n: len(ex) for n, ex in tests.items()},
        "candidates": {n: metrics(test_cands[n], ex) for n, ex in tests.items()}, "training": {}}
    rerankers = {}
    for precision in ("fp32", "bf16"):
        print(f"training ({precision})", flush=True)
        rr, report = train_reranker(
            index, train, Path(args.work_dir) / precision, mode="adapter", lam=1.0, k=args.k,
            dev=None if args.final_weights else dev,
            steps=args.steps, eval_every=args.eval_every, patience=args.steps, seed=args.seed,
            adapter_config={"architecture": "seq_bn", "reduction_factor": 16, "leave_out": [0, 1, 2, 3, 4, 5]},
            lr=args.lr, precision=precision, threads=args.threads, show_progress=False)
        rerankers[precision] = rr
        result["training"][precision] = {
            "steps": report["steps"], "train_seconds": report["train_seconds"],
            "eval_seconds": report["eval_seconds"],  # dev evaluations, not in seconds_per_step
            "seconds_per_step": round((report["train_seconds"] - report["eval_seconds"]) / max(1, report["steps"]), 3),
            "best_step": report.get("best_step"), "best_dev_gain": report.get("best_dev_gain"),
            "dev": [{"step": e["step"], "acc1": round(e["acc1"], 4), "gain": round(e["gain"], 4)}
                    for e in report["dev"]],
            "loss_first_20": float(np.mean(report["losses"][:20])),
            "loss_last_20": float(np.mean(report["losses"][-20:]))}
        print(json.dumps(result["training"][precision]), flush=True)

    # Inference on the fp32-trained weights, interleaved rounds; then the bf16-trained reranker in bf16.
    same = rerankers["fp32"]
    rounds: dict[str, list] = {"fp32": [], "bf16": []}
    passes: dict[str, tuple] = {}
    for r in range(args.rounds):
        for precision in ("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32"):
            same.set_precision(precision)
            res, firsts, seconds, pairs = _rerank_all(same, tests, test_cands, index.terminology)
            rounds[precision].append(pairs / seconds)
            passes[precision] = (res, firsts)
            print(f"inference round {r + 1} {precision}: {pairs / seconds:.0f} pairs/s", flush=True)
    rerankers["bf16"].set_precision("bf16")
    trained_bf16, firsts_bf16, _, _ = _rerank_all(rerankers["bf16"], tests, test_cands, index.terminology)
    result["inference"] = {
        "pairs_per_second": {p: [round(x, 1) for x in v] for p, v in rounds.items()},
        "median_pairs_per_second": {p: round(float(np.median(v)), 1) for p, v in rounds.items()},
        "acc1": {p: {n: passes[p][0][n]["acc1"] for n in tests} for p in passes},
        "first_concept_differs": {n: float((passes["fp32"][1][n] != passes["bf16"][1][n]).mean()) for n in tests},
        "bf16_trained_acc1": {n: trained_bf16[n]["acc1"] for n in tests},
        "bf16_trained_first_differs": {n: float((passes["fp32"][1][n] != firsts_bf16[n]).mean()) for n in tests},
        # How far the fp32-trained reranker moved: with no first concept changed, the comparison tests nothing.
        "fp32_first_differs_from_candidates": {n: float((passes["fp32"][1][n] != test_cands[n].concepts[:, 0]).mean())
                                               for n in tests}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(render(result))


def render(r: dict) -> str:
    sets = list(r["tests"])
    inf, tr = r["inference"], r["training"]

    def row(label, accs):
        deltas = [100 * (accs[n] - r["candidates"][n]["acc1"]) for n in sets]
        return f"| {label} | " + " | ".join(f"{accs[n]:.3f} ({d:+.1f})" for n, d in zip(sets, deltas)) + \
            f" | {np.mean([accs[n] for n in sets]):.4f} |"

    lines = [f"- date: {r['date']}; machine: {r['machine']}", f"- command: `{r['command']}`",
             f"- index: {r['index']}", f"- training: {r['train']}; dev {r['dev']}; test {r['tests']}", "",
             "acc@1 (Δ vs the candidates, points):", "",
             "| pipeline | " + " | ".join(sets) + " | mean |", "|---|" + "---|" * (len(sets) + 1),
             row("candidates only", {n: r["candidates"][n]["acc1"] for n in sets}),
             row("fp32-trained, fp32 inference", inf["acc1"]["fp32"]),
             row("fp32-trained, bf16 inference", inf["acc1"]["bf16"]),
             row("bf16-trained, bf16 inference", inf["bf16_trained_acc1"]), "",
             "| first concept differs from fp32/fp32 | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets),
             "| fp32-trained, fp32 inference, vs the candidates | " + " | ".join(
                 f"{inf['fp32_first_differs_from_candidates'][n]:.3f}" for n in sets) + " |",
             "| same weights, bf16 inference | " + " | ".join(f"{inf['first_concept_differs'][n]:.3f}"
                                                          for n in sets) + " |",
             "| bf16-trained, bf16 inference | " + " | ".join(f"{inf['bf16_trained_first_differs'][n]:.3f}"
                                                            for n in sets) + " |", "",
             "| precision | training s/step | best step (dev worst-set gain) | loss first → last 20 | "
             "inference pairs/s (median; rounds) |", "|---|---|---|---|---|"]
    for p in ("fp32", "bf16"):
        t = tr[p]
        kept = "last (no dev selection)" if t["best_step"] is None else f"{t['best_step']} ({t['best_dev_gain']:+.4f})"
        lines.append(f"| {p} | {t['seconds_per_step']} | {kept} | "
                     f"{t['loss_first_20']:.3f} → {t['loss_last_20']:.3f} | {inf['median_pairs_per_second'][p]} "
                     f"({', '.join(str(x) for x in inf['pairs_per_second'][p])}) |")
    ratio_t = tr["fp32"]["seconds_per_step"] / tr["bf16"]["seconds_per_step"]
    ratio_i = inf["median_pairs_per_second"]["bf16"] / inf["median_pairs_per_second"]["fp32"]
    lines += ["", f"bf16 / fp32: training {ratio_t:.2f}x faster per step, inference {ratio_i:.2f}x pairs/s."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
