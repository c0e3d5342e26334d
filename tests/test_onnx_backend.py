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
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the weights
    graph.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="xnorm.models.onnx_backend"):
        got = Encoder(model_dir, device="cpu", backend="onnx").encode(TEXTS)
    assert "stale or corrupted" in caplog.text
    assert np.allclose(got, ref, atol=1e-6)
    manifest = json.loads(graph.with_suffix(".json").read_text())
    assert manifest["sha256"] == onnx_backend.sha256_file(graph)


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
