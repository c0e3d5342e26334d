"""Second stage: a cross-encoder reranker (frozen base + task adapter, optionally stacked on a language adapter).

``Reranker`` (model.py) scores (mention in context, candidate names) pairs built by ``PairEncoder`` (pairs.py);
``train_reranker`` (train.py) trains it with the rank-regularized loss (loss.py) on examples from annotations or
terminology synonyms (supervision.py); ``calibrate_generator_weight`` (calibrate.py) chooses, per language on dev,
how much of the candidate generator's ranking the reranked scores keep. ``FeatureReranker`` (feature_ranker.py)
is the light alternative: a linear ranker over generator scores, lexical overlap, hierarchy position and a memory
of the training annotations (features.py), trained in seconds on CPU, optionally with word-piece translation
tables learnt from a terminology's translations (translation.py). ``load_reranker`` opens a folder of any kind.
"""
from pathlib import Path

from .calibrate import calibrate_generator_weight
from .feature_ranker import FeatureReranker, is_feature_reranker
from .loss import generator_distribution, rank_regularized_loss
from .model import MODES, Reranker, reorder, softmax_rows
from .pairs import CandidateTexts, PairEncoder, mention_texts
from .supervision import (Examples, candidates_for, examples_from_documents, examples_from_labels,
                          examples_from_synonyms, load_examples)
from .train import place_gold, train_reranker
from .translation import TranslationModel


def load_reranker(path: str | Path, **kwargs):
    """A saved reranker of any kind: a feature reranker, an xnorm cross-encoder (``kwargs`` go to
    ``Reranker.load``) or a sentence-transformers CrossEncoder folder."""
    if is_feature_reranker(path):
        return FeatureReranker.load(path)
    return Reranker.load(path, **kwargs)


__all__ = [
    "MODES", "CandidateTexts", "Examples", "FeatureReranker", "PairEncoder", "Reranker",
    "calibrate_generator_weight", "candidates_for", "examples_from_documents", "examples_from_labels",
    "examples_from_synonyms", "generator_distribution", "load_examples", "load_reranker", "mention_texts",
    "place_gold", "rank_regularized_loss", "reorder", "softmax_rows", "train_reranker", "TranslationModel",
]
