"""Training xnorm's own models: encoder self-alignment on terminology synonyms (``train_encoder``)."""
from __future__ import annotations

from xnorm.training.encoder_trainer import TrainConfig, TrainResult, train_encoder
from xnorm.training.pairs import ConceptBatchSampler, ConceptSplit, split_concepts, training_names

__all__ = ["ConceptBatchSampler", "ConceptSplit", "TrainConfig", "TrainResult", "split_concepts", "train_encoder",
           "training_names"]
