"""Alignment losses over a batch of name embeddings labelled by concept.

- ``ms``: multi-similarity loss with online hard-pair mining, as SapBERT (Liu et al., 2021) trains it, from
  ``pytorch-metric-learning`` (MultiSimilarityMiner picks the informative pairs, MultiSimilarityLoss weighs them).
- ``infonce``: symmetric in-batch InfoNCE between each concept's first name and its second name (the other
  concepts of the batch are the negatives), written here in a few lines.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from xnorm.errors import ConfigError

if TYPE_CHECKING:
    import torch

LOSSES = ("ms", "infonce")
# SapBERT's settings (alpha, beta, base of the loss; epsilon of the miner).
MS_DEFAULTS = {"alpha": 1.0, "beta": 60.0, "base": 0.5, "epsilon": 0.2}
INFONCE_TEMPERATURE = 0.05


class MultiSimilarity:
    """Multi-similarity loss on cosine similarities, over the pairs a multi-similarity miner keeps."""

    def __init__(self, alpha: float = 1.0, beta: float = 60.0, base: float = 0.5, epsilon: float = 0.2) -> None:
        from pytorch_metric_learning import losses, miners

        self.loss = losses.MultiSimilarityLoss(alpha=alpha, beta=beta, base=base)
        self.miner = miners.MultiSimilarityMiner(epsilon=epsilon)

    def __call__(self, embeddings: "torch.Tensor", labels: "torch.Tensor", first: "torch.Tensor") -> "torch.Tensor":
        pairs = self.miner(embeddings, labels)
        return self.loss(embeddings, labels, pairs)


class InfoNCE:
    """Symmetric InfoNCE: first name of concept i vs second name of every concept in the batch, and back."""

    def __init__(self, temperature: float = INFONCE_TEMPERATURE) -> None:
        self.temperature = temperature

    def __call__(self, embeddings: "torch.Tensor", labels: "torch.Tensor", first: "torch.Tensor") -> "torch.Tensor":
        import torch
        import torch.nn.functional as F

        # The sampler puts each concept's names together, first name first: the name right after a first name
        # is its positive (one pair per concept; extra names, if any, are not used by this loss).
        idx = torch.nonzero(first, as_tuple=True)[0]
        partner = idx + 1
        anchors = F.normalize(embeddings[idx], dim=-1)
        positives = F.normalize(embeddings[partner], dim=-1)
        logits = anchors @ positives.T / self.temperature
        target = torch.arange(len(idx), device=logits.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def make_loss(name: str, **options: float) -> Callable:
    """The loss called ``name`` (one of ``LOSSES``) with its options."""
    if name == "ms":
        unknown = set(options) - set(MS_DEFAULTS)
        if unknown:
            raise ConfigError(f"unknown ms loss options {sorted(unknown)}.", field="loss",
                              fix=f"use {sorted(MS_DEFAULTS)}.")
        return MultiSimilarity(**{**MS_DEFAULTS, **options})
    if name == "infonce":
        unknown = set(options) - {"temperature"}
        if unknown:
            raise ConfigError(f"unknown infonce options {sorted(unknown)}.", field="loss", fix="use temperature.")
        return InfoNCE(**options)
    raise ConfigError(f"unknown loss {name!r}.", field="loss", fix=f"use one of {', '.join(LOSSES)}.")
