"""OpenVINO backend of ``Encoder``: torch's vectors in fp32, close ones in bf16 / calibrated int8, cached IRs
reused, corrupted ones rebuilt, clear errors for settings it cannot run."""
from __future__ import annotations

import builtins
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")

from test_onnx_backend import TEXTS, model_dir  # noqa: E402, F401 (model_dir: a private copy of the tiny BERT)

from xnorm.errors import ArtifactError, ConfigError  # noqa: E402
from xnorm.models import openvino_backend  # noqa: E402
from xnorm.models.encoder import Encoder  # noqa: E402


def _irs(model_dir: Path) -> list[Path]:
    return sorted((model_dir / "onnx").glob("*-openvino-*.xml"))


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1)[np.linalg.norm(b, axis=1) > 0]


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_openvino_fp32_gives_the_torch_vectors(model_dir: Path, pooling: str) -> None:
    ref = Encoder(model_dir, pooling=pooling, device="cpu", batch_size=3).encode(TEXTS)
    enc = Encoder(model_dir, pooling=pooling, device="cpu", batch_size=3, backend="openvino", precision="fp32")
    got = enc.encode(TEXTS)
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-4)  # padded and unpadded rows alike (batches of 3)
    assert enc.config()["backend"] == "openvino" and enc.config()["precision"] == "fp32"
    again = Encoder.from_config(enc.config())
    assert again.backend == "openvino" and np.allclose(again.encode(TEXTS[:2]), got[:2], atol=1e-6)
    assert [p.name.rsplit("-", 1)[-1] for p in _irs(model_dir)] == ["fp32.xml"]


def test_bf16_and_calibrated_int8_stay_close_and_int8_is_reproducible(model_dir: Path, tmp_path: Path) -> None:
    ref = Encoder(model_dir, device="cpu").encode(TEXTS)
    bf16 = Encoder(model_dir, device="cpu", backend="openvino", precision="bf16").encode(TEXTS)
    assert _cos(bf16, ref).min() > 0.999
    full = Encoder(model_dir, device="cpu", backend="openvino", precision="int8-full").encode(TEXTS)
    assert _cos(full, ref).min() > 0.95 and not np.allclose(full, ref, atol=1e-4)  # quantized: close, not equal
    int8 = Encoder(model_dir, device="cpu", backend="openvino", precision="int8")
    got = int8.encode(TEXTS)
    assert _cos(got, ref).min() > 0.95 and not np.array_equal(got, full)  # another graph
    assert sorted(p.name.rsplit("openvino-", 1)[-1] for p in _irs(model_dir)) == ["fp32.xml", "int8-full.xml",
                                                                                   "int8.xml"]
    (xml,) = (model_dir / "onnx").glob("*-openvino-int8.xml")
    manifest = json.loads(xml.with_suffix(".json").read_text())
    texts = openvino_backend.calibration_texts(int8.passage_prefix)
    assert len(texts) == openvino_backend.CALIBRATION_NAMES and manifest["calibration_sha256"]
    # The calibration set is fixed, so a second copy of the model quantizes to the same vectors.
    other = tmp_path / "other"
    shutil.copytree(model_dir, other, ignore=shutil.ignore_patterns("onnx"))
    np.testing.assert_allclose(Encoder(other, device="cpu", backend="openvino", precision="int8").encode(TEXTS),
                               got, atol=1e-6)


