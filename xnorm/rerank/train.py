"""``train_reranker``: train a reranker over the k candidates an index gives for mentions with gold concepts.

Candidates are generated once up front (the index is not trained). Each step takes ``batch_size`` mentions
× their k candidates, computes the rank-regularized loss (:mod:`xnorm.rerank.loss`) and updates the trained
tensors (task adapter + head, or every layer in ``full`` mode) with AdamW and a linear warm-up/decay schedule.
Seeded; a progress bar shows the loss. With dev sets, acc@1 is measured every ``eval_every`` steps; the weights
kept are those with the best *worst-set gain*: the smallest acc@1 gain over the candidates' own ranking across the
named dev sets (e.g. bare labels and mentions in context), so a checkpoint that helps one kind of mention while
hurting another is not chosen; training stops after ``patience`` evaluations without improvement. CPU
(``threads``) or the GPU when one is present.

Gold not among the k candidates (``missing_gold``): ``"skip"`` (default) drops those mentions; ``"insert"`` puts
the gold concept in the last slot with the row's lowest generator score. Why skip: at size (5,690 mentions, k=8,
29% without gold in the top 8) the inserted rows kept the loss at 2.4-2.6 while the skipped run's fell 1.47 -> 1.26
(benchmarks/results/rerank_at_size.md); the reranker can only choose among what the generator found anyway.
"""
from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import ConfigError
from ..types import Candidates
from .calibrate import calibrate_generator_weight
from .loss import distillation_loss, generator_distribution, generator_minmax, rank_regularized_loss
from .model import DEFAULT_BASE, DEFAULT_POOLING, DEFAULT_PRECISION, DEFAULT_PRIOR_WEIGHT, Reranker
from .supervision import Examples, candidates_for

log = logging.getLogger(__name__)

MISSING_GOLD = ("insert", "skip")


def place_gold(cands: Candidates, gold: np.ndarray, missing_gold: str = "insert") -> tuple[Candidates, np.ndarray,
                                                                                          np.ndarray]:
    """(candidates, gold column per mention, kept mask): the gold concept's column in each row.

    ``insert``: a row without its gold gets it in its last slot (the first empty one, else the last), scored as
    the row's lowest valid score; ``skip``: such rows are not kept.
    """
    cands = cands[np.arange(len(cands))]  # a copy: the caller's arrays stay as they were
    hit = cands.concepts == gold[:, None]
    has = hit.any(axis=1) & (gold >= 0)
    col = np.where(has, hit.argmax(axis=1), -1)
    keep = has.copy()
    if missing_gold == "insert":
        miss = np.flatnonzero(~has & (gold >= 0))
        if len(miss):
            k = cands.shape[1]
            n_valid = (cands.concepts[miss] >= 0).sum(axis=1)
            slot = np.minimum(n_valid, k - 1)
            low = np.where(cands.concepts[miss] >= 0, cands.scores[miss], np.inf).min(axis=1)
            low = np.where(np.isfinite(low), low, 0.0)
            cands.concepts[miss, slot] = gold[miss]
            cands.scores[miss, slot] = low
            cands.names[miss, slot] = -1
            cands.routes[miss, slot] = 0
            col[miss] = slot
            keep[miss] = True
    elif missing_gold != "skip":
        raise ConfigError(f"unknown missing_gold {missing_gold!r}.", field="missing_gold", fix=f"use one of {MISSING_GOLD}.")
    return cands, col, keep


def _dev_sets(dev: Examples | Mapping[str, Examples] | None) -> dict[str, Examples]:
    """Named dev sets with known gold, empty ones dropped (one unnamed set is called ``dev``)."""
    if dev is None:
        return {}
    named = {"dev": dev} if isinstance(dev, Examples) else dict(dev)
    named = {name: ex.known() for name, ex in named.items()}
    return {name: ex for name, ex in named.items() if len(ex)}


def accuracy_at_1(reranker: Reranker, examples: Examples, cands: Candidates, terminology,
                  batch_size: int = 256) -> float:
    """acc@1 of the reranked candidates against the gold rows (mentions without gold count as misses)."""
    if len(examples) == 0:
        return float("nan")
    out = reranker.rerank(examples.mentions, cands, terminology, batch_size=batch_size)
    return float(examples.hits(out.concepts[:, 0]).mean())


