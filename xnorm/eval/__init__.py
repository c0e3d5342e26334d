"""Evaluation of entity normalization: metrics as pure functions over arrays, plus a BigBIO document runner.

- :mod:`.ranking`: mention level (accuracy@1, recall@k, MRR) and :func:`rank_by_score`.
- :mod:`.entity`: entity level strict / partial / loose precision, recall, F1 (micro and macro).
- :mod:`.hierarchy`: lenient@1, top answers an is_a level finer or coarser than the gold.
- :mod:`.breakdown`: mention-level metrics per language, type or any key column.
- :mod:`.stats`: seeded bootstrap confidence intervals and paired significance tests.
- :mod:`.documents`: align predicted and gold BigBIO kb documents and compute everything (``xnorm evaluate``).
- :mod:`.report`: aligned text tables.
"""
from __future__ import annotations

from .breakdown import breakdown
from .documents import align_documents, evaluate_documents, evaluate_files, normalize_db_id
from .entity import EntityTable, entity_metrics
from .hierarchy import hierarchy_metrics, lineage
from .ranking import (
    DEFAULT_KS, first_hit_ranks, hit_matrix, mention_metrics, metrics_from_ranks, per_mention_values, rank_by_score,
)
from .report import format_report
from .stats import PairedTest, approximate_randomization, bootstrap_ci, paired_bootstrap

__all__ = [
    "DEFAULT_KS", "EntityTable", "PairedTest", "align_documents", "approximate_randomization", "bootstrap_ci",
    "breakdown", "entity_metrics", "evaluate_documents", "evaluate_files", "first_hit_ranks", "format_report",
    "hierarchy_metrics", "hit_matrix", "lineage", "mention_metrics", "metrics_from_ranks", "normalize_db_id",
    "paired_bootstrap", "per_mention_values", "rank_by_score",
]
