"""The generator weight: how much of the candidate generator's own ranking a reranker keeps, calibrated on dev.

A reranked mention's scores are ``softmax(s + w · g)`` over its candidates: ``s`` the reranker's logits, ``g`` the
generator's scores min-max normalised over the mention's candidates (best 1, worst 0; :func:`generator_minmax`),
``w >= 0`` the generator weight. ``w = 0`` is the reranker alone; a large ``w`` keeps the generator's order and lets
the reranker decide only between candidates the generator scored alike.

Why: a reranker trained where the generator is weak learns to overrule it, and then overrules a better generator at
test (benchmarks/results/rerank_gpu.md: Japanese −0.063 with the reranker alone). How much to trust each stage
differs by language, so ``w`` is chosen per language on the dev mentions of that language when there are at least
``min_per_language`` of them, and otherwise by the default weight: the one with the best *worst-set* acc@1 gain over
the candidates across the named dev sets (the criterion training keeps checkpoints by). Ties go to the larger
weight — the one closer to the generator. The weights live in the reranker's manifest (``generator_weight``).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..types import Candidates
from .loss import generator_minmax
from .pairs import FALLBACK_LANG
from .supervision import is_gold

GRID = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
MIN_PER_LANGUAGE = 100


def language_keys(langs) -> np.ndarray:
    """Each mention's language as the weights are keyed (an empty language counts as the fallback, English)."""
    return np.asarray([str(x) if x else FALLBACK_LANG for x in langs], dtype=object)


def fuse(logits: np.ndarray, generator_scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``logits + w · minmax(generator scores)`` per row (``weights[n]``); empty slots (``-inf`` logits) stay ``-inf``."""
    valid = np.isfinite(logits)
    g = generator_minmax(generator_scores, valid)
    return np.where(valid, np.where(valid, logits, 0.0) + weights[:, None] * g, -np.inf).astype(np.float32)


def weights_for(generator_weight: Mapping | None, langs) -> np.ndarray:
    """Per mention, the weight of its language (else the default; no calibration at all: 0, the reranker alone)."""
    keys = language_keys(langs)
    if not generator_weight:
        return np.zeros(len(keys), dtype=np.float32)
    per_lang = generator_weight.get("languages", {})
    default = float(generator_weight.get("default", 0.0))
    return np.asarray([per_lang.get(k, default) for k in keys], dtype=np.float32)


def _top1(logits: np.ndarray, cands: Candidates, w: float) -> np.ndarray:
    fused = fuse(logits, cands.scores, np.full(len(logits), w, dtype=np.float32))
    return cands.concepts[np.arange(len(cands)), fused.argmax(axis=1)]


def choose_generator_weight(sets: Mapping[str, tuple[np.ndarray, Candidates, np.ndarray, np.ndarray]], *,
                            grid=GRID, min_per_language: int = MIN_PER_LANGUAGE) -> dict:
    """The calibration (see the module doc) from named dev sets of ``(logits, candidates, gold rows, languages)``;
    gold rows ``[n]`` or ``[n, g]`` (any of a row's g counts, ``-1`` pads).

    Returns ``{"default", "languages", "grid", "min_per_language", "dev"}``; ``dev`` holds, per set and per
    calibrated language, acc@1 of the candidates, of the reranker alone and of the chosen weight.
    """
    grid = sorted(float(w) for w in grid)
    if not sets or not grid or grid[0] < 0:
        raise ValueError("calibration needs at least one dev set and a grid of weights >= 0")
    hits, cand_hits, langs = {}, {}, {}
    for name, (logits, cands, gold, lang) in sets.items():
        hits[name] = np.stack([is_gold(_top1(logits, cands, w), gold) for w in grid])  # [weights, mentions]
        cand_hits[name] = is_gold(cands.concepts[:, 0], gold)
        langs[name] = language_keys(lang)

    def best(score: np.ndarray) -> int:  # the largest weight among the best scores
        return int(np.flatnonzero(score >= score.max() - 1e-12)[-1])

    gains = np.stack([hits[n].mean(axis=1) - cand_hits[n].mean() for n in sets])  # [sets, weights]
    d = best(gains.min(axis=0))
    out: dict = {"default": grid[d], "languages": {}, "grid": grid, "min_per_language": int(min_per_language),
                 "dev": {"sets": {n: {"n": int(len(cand_hits[n])), "candidates": float(cand_hits[n].mean()),
                                      "reranker": float(hits[n][0].mean()), "chosen": float(hits[n][d].mean())}
                                  for n in sets}, "languages": {}}}
    all_langs = np.concatenate(list(langs.values()))
    for lang in sorted(set(all_langs.tolist())):
        rows = {n: langs[n] == lang for n in sets}
        n_lang = int(sum(r.sum() for r in rows.values()))
        if n_lang < min_per_language:
            continue
        lang_hits = np.concatenate([hits[n][:, rows[n]] for n in sets], axis=1)
        cand = float(np.concatenate([cand_hits[n][rows[n]] for n in sets]).mean())
        i = best(lang_hits.mean(axis=1))
        out["languages"][lang] = grid[i]
        out["dev"]["languages"][lang] = {"n": n_lang, "candidates": cand, "reranker": float(lang_hits[0].mean()),
                                         "chosen": float(lang_hits[i].mean())}
    return out


def calibrate_generator_weight(reranker, dev: Mapping[str, tuple], terminology, *, grid=GRID,
                               min_per_language: int = MIN_PER_LANGUAGE, batch_size: int = 256) -> dict:
    """Calibrate ``reranker``'s generator weight on named dev sets of ``(Examples, Candidates)``; store and return it.

    The candidates are the generator's (e.g. ``candidates_for(index, examples, k)``), gold rows from the examples.
    """
    sets = {}
    for name, (ex, cands) in dev.items():
        ex_known = ex.gold >= 0
        ex, cands = ex[np.flatnonzero(ex_known)], cands[np.flatnonzero(ex_known)]
        if len(ex):
            logits = reranker.logits(ex.mentions, cands, terminology, batch_size=batch_size)
            sets[name] = (logits, cands, ex.all_gold, ex.mentions.langs)
    if not sets:
        raise ValueError("no dev mention with a gold concept in the terminology to calibrate on")
    reranker.info["generator_weight"] = choose_generator_weight(sets, grid=grid, min_per_language=min_per_language)
    return reranker.info["generator_weight"]
