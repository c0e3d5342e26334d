"""ONNX Runtime backend of ``Encoder``: same vectors as torch, cached graphs reused, corrupted ones rebuilt."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from xnorm.errors import ArtifactError, ConfigError  # noqa: E402
from xnorm.models import onnx_backend  # noqa: E402
from xnorm.models.encoder import Encoder  # noqa: E402

TEXTS = ["abnormality of the heart", "seizure", "short stature with broad thumbs and a very long name here",
         "x", "Hypoplasia of the corpus callosum", "fièvre récurrente", "", "kidney cyst"]


@pytest.fixture()
def model_dir(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny BERT, so each test starts without cached graphs."""
    dst = tmp_path / "tiny"
    shutil.copytree(tiny_model_dir, dst, ignore=shutil.ignore_patterns("onnx"))  # other tests may have exported
    return dst


def _graphs(model_dir: Path) -> list[Path]:
    return sorted((model_dir / "onnx").glob("*.onnx"))


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_onnx_embeddings_match_torch(model_dir: Path, pooling: str) -> None:
    ref = Encoder(model_dir, pooling=pooling, device="cpu", batch_size=3).encode(TEXTS)
    enc = Encoder(model_dir, pooling=pooling, device="cpu", batch_size=3, backend="onnx")
    got = enc.encode(TEXTS)
    assert got.shape == ref.shape and got.dtype == np.float32
    # Batches of 3 sorted by length: padded and unpadded rows both go through the graph. The empty text has no
    # token with this tokenizer: mean pooling gives it the zero vector in both backends.
    nonzero = np.linalg.norm(ref, axis=1) > 0
    assert nonzero.sum() >= len(TEXTS) - 1
    assert float((got * ref).sum(1)[nonzero].min()) > 1 - 1e-4
    assert np.allclose(got, ref, atol=1e-4)
    assert enc.config()["backend"] == "onnx"
    again = Encoder.from_config(enc.config())
    assert again.backend == "onnx" and np.allclose(again.encode(TEXTS[:2]), got[:2], atol=1e-6)


def test_int8_graphs_stay_close(model_dir: Path) -> None:
    pytest.importorskip("onnx")
    ref = Encoder(model_dir, device="cpu").encode(TEXTS)
    for precision in ("int8", "int8-full"):
        got = Encoder(model_dir, device="cpu", backend="onnx", precision=precision).encode(TEXTS)
        cos = (got * ref).sum(1)[np.linalg.norm(ref, axis=1) > 0]
        assert cos.min() > 0.95, precision  # int8 weights: close to fp32, not equal
    names = [p.name for p in _graphs(model_dir)]
    assert len(names) == 3 and {n.rsplit("-", 1)[-1] for n in names} == {"fp32.onnx", "int8.onnx", "full.onnx"}