def _device(device: str | None) -> str:
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def train_reranker(
    index,
    train: Examples,
    output_dir: str | os.PathLike | None = None,
    *,
    mode: str = "adapter",
    lam: float = 1.0,
    k: int = 16,
    base_model: str = DEFAULT_BASE,
    dev: Examples | Mapping[str, Examples] | None = None,
    steps: int | None = None,
    epochs: float = 1.0,
    batch_size: int = 8,
    lr: float | None = None,
    warmup: float = 0.1,
    seed: int = 0,
    eval_every: int = 50,
    patience: int = 3,
    missing_gold: str = "skip",
    lang_adapter: tuple[str, str] | None = None,
    lang_adapters: Mapping[str, str] | None = None,
    adapter_config: Mapping | None = None,
    pair_settings: Mapping | None = None,
    prior_weight: float | None = DEFAULT_PRIOR_WEIGHT,
    pooling: str = DEFAULT_POOLING,
    device: str | None = None,
    precision: str = DEFAULT_PRECISION,
    threads: int | None = 2,
    max_seconds: float | None = None,
    calibrate: bool = True,
    teacher: Reranker | str | os.PathLike | None = None,
    teacher_weight: float = 0.5,
    show_progress: bool = True,
) -> tuple[Reranker, dict[str, Any]]:
    """Train a reranker; save it to ``output_dir`` (if given); return it and a report (losses, dev acc@1, times).

    ``lr`` defaults to 1e-3 for adapters and 3e-5 for full fine-tuning. ``steps`` overrides ``epochs``.
    ``dev``: one dev set or several named ones (model selection by the worst set's gain, see the module doc).
    ``max_seconds`` stops training after that much wall time (the best weights so far are kept).
    ``prior_weight``: the reranker adds ``w · minmax(generator score)`` to its score, w learned from this start
    (an untrained reranker then ranks as the generator did); ``None`` for a plain cross-encoder.
    ``pooling``: what the scoring head reads (``mean``, ``cls``, ``segments``; see :mod:`xnorm.rerank.model`).
    ``precision``: the base model's forward and backward pass, ``fp32``, ``bf16`` (autocast; the trained tensors
    and their optimizer state stay fp32) or ``auto`` (bf16 where the device computes it natively).
    ``teacher``: a trained reranker (or its folder) whose output distribution over each training mention's
    candidates the reranker also learns to match: loss = (1 − ``teacher_weight``) · rank loss + ``teacher_weight`` ·
    KL(teacher ‖ reranker) — e.g. to put a GPU-trained full fine-tune into a small task adapter.
    ``calibrate``: with dev sets, choose the generator weight per language on them after training
    (:mod:`xnorm.rerank.calibrate`; the report's ``generator_weight``).
    """
    import torch
    from tqdm import tqdm

    if k < 2:
        raise ConfigError(f"k must be at least 2 (got {k}): a reranker chooses among candidates.", field="k",
                          fix="use e.g. --k 16.")
    if lam < 0:
        raise ConfigError(f"lambda must be >= 0 (got {lam}).", field="lambda", fix="use 1.0 (default) or 0.")
    if not 0 <= teacher_weight <= 1:
        raise ConfigError(f"teacher_weight must be in [0, 1] (got {teacher_weight}).", field="teacher_weight",
                          fix="use 0.5 (default): half rank loss, half the teacher's distribution.")
    if threads and not torch.cuda.is_available():
        torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    terminology = index.terminology
    t0 = time.perf_counter()
    known = train.known()
    cands, gold_col, keep = place_gold(candidates_for(index, known, k), known.gold, missing_gold)
    cands, gold_col, known = cands[keep], gold_col[keep], known[keep]
    if len(known) == 0:
        raise ConfigError("no training mention has its gold concept in the terminology (or among the candidates "
                          "with missing_gold=skip).", field="train",
                          fix="check that the gold ids belong to the index's terminology.")
    devs = _dev_sets(dev)
    dev_cands = {name: candidates_for(index, ex, k) for name, ex in devs.items()}
    candidate_seconds = time.perf_counter() - t0

    reranker = Reranker.create(base_model, mode=mode, adapter_config=adapter_config, source_lang_adapter=lang_adapter,
                               lang_adapters=lang_adapters, pair_settings=pair_settings, prior_weight=prior_weight,
                               pooling=pooling, seed=seed, precision=precision)
    dev_name = _device(device)
    reranker.to(dev_name)
    params = reranker.trainable_parameters()
    lr = lr if lr is not None else (3e-5 if mode == "full" else 1e-3)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    per_epoch = math.ceil(len(known) / batch_size)
    total = steps if steps is not None else max(1, int(round(per_epoch * epochs)))
    n_warm = int(warmup * total)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / max(1, n_warm) if s < n_warm else max(0.0, (total - s) / max(1, total - n_warm)))
    encoder = reranker.pair_encoder(terminology)
    q_all = generator_distribution(cands.scores, cands.concepts >= 0)
    prior_all = generator_minmax(cands.scores, cands.concepts >= 0)
    teacher_p, teacher_seconds = None, 0.0
    if teacher is not None:
        t = time.perf_counter()
        teacher = teacher if isinstance(teacher, Reranker) else Reranker.load(teacher, precision=precision)
        teacher.to(dev_name)
        # The teacher's own output (its calibrated generator weight included), column for column with cands.
        teacher_p = np.nan_to_num(teacher.rerank_scores(known.mentions, cands, terminology), neginf=0.0)
        teacher_seconds = time.perf_counter() - t

    report: dict[str, Any] = {"prior_weight_init": prior_weight, "train_mentions": int(len(known)), "dropped_no_gold": int(len(train) - len(known)),
                              "k": k, "lambda": lam, "mode": mode, "pooling": pooling, "lr": lr, "batch_size": batch_size,
                              "steps_planned": total, "seed": seed, "device": dev_name, "precision": reranker.precision,
                              "missing_gold": missing_gold, "teacher": getattr(teacher, "path", None),
                              "teacher_weight": teacher_weight if teacher is not None else None,
                              "teacher_seconds": round(teacher_seconds, 1),
                              "candidate_seconds": round(candidate_seconds, 2), "dev": [], "losses": []}
    n_dev = sum(len(ex) for ex in devs.values())
    cand_acc = {name: float(ex.hits(dev_cands[name].concepts[:, 0]).mean()) for name, ex in devs.items()}
    if devs:
        report["dev_acc1_candidates"] = sum(cand_acc[n] * len(ex) for n, ex in devs.items()) / n_dev
        report["dev_sets_candidates"] = cand_acc

    eval_seconds = 0.0

    def evaluate() -> dict:
        nonlocal eval_seconds
        t = time.perf_counter()
        accs = {n: accuracy_at_1(reranker, ex, dev_cands[n], terminology) for n, ex in devs.items()}
        eval_seconds += time.perf_counter() - t
        return {"step": step, "acc1": sum(accs[n] * len(ex) for n, ex in devs.items()) / n_dev,
                "gain": min(accs[n] - cand_acc[n] for n in devs), "sets": accs}

    best: tuple[Any, dict] = (None, {"gain": -np.inf})  # (trained tensors, their dev evaluation)
    if devs and reranker.uses_prior:
        # Untrained, a reranker with the generator prior ranks exactly as the generator: step 0 is a real
        # candidate, so training that never beats the candidates on dev gives them back unchanged.
        best = (_trained_state(reranker), {"step": 0, "acc1": report["dev_acc1_candidates"], "gain": 0.0,
                                           "sets": cand_acc})
    bad_evals = 0
    order = np.array([], dtype=np.int64)
    step = 0
    start = time.perf_counter()
    bar = tqdm(total=total, desc="train-reranker", unit="step", disable=not show_progress)
    try:
        while step < total:
            if len(order) < batch_size:
                order = np.concatenate([order, rng.permutation(len(known))])
            idx, order = order[:batch_size], order[batch_size:]
            reranker.model.train()
            reranker.head.train()
            _activate_training(reranker)
            batch_c = cands[idx]
            firsts, seconds, valid = encoder.texts(known.mentions[idx], batch_c)
            prior = prior_all[idx][valid] if reranker.uses_prior else None
            logits_flat = reranker.forward(encoder.tokenize(firsts, seconds), prior)
            logits = torch.zeros(valid.shape, dtype=logits_flat.dtype, device=logits_flat.device)
            mask = torch.from_numpy(valid).to(logits.device)
            logits = logits.masked_scatter(mask, logits_flat)
            loss = rank_regularized_loss(logits, torch.from_numpy(gold_col[idx]).to(logits.device),
                                         torch.from_numpy(q_all[idx]).to(logits.device), mask, lam)
            if teacher_p is not None:
                loss = (1 - teacher_weight) * loss + teacher_weight * distillation_loss(
                    logits, torch.from_numpy(teacher_p[idx]).to(logits.device), mask)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            report["losses"].append(round(float(loss.detach()), 5))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(report['losses'][-20:]):.3f}")
            timed_out = max_seconds is not None and time.perf_counter() - start > max_seconds
            if devs and (step % eval_every == 0 or step == total or timed_out):
                ev = evaluate()
                report["dev"].append(ev)
                bar.set_postfix(loss=f"{np.mean(report['losses'][-20:]):.3f}", dev_acc1=f"{ev['acc1']:.3f}",
                                worst_gain=f"{ev['gain']:+.3f}")
                if ev["gain"] > best[1]["gain"]:
                    best, bad_evals = (_trained_state(reranker), ev), 0
                else:
                    bad_evals += 1
                    if bad_evals >= patience:
                        log.info("early stop at step %d (best worst-set gain %+.4f at step %d)", step,
                                 best[1]["gain"], best[1]["step"])
                        break
            if timed_out:
                log.info("stopped after %.0f s (max_seconds)", time.perf_counter() - start)
                break
    finally:
        bar.close()
    train_seconds = time.perf_counter() - start
    state, ev = best
    if state is not None:
        _restore_state(reranker, state)
        report.update(best_dev_acc1=ev["acc1"], best_dev_gain=ev["gain"], best_dev_sets=ev["sets"],
                      best_step=ev["step"])
    reranker.model.eval()
    reranker.head.eval()
    if devs and calibrate:
        t = time.perf_counter()
        report["generator_weight"] = calibrate_generator_weight(
            reranker, {n: (ex, dev_cands[n]) for n, ex in devs.items()}, terminology)
        report["calibration_seconds"] = round(time.perf_counter() - t, 1)
    report.update({"steps": step, "train_seconds": round(train_seconds, 1), "eval_seconds": round(eval_seconds, 1),
                   "seconds_per_mention": round((train_seconds - eval_seconds) / max(1, step * batch_size), 4),
                   "parameters": reranker.parameter_counts()})
    if output_dir is not None:
        reranker.save(output_dir, lam=lam, k=k, training={
            "data": train.description, "dev": {n: ex.description for n, ex in devs.items()} or None,
            **{key: v for key, v in report.items() if key not in ("losses", "dev", "generator_weight")},
            "final_loss": float(np.mean(report["losses"][-20:])) if report["losses"] else None,
        }, dev_metrics=report["dev"])
    return reranker, report


def _activate_training(reranker: Reranker) -> None:
    """The adapter setup of training (evaluation in between switches adapters per language)."""
    if reranker.mode == "stack":
        reranker._activate(reranker.source_lang)
    elif reranker.mode == "adapter":
        reranker._activate(None)


def _trained_state(reranker: Reranker) -> dict:
    model = {n: p.detach().clone() for n, p in reranker.model.named_parameters() if p.requires_grad}
    head = {n: p.detach().clone() for n, p in reranker.head.named_parameters()}
    return {"model": model, "head": head}


def _restore_state(reranker: Reranker, state: dict) -> None:
    reranker.model.load_state_dict(state["model"], strict=False)
    reranker.head.load_state_dict(state["head"])


def save_report(report: dict, path: str | os.PathLike) -> Path:
    import json

    from .._io import atomic_write

    path = Path(path)
    with atomic_write(path) as f:
        json.dump(report, f, indent=2)
    return path