def test_cached_ir_is_reused(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = Encoder(model_dir, device="cpu", backend="openvino", precision="int8").encode(TEXTS)
    stamps = {p: p.stat().st_mtime_ns for p in _irs(model_dir)}

    def rebuilt(*args, **kwargs):
        raise AssertionError("the cached IR should have been reused")

    monkeypatch.setattr(openvino_backend, "_export", rebuilt)
    monkeypatch.setattr(openvino_backend, "_quantize", rebuilt)
    second = Encoder(model_dir, device="cpu", backend="openvino", precision="int8").encode(TEXTS)
    assert {p: p.stat().st_mtime_ns for p in _irs(model_dir)} == stamps
    assert np.array_equal(first, second)


def test_corrupted_ir_is_rebuilt(model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    ref = Encoder(model_dir, device="cpu", backend="openvino", precision="fp32").encode(TEXTS)
    (xml,) = _irs(model_dir)
    weights = xml.with_suffix(".bin")
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="xnorm.models.openvino_backend"):
        got = Encoder(model_dir, device="cpu", backend="openvino", precision="fp32").encode(TEXTS)
    assert "stale or corrupted" in caplog.text
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_unloadable_ir_with_matching_checksums_is_a_clear_error(model_dir: Path) -> None:
    xml = openvino_backend.ensure_ir(model_dir)
    xml.write_text("<net>not a network</net>")
    manifest = xml.with_suffix(".json")
    data = json.loads(manifest.read_text())
    data["xml_sha256"] = openvino_backend.sha256_file(xml)
    manifest.write_text(json.dumps(data))
    with pytest.raises(ArtifactError) as err:
        Encoder(model_dir, device="cpu", backend="openvino", precision="fp32")
    assert str(xml) in str(err.value) and "delete the file" in str(err.value)


def test_int8_keeps_the_feed_forward_outputs_out_of_int8(model_dir: Path) -> None:
    import openvino as ov

    enc = Encoder(model_dir, device="cpu")

    def quantized_matmuls(precision: str) -> set[str]:
        xml = openvino_backend.ensure_ir(model_dir, precision=precision, tokenizer=enc.tokenizer)
        network = ov.Core().read_model(str(xml))
        # NNCF puts a FakeQuantize on the activation input of every MatMul it quantizes
        return {op.get_friendly_name() for op in network.get_ordered_ops() if op.get_type_name() == "MatMul"
                and op.input_value(0).get_node().get_type_name() == "FakeQuantize"}

    ffn = set(openvino_backend.ffn_outputs(ov.Core().read_model(str(openvino_backend.ensure_ir(model_dir)))))
    assert len(ffn) == 2  # one per layer of the tiny BERT
    full, int8 = quantized_matmuls("int8-full"), quantized_matmuls("int8")
    assert ffn <= full and not ffn & int8 and int8 and int8 < full


def test_settings_it_cannot_run_are_config_errors(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="fp16"):
        openvino_backend.ensure_ir(model_dir, precision="fp16")
    with pytest.raises(ConfigError, match="runs on the CPU"):
        Encoder(model_dir, device="cuda", backend="openvino")
    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name in ("openvino", "nncf"):
            raise ImportError(f"No module named '{name}'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    with pytest.raises(ConfigError) as err:
        Encoder(model_dir, device="cpu", backend="openvino", precision="fp32")
    assert "xnorm[openvino]" in str(err.value)


def test_a_dense_index_on_openvino_int8_saves_and_loads(model_dir: Path, tmp_path: Path) -> None:
    from xnorm.candidates.index import CandidateIndex
    from xnorm.terminology import TerminologyBuilder
    from xnorm import Mentions

    b = TerminologyBuilder()
    for i, name in enumerate(t for t in TEXTS if t):
        b.add_concept(f"C{i}", name)
        b.add_name(f"C{i}", name, "en")
    term = b.build()
    gen = {"type": "dense", "model": str(model_dir), "backend": "openvino", "precision": "int8"}
    index = CandidateIndex.build(term, {"generators": [gen]})
    index.save(tmp_path / "idx")
    loaded = CandidateIndex.load(tmp_path / "idx")
    enc = loaded.generators[0].encoder
    assert enc.config()["backend"] == "openvino" and enc.config()["precision"] == "int8"
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["generators"][0]["encoder"]["backend"] == "openvino"
    names = [t for t in TEXTS if t]
    cands = loaded.candidates(Mentions(texts=names, langs=["en"] * len(names)), k=1)
    # every name finds its own concept first through the int8 encoder
    assert (cands.concepts[:, 0] == np.arange(len(names))).mean() >= 0.8
