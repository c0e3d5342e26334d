"""The rank-regularized listwise loss of the reranker (xMEN): L = CE(softmax(s), y) + λ·‖p − q‖₂.

Scales. The reranker's output for a mention is ``p = softmax(s)`` over its k candidates (what the linker
reports), so the regularizer compares distributions: ``q`` is the candidate generator's scores put on the same
simplex — min-max normalised over the mention's own candidates (worst 0, best 1; the fused scores of a
``CandidateIndex`` have no fixed range, and min-max keeps their order and relative gaps) and divided by their
sum. ``λ·‖p − q‖₂`` (the L2 norm, not squared, per mention, averaged over the batch) keeps the reranker from
straying far from what the generator already got right; λ = 0 gives the plain softmax cross-entropy.
Empty slots (``mask`` false) take no part in either term.

``distillation_loss``: with a teacher reranker (e.g. a full fine-tune trained on a GPU), the student also matches
the teacher's output distribution over the same candidates (KL divergence).
"""
from __future__ import annotations

import numpy as np


def generator_minmax(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each row's valid generator scores min-max normalised to [0, 1] (0 in empty slots).

    A row whose valid scores are all equal (or that has one candidate) gets 1 everywhere valid.
    """
    s = np.where(mask, scores.astype(np.float64), np.nan)
    has = mask.any(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", all="ignore"):
        lo = np.nanmin(np.where(has, s, 0.0), axis=1, keepdims=True)
        hi = np.nanmax(np.where(has, s, 0.0), axis=1, keepdims=True)
    span = hi - lo
    m = np.where(span > 0, (s - lo) / np.where(span > 0, span, 1.0), 1.0)
    return np.where(mask, np.nan_to_num(m), 0.0).astype(np.float32)


def generator_distribution(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``q[n, k]``: :func:`generator_minmax` divided by its row sum (0 in empty slots; rows of one value: uniform)."""
    m = generator_minmax(scores, mask).astype(np.float64)
    total = m.sum(axis=1, keepdims=True)
    return (m / np.where(total > 0, total, 1.0)).astype(np.float32)


def rank_regularized_loss(logits, labels, generator_q, mask, lam: float = 1.0):
    """Mean over the batch of CE(softmax(logits), label) + lam·‖softmax(logits) − generator_q‖₂.

    ``logits[n, k]`` (torch, any device), ``labels[n]`` (the gold column), ``generator_q[n, k]`` from
    :func:`generator_distribution`, ``mask[n, k]`` (bool, valid slots). Returns a scalar tensor.
    """
    import torch

    masked = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
    logp = torch.log_softmax(masked, dim=-1)
    ce = -logp.gather(1, labels.view(-1, 1)).squeeze(1)
    if lam == 0:
        return ce.mean()
    p = logp.exp() * mask
    reg = torch.linalg.vector_norm(p - generator_q * mask, ord=2, dim=-1)
    return (ce + lam * reg).mean()


def distillation_loss(logits, teacher_p, mask):
    """Mean over the batch of KL(teacher ‖ softmax(logits)) over each mention's valid candidates.

    ``teacher_p[n, k]``: another reranker's output distribution over the same candidates (0 in empty slots).
    """
    import torch

    logp = torch.log_softmax(logits.masked_fill(~mask, torch.finfo(logits.dtype).min), dim=-1)
    t = teacher_p * mask
    kl = torch.where(t > 0, t * (torch.log(t.clamp_min(1e-12)) - logp), torch.zeros_like(t))
    return kl.sum(dim=-1).mean()