def test_cached_graph_is_reused(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = Encoder(model_dir, device="cpu", backend="onnx").encode(TEXTS)
    (graph,) = _graphs(model_dir)
    stamp = graph.stat().st_mtime_ns

    def no_export(*args, **kwargs):
        raise AssertionError("the cached graph should have been reused")

    monkeypatch.setattr(onnx_backend, "_export", no_export)
    second = Encoder(model_dir, device="cpu", backend="onnx").encode(TEXTS)
    assert graph.stat().st_mtime_ns == stamp
    assert np.array_equal(first, second)


def test_corrupted_graph_is_rebuilt(model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    ref = Encoder(model_dir, device="cpu", backend="onnx").encode(TEXTS)
    (graph,) = _graphs(model_dir)
    weights = onnx_backend.data_file(graph)  # the weights live beside the graph, memory-mapped by ONNX Runtime
    assert weights.stat().st_size > 10 * graph.stat().st_size
    for damaged in (weights, graph):
        data = bytearray(damaged.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one flipped byte
        damaged.write_bytes(bytes(data))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="xnorm.models.onnx_backend"):
            got = Encoder(model_dir, device="cpu", backend="onnx").encode(TEXTS)
        assert "stale or corrupted" in caplog.text, damaged.name
        assert np.allclose(got, ref, atol=1e-6)
        manifest = json.loads(graph.with_suffix(".json").read_text())
        assert manifest["sha256"] == onnx_backend.sha256_file(graph)
        assert manifest["data_sha256"] == onnx_backend.sha256_file(weights)


def test_unloadable_graph_with_matching_checksum_is_a_clear_error(model_dir: Path) -> None:
    graph = onnx_backend.ensure_graph(model_dir)
    graph.write_bytes(b"not an onnx graph")
    manifest = graph.with_suffix(".json")
    data = json.loads(manifest.read_text())
    data.update(size=graph.stat().st_size, sha256=onnx_backend.sha256_file(graph))
    manifest.write_text(json.dumps(data))
    with pytest.raises(ArtifactError) as err:
        Encoder(model_dir, device="cpu", backend="onnx")
    assert str(graph) in str(err.value) and "delete the file" in str(err.value)


def test_changed_weights_give_a_new_graph(model_dir: Path) -> None:
    old = onnx_backend.ensure_graph(model_dir)
    weights = model_dir / "model.safetensors"
    from safetensors.numpy import load_file, save_file

    tensors = load_file(weights)
    name = next(k for k in tensors if k.endswith("word_embeddings.weight"))
    tensors[name] = tensors[name] * 2
    save_file(tensors, weights, metadata={"format": "pt"})
    new = onnx_backend.ensure_graph(model_dir)
    assert new != old and new.is_file()
    ref = Encoder(model_dir, device="cpu").encode(TEXTS)
    got = Encoder(model_dir, device="cpu", backend="onnx").encode(TEXTS)
    assert np.allclose(got, ref, atol=1e-4)


def test_read_only_model_folder_caches_under_xnorm_home(model_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Root ignores file permissions, so the "not writable" answer is simulated.
    monkeypatch.setattr(onnx_backend.os, "access", lambda path, mode: False)
    monkeypatch.setenv("XNORM_HOME", str(tmp_path / "home"))
    graph = onnx_backend.ensure_graph(model_dir)
    assert graph.is_relative_to(tmp_path / "home" / "onnx") and not (model_dir / "onnx").exists()


def test_bad_settings_are_config_errors(model_dir: Path) -> None:
    with pytest.raises(ConfigError):
        Encoder(model_dir, device="cpu", backend="tensorrt")
    with pytest.raises(ConfigError):
        Encoder(model_dir, device="cuda", backend="onnx")
    with pytest.raises(ConfigError):
        onnx_backend.ensure_graph(model_dir, precision="fp16")


def test_fp32_graph_is_fused_and_verified(model_dir: Path) -> None:
    onnx = pytest.importorskip("onnx")
    graph = onnx_backend.ensure_graph(model_dir)
    manifest = json.loads(graph.with_suffix(".json").read_text())
    # The tiny BERT has 2 layers: one Attention op and two skip-LayerNorms per layer, embeddings fused.
    assert manifest["format"] == onnx_backend.GRAPH_FORMAT == 3
    assert manifest["fused"] == {"EmbedLayerNormalization": 1, "Attention": 2, "BiasGelu": 2,
                                 "SkipLayerNormalization": 4}
    ops = {n.op_type for n in onnx.load(str(graph)).graph.node}
    assert {"Attention", "SkipLayerNormalization"} <= ops and "Softmax" not in ops


def test_failed_fusion_keeps_the_exported_graph(model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("onnx")
    from onnxruntime.transformers import optimizer

    def broken(*args, **kwargs):
        raise ValueError("unsupported pattern")

    monkeypatch.setattr(optimizer, "optimize_model", broken)
    with caplog.at_level(logging.WARNING, logger="xnorm.models.onnx_backend"):
        got = Encoder(model_dir, device="cpu", backend="onnx").encode(TEXTS)
    assert "stays unfused" in caplog.text and "unsupported pattern" in caplog.text
    (graph,) = _graphs(model_dir)
    assert json.loads(graph.with_suffix(".json").read_text())["fused"] is None
    ref = Encoder(model_dir, device="cpu").encode(TEXTS)
    assert np.allclose(got, ref, atol=1e-4)


def test_inexact_fusion_is_rejected(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fused graph whose output differs from the export (here: the export's output doubled by a fake
    # verification run) is not used.
    pytest.importorskip("onnx")
    real = onnx_backend._run_once
    calls = []

    def skewed(graph: Path, feed: dict) -> np.ndarray:
        calls.append(graph)
        out = real(graph, feed)
        return out * 2 if len(calls) == 2 else out

    monkeypatch.setattr(onnx_backend, "_run_once", skewed)
    graph = onnx_backend.ensure_graph(model_dir)
    manifest = json.loads(graph.with_suffix(".json").read_text())
    assert manifest["fused"] is None and "differs" in manifest["why"]


def test_int8_keeps_the_feed_forward_outputs_in_fp32(model_dir: Path) -> None:
    onnx = pytest.importorskip("onnx")
    fp32 = onnx_backend.ensure_graph(model_dir)
    chosen = onnx_backend.quantized_nodes(fp32, "int8")
    assert onnx_backend.quantized_nodes(fp32, "int8-full") is None
    assert chosen and not any("/output/dense/" in n and "/attention/" not in n for n in chosen)
    int8 = onnx.load(str(onnx_backend.ensure_graph(model_dir, precision="int8"))).graph
    float_matmuls = [n.name for n in int8.node if n.op_type == "MatMul"]
    # 2 layers: the FFN output projection of each stays a float MatMul; QKV (fused Attention) is quantized.
    assert len(float_matmuls) == 2 and all("/output/dense/" in n for n in float_matmuls)
    assert sum(n.op_type == "QAttention" for n in int8.node) == 2
    full = onnx.load(str(onnx_backend.ensure_graph(model_dir, precision="int8-full"))).graph
    assert not [n for n in full.node if n.op_type == "MatMul"]


def test_auto_backend_picks_onnx_on_the_cpu_and_records_it(model_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnx")
    from xnorm.models import encoder as encoder_mod

    enc = Encoder(model_dir, device="cpu", backend="auto")
    assert enc.backend == "onnx" and enc.config()["backend"] == "onnx"
    assert encoder_mod._auto_backend("cuda:0", True) == "torch"
    assert encoder_mod._auto_backend("cpu", False) == "torch"  # hub id or adapter folder
    monkeypatch.setattr(encoder_mod, "_onnx_runtime_installed", lambda: False)
    assert Encoder(model_dir, device="cpu", backend="auto").backend == "torch"


def test_onnx_fp32_without_onnxruntime_falls_back_to_torch(model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    # An index built with ONNX Runtime (fp32) still loads where onnxruntime is missing: same vectors.
    from xnorm.models import encoder as encoder_mod

    monkeypatch.setattr(encoder_mod, "_onnx_runtime_installed", lambda: False)
    with caplog.at_level(logging.WARNING, logger="xnorm.models.encoder"):
        enc = Encoder(model_dir, device="cpu", backend="onnx")
    assert enc.backend == "torch" and "onnxruntime is not installed" in caplog.text
    assert not (model_dir / "onnx").exists()


def test_dense_generator_defaults_to_onnx_on_a_cpu_without_bf16_and_old_torch_indexes_keep_torch(
        model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnx")
    from xnorm.candidates.index import CandidateIndex
    from xnorm.models import encoder as encoder_module
    from xnorm.terminology import TerminologyBuilder

    # precision auto: bf16 in torch where the CPU has it natively (test_models_encoder), else ONNX fp32 (here).
    monkeypatch.setattr(encoder_module, "_native_bf16", lambda: False)

    b = TerminologyBuilder()
    for i, name in enumerate(t for t in TEXTS if t):
        b.add_concept(f"C{i}", name)
        b.add_name(f"C{i}", name, "en")
    term = b.build()
    for requested, expected in ((None, "onnx"), ("torch", "torch")):
        gen = {"type": "dense", "model": str(model_dir)} | ({"backend": requested} if requested else {})
        index = CandidateIndex.build(term, {"generators": [gen]})
        out = tmp_path / f"idx-{expected}"
        index.save(out)
        loaded = CandidateIndex.load(out)
        assert loaded.generators[0].encoder.backend == expected
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["generators"][0]["encoder"]["backend"] == expected
