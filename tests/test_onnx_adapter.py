"""ONNX graphs of adapter encoders: the bottleneck adapter written into the graph gives the torch vectors, is
checked against the `adapters` library before it is cached, and other adapter types are refused clearly."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from xnorm.errors import ArtifactError, ConfigError  # noqa: E402
from xnorm.models import adapter_graph, onnx_backend  # noqa: E402
from xnorm.models.encoder import Encoder  # noqa: E402
from xnorm.terminology import TerminologyBuilder  # noqa: E402
from xnorm.training import train_encoder  # noqa: E402

TEXTS = ["fiebre", "short stature", "convulsión epiléptica con hipotonía", "x", "abnormality of the heart"]
WORDS = ["fever", "headache", "seizure", "heart", "kidney", "stature", "hypotonia", "microcephaly"]
ES = ["fiebre", "cefalea", "convulsión", "corazón", "riñón", "estatura", "hipotonía", "microcefalia"]


def _terminology():
    b = TerminologyBuilder()
    for i in range(24):
        a, c = i % len(WORDS), (i * 3 + 1) % len(WORDS)
        cid = f"HP:{i:07d}"
        b.add_concept(cid, f"{WORDS[a]} {WORDS[c]}")
        b.add_name(cid, f"{WORDS[a]} {WORDS[c]}", "en", "preferred")
        b.add_name(cid, f"{ES[c]} {ES[a]}", "es", "translation")
    return b.build(name="tiny-hpo")


def _train(base: Path, out: Path, **kw) -> Path:
    train_encoder(_terminology(), str(base), out, mode="adapter", languages=["es"], steps=6, lr=5e-2,
                  progress=False, batch_size=8, max_length=16, dev_every=3, dev_queries=8, dev_distractors=8,
                  checkpoint_every=3, adapter_size=2, threads=1, patience=0, **kw)
    return out


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bottleneck (seq_bn) adapter trained on the tiny BERT: the kind `xnorm train-encoder` ships."""
    return _train(tiny_model_dir, tmp_path_factory.mktemp("seq-bn") / "adapter")


def test_adapter_graph_gives_the_torch_vectors(trained: Path, tiny_model_dir: Path) -> None:
    torch_enc = Encoder(trained, device="cpu", batch_size=2)
    # auto keeps adapter encoders on torch (no measurable gain in fp32); onnx is there on request.
    assert Encoder(trained, device="cpu", backend="auto").backend == "torch"
    onnx = Encoder(trained, device="cpu", batch_size=2, backend="onnx")
    assert onnx.config()["backend"] == "onnx"
    ref, got = torch_enc.encode(TEXTS), onnx.encode(TEXTS)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    # The adapter matters: the graph is not the base model's (which the same tolerance would reject).
    assert np.abs(Encoder(tiny_model_dir, device="cpu").encode(TEXTS) - ref).max() > 1e-3
    (graph,) = Path(onnx_backend.xnorm_home(), "onnx").glob("*/encoder-*-fp32.onnx")
    manifest = json.loads(graph.with_suffix(".json").read_text())
    assert manifest["adapter_dir"] == str(trained) and manifest["fused"]["Attention"] == 2
    # int8 graphs of the adapter encoder quantize the same graph: close, not equal.
    q = Encoder(trained, device="cpu", backend="onnx", precision="int8-full").encode(TEXTS)
    assert float((q * ref).sum(1).min()) > 0.95


def test_adapter_graph_key_follows_the_adapter_weights(trained: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    key = onnx_backend.graph_key(tiny_model_dir, trained)
    assert key != onnx_backend.model_key(tiny_model_dir)
    other = tmp_path / "other"
    shutil.copytree(trained, other)
    data = bytearray((other / "adapter.safetensors").read_bytes())
    data[-1] ^= 0x01  # another weight, same file size
    (other / "adapter.safetensors").write_bytes(bytes(data))
    assert onnx_backend.graph_key(tiny_model_dir, other) != key


def test_export_is_checked_against_the_adapters_library(trained: Path, tiny_model_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # A writing of the adapter that forgets it (the base model alone) must be caught before a graph is cached.
    monkeypatch.setattr(adapter_graph, "inline_adapter", lambda model, adapter_dir: model)
    with pytest.raises(ArtifactError, match="differs from the adapters library"):
        Encoder(trained, device="cpu", backend="onnx")
    assert not list(Path(onnx_backend.xnorm_home()).glob("onnx/*/*.onnx"))


def test_other_adapter_types_are_refused_clearly(tiny_model_dir: Path, tmp_path: Path) -> None:
    lora = _train(tiny_model_dir, tmp_path / "lora", adapter_type="lora")
    assert adapter_graph.unsupported_reason(lora) is not None
    with pytest.raises(ConfigError, match="bottleneck adapter"):
        Encoder(lora, device="cpu", backend="onnx")


def test_unsupported_bottleneck_settings_are_named(trained: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mh"
    shutil.copytree(trained, folder)
    path = folder / adapter_graph.CONFIG_FILE
    data = json.loads(path.read_text())
    data["config"]["mh_adapter"] = True
    path.write_text(json.dumps(data))
    assert "mh_adapter" in adapter_graph.unsupported_reason(folder)
    with pytest.raises(ArtifactError, match="mh_adapter"):
        adapter_graph.inline_adapter(object(), folder)


def test_a_dense_index_runs_the_adapter_graph_on_request(trained: Path, tmp_path: Path) -> None:
    from xnorm.candidates import CandidateIndex
    from xnorm.types import Mentions

    term = _terminology()
    mentions = Mentions.from_texts(["fiebre corazón", "cefalea"], lang="es")
    config = {"generators": [{"type": "dense", "model": str(trained), "backend": "onnx"}]}
    index = CandidateIndex.build(term, config)
    reference = CandidateIndex.build(term, {"generators": [{"type": "dense", "model": str(trained),
                                                            "precision": "fp32"}]})  # torch fp32
    got, ref = index.candidates(mentions, k=3), reference.candidates(mentions, k=3)
    np.testing.assert_array_equal(got.concepts, ref.concepts)
    np.testing.assert_allclose(got.scores, ref.scores, atol=1e-5)
    index.save(tmp_path / "index")
    loaded = CandidateIndex.load(tmp_path / "index")
    assert loaded.generators[0].encoder.backend == "onnx"
    np.testing.assert_array_equal(loaded.candidates(mentions, k=3).concepts, got.concepts)


def test_adapter_encoder_runs_on_openvino(trained: Path) -> None:
    pytest.importorskip("openvino")
    ref = Encoder(trained, device="cpu", batch_size=2).encode(TEXTS)
    fp32 = Encoder(trained, device="cpu", batch_size=2, backend="openvino", precision="fp32")
    np.testing.assert_allclose(fp32.encode(TEXTS), ref, atol=1e-5)  # the adapter is in the graph
    int8 = Encoder(trained, device="cpu", backend="openvino", precision="int8").encode(TEXTS)
    assert float((int8 * ref).sum(1).min()) > 0.95
