"""Encoder on the tiny BERT from conftest: shapes, normalisation, order, batching, settings, config, errors."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from xnorm.errors import ArtifactError, ConfigError, InputError
from xnorm.models.encoder import Encoder, read_model_settings

TEXTS = [
    "seizure", "patient presented with recurrent seizures and developmental delay", "fever",
    "ventricular septal defect", "baja estatura", "発作", "intellectual disability", "a", "microcephaly",
    "abnormality of the heart", "Krampfanfall", "crise d'épilepsie", "short stature", "hypotonia",
]


@pytest.fixture(scope="module")
def enc(tiny_model_dir):
    return Encoder(tiny_model_dir, batch_size=4, device="cpu")


def test_shapes_dtype_and_normalisation(enc):
    v = enc.encode(TEXTS)
    assert v.shape == (len(TEXTS), enc.dim) == (len(TEXTS), 32)
    assert v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert enc.encode([]).shape == (0, 32)


def test_unnormalised_vectors_are_not_unit_length(tiny_model_dir):
    raw = Encoder(tiny_model_dir, normalize=False, device="cpu").encode(TEXTS)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-3)


def test_order_is_preserved_under_length_sorting(enc):
    together = enc.encode(TEXTS)
    alone = np.stack([enc.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    # The sort really reorders: the longest text is not first in the input.
    assert together.shape[0] == len(TEXTS)


def test_batch_size_one_equals_sixty_four(tiny_model_dir):
    texts = TEXTS * 7  # 98 texts: several chunks of batch 1, two batches of 64
    a = Encoder(tiny_model_dir, batch_size=1, device="cpu").encode(texts)
    b = Encoder(tiny_model_dir, batch_size=64, device="cpu").encode(texts)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_mean_and_cls_pooling_differ_and_cls_is_first_token(tiny_model_dir):
    import torch

    mean = Encoder(tiny_model_dir, device="cpu").encode(TEXTS[:3])
    cls_enc = Encoder(tiny_model_dir, pooling="cls", normalize=False, device="cpu")
    cls = cls_enc.encode(TEXTS[:3])
    assert not np.allclose(mean, cls / np.linalg.norm(cls, axis=1, keepdims=True), atol=1e-3)
    batch = cls_enc.tokenizer(TEXTS[:1], return_tensors="pt")
    with torch.inference_mode():
        expected = cls_enc.model(**batch).last_hidden_state[0, 0].numpy()
    np.testing.assert_allclose(cls[0], expected, atol=1e-5)


def test_mean_pooling_matches_manual_unpadded_forward(tiny_model_dir):
    import torch

    enc = Encoder(tiny_model_dir, normalize=False, device="cpu")
    got = enc.encode(["ventricular septal defect", "a"])
    for text, row in zip(["ventricular septal defect", "a"], got):
        batch = enc.tokenizer([text], return_tensors="pt")
        with torch.inference_mode():
            h = enc.model(**batch).last_hidden_state[0]
        np.testing.assert_allclose(row, h.mean(0).numpy(), atol=1e-5)


def test_prefixes_apply_by_kind(tiny_model_dir):
    enc = Encoder(tiny_model_dir, query_prefix="query: ", passage_prefix="passage: ", device="cpu")
    plain = Encoder(tiny_model_dir, device="cpu")
    q, p = enc.encode(["fever"], kind="query"), enc.encode(["fever"], kind="passage")
    assert not np.allclose(q, p, atol=1e-4)
    np.testing.assert_allclose(q, plain.encode(["query: fever"]), atol=1e-5)
    np.testing.assert_allclose(p, plain.encode(["passage: fever"]), atol=1e-5)


def test_truncation_to_max_length(tiny_model_dir):
    import torch

    enc = Encoder(tiny_model_dir, max_length=4, normalize=False, device="cpu")
    long = "patient presented with recurrent seizures and developmental delay"
    full = enc.tokenizer([long])["input_ids"][0]
    cut = enc.tokenizer([long], truncation=True, max_length=4)["input_ids"][0]
    assert len(full) > 4 and len(cut) == 4
    truncated = torch.tensor([cut])
    with torch.inference_mode():
        expected = enc.model(input_ids=truncated).last_hidden_state[0].mean(0).numpy()
    np.testing.assert_allclose(enc.encode([long])[0], expected, atol=1e-5)


def test_config_round_trip(enc, tiny_model_dir):
    cfg = enc.config()
    json.dumps(cfg)  # serialisable
    assert cfg["model"] == str(tiny_model_dir.resolve())
    again = Encoder.from_config(cfg)
    assert again.config() == cfg
    np.testing.assert_allclose(again.encode(TEXTS), enc.encode(TEXTS), atol=1e-6)


def test_from_config_rejects_unknown_keys(enc):
    with pytest.raises(ConfigError, match="poolling"):
        Encoder.from_config({**enc.config(), "poolling": "cls"})


def test_two_encoders_in_one_process(tiny_model_dir):
    a = Encoder(tiny_model_dir, pooling="mean", device="cpu")
    b = Encoder(tiny_model_dir, pooling="cls", device="cpu")
    assert a.model is not b.model
    va, vb = a.encode(TEXTS), b.encode(TEXTS)
    assert not np.allclose(va, vb, atol=1e-3)
    np.testing.assert_allclose(a.encode(TEXTS), va, atol=1e-6)  # b did not change a


def test_settings_from_xnorm_encoder_json(tiny_model_dir, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "xnorm_encoder.json").write_text(
        json.dumps({"pooling": "cls", "query_prefix": "query: ", "passage_prefix": "passage: ", "max_length": 16})
    )
    enc = Encoder(folder, device="cpu")
    assert (enc.pooling, enc.query_prefix, enc.passage_prefix, enc.max_length) == ("cls", "query: ", "passage: ", 16)
    assert Encoder(folder, pooling="mean", max_length=8, device="cpu").pooling == "mean"  # explicit wins


def test_settings_from_sentence_transformers_folder(tiny_model_dir, tmp_path):
    folder = tmp_path / "st"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    )
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": "q: ", "passage": "p: "}})
    )
    assert read_model_settings(folder) == {"pooling": "cls", "query_prefix": "q: ", "passage_prefix": "p: "}
    enc = Encoder(folder, device="cpu")
    assert (enc.pooling, enc.query_prefix, enc.max_length) == ("cls", "q: ", 32)


def test_sentence_transformers_encoding_agrees(tiny_model_dir, tmp_path):
    """Our mean pooling equals sentence-transformers' own on the same folder."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    word = Transformer(str(tiny_model_dir), max_seq_length=32)
    st = SentenceTransformer(modules=[word, Pooling(word.get_embedding_dimension(), "mean")],
                             device="cpu")
    st.save(str(tmp_path / "st"))
    ours = Encoder(tmp_path / "st", device="cpu").encode(TEXTS)
    theirs = st.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_default_settings_without_any_declaration(enc):
    assert (enc.pooling, enc.query_prefix, enc.passage_prefix, enc.max_length) == ("mean", "", "", 32)


