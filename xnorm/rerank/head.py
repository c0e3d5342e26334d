"""The reranker's pooling and scoring head: torch only, no xnorm imports.

Kept apart from ``model.py`` so that code running without xnorm's dependencies — the GPU training script
``benchmarks/rerank_device.py``, which loads this file by path — computes scores exactly as the ``Reranker`` does.
"""
from __future__ import annotations


def mean_pool(hidden, mask):
    """Mean of ``hidden`` [b, t, h] over the positions where ``mask`` [b, t] is true."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def pool(hidden, attention_mask, segments, pooling: str):
    """What the head reads from the last hidden states [b, t, h] (fp32) of a pair batch.

    ``mean``: the mean over the pair's tokens; ``cls``: the first token's state; ``segments``: the mention's and
    the candidate's tokens mean-pooled apart (``segments`` [b, t]: 0 mention, 1 candidate, -1 special or pad)
    and their interaction ``[m * c, |m - c|, cos(m, c)]``.
    """
    import torch

    if pooling == "mean":
        return mean_pool(hidden, attention_mask.to(hidden.device) > 0)
    if pooling == "segments":
        if segments is None:
            raise ValueError("pooling 'segments' needs the pairs' segments (a fast tokenizer's sequence ids)")
        seg = segments.to(hidden.device)
        m, c = mean_pool(hidden, seg == 0), mean_pool(hidden, seg == 1)
        cos = torch.nn.functional.cosine_similarity(m, c, dim=-1, eps=1e-6).unsqueeze(-1)
        return torch.cat([m * c, (m - c).abs(), cos], dim=-1)
    return hidden[:, 0]


def scoring_head(hidden: int, dropout: float, prior_weight: float | None, pooling: str = "mean"):
    """BERT's classification head shape (dense + tanh + one score) plus, optionally, the generator prior.

    Residual reranking: score = mlp(pooled) + w · minmax(generator score), w learned (``prior_weight`` at start)
    and the mlp's last layer zero-initialised, so an untrained reranker ranks exactly as the candidate
    generator did and training learns corrections. On a CPU budget (hundreds of training mentions, not
    hundreds of thousands) a cross-encoder started from scratch ranks worse than the generator it reranks;
    this start cannot. ``prior_weight=None``: a plain cross-encoder score.
    """
    import torch

    width = 2 * hidden + 1 if pooling == "segments" else hidden

    class ScoringHead(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mlp = torch.nn.Sequential(torch.nn.Dropout(dropout), torch.nn.Linear(width, hidden),
                                           torch.nn.Tanh(), torch.nn.Dropout(dropout), torch.nn.Linear(hidden, 1))
            self.use_prior = prior_weight is not None
            if self.use_prior:
                torch.nn.init.zeros_(self.mlp[-1].weight)
                torch.nn.init.zeros_(self.mlp[-1].bias)
                self.prior_weight = torch.nn.Parameter(torch.tensor(float(prior_weight)))

        def forward(self, pooled, prior=None):
            score = self.mlp(pooled).squeeze(-1)
            if self.use_prior:
                score = score + self.prior_weight * prior
            return score

    return ScoringHead()