@pytest.mark.parametrize("precision", ["int8", "int8-full"])
def test_int8_precision_stays_close(tiny_model_dir, precision):
    import torch

    fp32 = Encoder(tiny_model_dir, device="cpu").encode(TEXTS)
    enc = Encoder(tiny_model_dir, precision=precision, device="cpu")
    int8 = enc.encode(TEXTS)
    cos = (fp32 * int8).sum(1)
    assert cos.min() > 0.95 and not np.allclose(fp32, int8, atol=1e-6)  # quantized, yet close
    assert enc.config()["precision"] == precision
    quantized = {n for n, m in enc.model.named_modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)}
    assert any(".attention." in n for n in quantized)
    assert any("intermediate" in n for n in quantized) == (precision == "int8-full")


def test_bf16_precision_stays_close_and_runs_on_torch(tiny_model_dir):
    import torch

    fp32 = Encoder(tiny_model_dir, device="cpu").encode(TEXTS)
    enc = Encoder(tiny_model_dir, precision="bf16", device="cpu", backend="auto")  # auto: torch for bf16
    calls = []
    original = torch.autocast.__init__

    def spy(self, device_type, *args, **kwargs):
        calls.append((device_type, kwargs.get("dtype"), kwargs.get("enabled", True)))
        original(self, device_type, *args, **kwargs)

    torch.autocast.__init__ = spy
    try:
        bf16 = enc.encode(TEXTS)
    finally:
        torch.autocast.__init__ = original
    assert calls and all(c == ("cpu", torch.bfloat16, True) for c in calls)
    assert bf16.dtype == np.float32 and np.allclose(np.linalg.norm(bf16, axis=1), 1, atol=1e-5)
    cos = (fp32 * bf16).sum(1)
    assert cos.min() > 0.99 and not np.array_equal(fp32, bf16)  # bfloat16 products: close, not equal
    assert enc.config()["precision"] == "bf16" and enc.config()["backend"] == "torch"
    assert np.array_equal(Encoder.from_config(enc.config()).encode(TEXTS), bf16)
    with pytest.raises(ConfigError) as e:
        Encoder(tiny_model_dir, precision="bf16", device="cpu", backend="onnx")
    assert e.value.field == "precision"


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bf16_where_native_and_stays_auto_in_the_config(tiny_model_dir, monkeypatch, native):
    from xnorm.models import encoder as encoder_module

    monkeypatch.setattr(encoder_module, "_native_bf16", lambda: native)
    enc = Encoder(tiny_model_dir, precision="auto", device="cpu", backend="auto")
    assert enc.precision == ("bf16" if native else "fp32")
    assert enc.backend == "torch" if native else enc.backend in ("torch", "onnx")
    assert enc.config()["precision"] == "auto"  # a saved index decides again on the machine that loads it
    assert Encoder(tiny_model_dir, precision="auto", device="cpu", backend="onnx").precision == "fp32"


def test_bad_arguments_are_user_errors(tiny_model_dir, enc):
    with pytest.raises(ConfigError, match="pooling"):
        Encoder(tiny_model_dir, pooling="max")
    with pytest.raises(ConfigError, match="precision"):
        Encoder(tiny_model_dir, precision="fp8")
    with pytest.raises(ConfigError, match="batch_size"):
        Encoder(tiny_model_dir, batch_size=0)
    with pytest.raises(ConfigError, match="positions"):
        Encoder(tiny_model_dir, max_length=1000, device="cpu")
    with pytest.raises(ConfigError, match="kind"):
        enc.encode(["x"], kind="document")
    with pytest.raises(InputError, match="list"):
        enc.encode("fever")
    with pytest.raises(InputError, match="text 1"):
        enc.encode(["fever", None])


def test_missing_folder_and_unreachable_hub_are_artifact_errors(tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        Encoder(tmp_path / "nope")
    with pytest.raises(ArtifactError, match="not found"):
        Encoder("./no/such/folder")
    with pytest.raises(ArtifactError, match="hub") as info:
        Encoder("some-org/some-model-that-is-not-cached")
    assert "local-dir" in str(info.value)
    with pytest.raises(ArtifactError, match="hub"):
        Encoder("sapbert-xlmr")  # a registry hub model: offline here


def test_broken_local_folder_is_an_artifact_error(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    with pytest.raises(ArtifactError, match="cannot load"):
        Encoder(tmp_path / "broken")
