"""ONNX Runtime inference for ``Encoder(backend="onnx")``: the transformer plus pooling exported once, cached.

The exported graph takes ``input_ids`` / ``attention_mask`` (int64, [batch, length], right-padded) and returns
the pooled, not yet normalised vectors ([batch, hidden]); tokenization, length-sorted batching and normalisation
stay in ``Encoder``, shared with the torch backend. Building a graph:

1. export transformer + pooling with torch's TorchScript exporter (eager attention, so padding stays masked);
2. fuse it with ``onnxruntime.transformers.optimizer`` (model type "bert", heads / hidden size from the model's
   config): embeddings + LayerNorm, one ``Attention`` op per layer, skip-LayerNorm, bias-GELU. ONNX Runtime's own
   load-time optimizations do not fuse attention (84 MatMuls + 12 Softmax stay separate for e5-small). In fp32
   this is not measurably faster on 2 cores; it makes int8 quantize Q/K/V as one ``QAttention`` op. The fused
   graph is checked against the exported one on a padded batch; a model whose fusion changes the output keeps the
   exported graph;
3. for int8, dynamic quantization (onnxruntime.quantization: int8 weights per output channel, activations
   quantized on the fly) of the fused graph.

Precisions:

- ``fp32``: the fused graph (same vectors as torch, to float rounding);
- ``int8``: every projection in int8 except the feed-forward output projections (``layer.N/output/dense``): of
  the exclusions tried on e5-small (FFN outputs, FFN inputs, first/last layers, all but attention) the one that
  lost least recall@64 for its speed (1.5x fp32 ONNX; es/fr/ja/zh HPO labels: 0.0 / +0.2 / -0.5 / -2.0 points);
- ``int8-full``: every projection (attention and both feed-forward ones) in int8: fastest (1.8x fp32 ONNX), least
  exact (+0.5 / -0.5 / -2.0 / -3.7 points). Numbers: benchmarks/results/encoding_speed.md.

Graphs are cached next to the model (``<model>/onnx/``; under ``$XNORM_HOME/onnx/<model key>/`` when the model
folder is not writable), written atomically, keyed by a hash of the model's config and weights, and checked
against the SHA-256 their manifest records on every load: a stale or corrupted graph is rebuilt, never run.
Each graph keeps its weights in a separate file (``<graph>.onnx.data``, ONNX external data), which ONNX Runtime
memory-maps: a session reads the weight pages it uses, from the page cache, shared between processes, instead
of holding its own copy (e5-small-sized graph: +37 MB resident at session start instead of +470 MB, peak +770 MB).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import inspect
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .._io import atomic_write, sha256_file
from ..errors import ArtifactError, ConfigError
from ..paths import xnorm_home

logger = logging.getLogger(__name__)

ONNX_PRECISIONS = ("fp32", "int8", "int8-full")
# 2: graphs are fused (attention, LayerNorm, GELU) before quantization; 3: weights in an external data file.
# Graphs of an older format in a cache are rebuilt.
GRAPH_FORMAT = 3
OPSET = 17
# Files whose content defines the network: a change in any of them must give a new graph.
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
_DEFINING_FILES = ("config.json",)


def model_key(model_dir: str | Path) -> str:
    """SHA-256 over the model's config and weight files (names and contents): the cache key of its graphs."""
    model_dir = Path(model_dir)
    files = sorted({p for pattern in _WEIGHT_PATTERNS for p in model_dir.glob(pattern) if p.is_file()})
    if not files:
        raise ArtifactError("no weight file (*.safetensors or pytorch_model*.bin) to export to ONNX.",
                            file=str(model_dir), fix="pass a local Hugging Face model folder with its weights.")
    files += [model_dir / f for f in _DEFINING_FILES if (model_dir / f).is_file()]
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()


def graph_key(model_dir: str | Path, adapter_dir: str | Path | None = None) -> str:
    """``model_key`` of the base model, combined with the adapter's config and weights when there is one."""
    key = model_key(model_dir)
    if adapter_dir is None:
        return key
    from .adapter_graph import CONFIG_FILE, WEIGHTS_FILE

    h = hashlib.sha256(f"{key}\n".encode())
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        path = Path(adapter_dir) / name
        if not path.is_file():
            raise ArtifactError(f"the adapter folder lacks {name}.", file=str(adapter_dir),
                                fix="re-copy the adapter folder or re-run `xnorm train-encoder`.")
        h.update(f"{name}\0{sha256_file(path)}\n".encode())
    return h.hexdigest()


def cache_dir(model_dir: str | Path, key: str, adapter_dir: str | Path | None = None) -> Path:
    """Where graphs of this model live: beside it when its folder is writable, else under ``$XNORM_HOME``; graphs
    with an adapter always under ``$XNORM_HOME`` (not in the adapter folder, whose files its manifest lists)."""
    model_dir = Path(model_dir)
    beside = model_dir / "onnx"
    if adapter_dir is None and os.access(beside if beside.is_dir() else model_dir, os.W_OK):
        return beside
    return xnorm_home() / "onnx" / key[:16]


def begin_rebuild(artifact: Path, manifest: Path, what: str) -> None:
    """Before (re)writing a cached graph: say why when one was there, make its folder, and remove its manifest so
    that no reader trusts the files while they are replaced."""
    if artifact.exists() or manifest.exists():
        logger.warning("cached %s %s is stale or corrupted (checksum or settings differ); rebuilding it", what,
                       artifact)
    artifact.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        manifest.unlink()


def _graph_files(folder: Path, key: str, pooling: str, precision: str) -> tuple[Path, Path]:
    stem = f"encoder-{key[:16]}-{pooling}-{precision}"
    return folder / f"{stem}.onnx", folder / f"{stem}.json"


def data_file(graph: Path) -> Path:
    """The external weights of ``graph`` (named inside the graph, so it must stay beside it)."""
    return graph.with_name(graph.name + ".data")


def _file_record(prefix: str, path: Path) -> dict[str, Any]:
    return {f"{prefix}size": path.stat().st_size, f"{prefix}sha256": sha256_file(path)}


def manifest_matches(manifest: Path, expected: dict[str, Any], records: Callable[[], dict[str, Any]]) -> bool:
    """True when the JSON ``manifest`` holds the ``expected`` settings and the file records ``records()`` computes
    now (called only when the settings match: checksums of large files take time)."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    if not isinstance(data, dict) or any(data.get(k) != v for k, v in expected.items()):
        return False
    now = records()
    return {k: data.get(k) for k in now} == now


def _manifest_ok(graph: Path, manifest: Path, expected: dict[str, Any]) -> bool:
    """True when ``graph`` and its weights exist and its manifest matches the settings and both checksums."""
    if not graph.is_file() or not data_file(graph).is_file():
        return False
    return manifest_matches(manifest, expected,
                            lambda: {**_file_record("", graph), **_file_record("data_", data_file(graph))})


def _install(single: Path, graph: Path) -> None:
    """Put the one-file graph ``single`` in place as ``graph`` + ``data_file(graph)`` (weights outside the protobuf)."""
    import onnx

    staging = Path(tempfile.mkdtemp(prefix=f".{graph.name}.", dir=graph.parent))
    try:
        onnx.save_model(onnx.load(str(single)), str(staging / graph.name), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=data_file(graph).name, size_threshold=1024)
        for name in (graph.name, data_file(graph).name):
            os.chmod(staging / name, 0o644)  # a cache beside a shared model is read by others
            os.replace(staging / name, graph.parent / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure_graph(model_dir: str | Path, pooling: str = "mean", precision: str = "fp32",
                 folder: str | Path | None = None, adapter_dir: str | Path | None = None) -> Path:
    """The cached ONNX graph of ``model_dir`` (with the encoder adapter of ``adapter_dir`` written in, see
    ``adapter_graph``) for ``pooling`` / ``precision``, exported (and quantized) if missing, stale or corrupted.
    ``folder`` overrides the cache location (``cache_dir``)."""
    if precision not in ONNX_PRECISIONS:
        raise ConfigError(f"unknown ONNX precision {precision!r}.", field="precision",
                          fix=f"use one of {ONNX_PRECISIONS}.")
    if pooling not in ("mean", "cls"):
        raise ConfigError(f"unknown pooling {pooling!r}.", field="pooling", fix="use mean or cls.")
    model_dir = Path(model_dir)
    key = graph_key(model_dir, adapter_dir)
    folder = Path(folder) if folder is not None else cache_dir(model_dir, key, adapter_dir)
    graph, manifest = _graph_files(folder, key, pooling, precision)
    expected = {"format": GRAPH_FORMAT, "model_key": key, "pooling": pooling, "precision": precision,
                "opset": OPSET}
    if _manifest_ok(graph, manifest, expected):
        return graph
    begin_rebuild(graph, manifest, "ONNX graph")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{graph.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    info: dict[str, Any] = {}
    try:
        if precision == "fp32":
            logger.info("exporting %s to ONNX (%s pooling); done once, the graph is cached in %s", model_dir,
                        pooling, folder)
            raw = tmp.with_name(tmp.name + ".raw.onnx")
            try:
                _export(model_dir, pooling, raw, adapter_dir)
                info = _fuse(raw, tmp, _transformer_config(model_dir))
            finally:
                with contextlib.suppress(FileNotFoundError):
                    raw.unlink()
        else:
            _quantize(ensure_graph(model_dir, pooling, "fp32", folder, adapter_dir), tmp, precision)
        # The graph and its weights go in first, the manifest (with their checksums) last: a crash in between
        # leaves files without a valid manifest, which the next call rebuilds.
        _install(tmp, graph)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    with atomic_write(manifest) as f:
        json.dump({**expected, **info, **_file_record("", graph), **_file_record("data_", data_file(graph)),
                   "model_dir": str(model_dir), "adapter_dir": str(adapter_dir) if adapter_dir else None}, f, indent=2)
    os.chmod(manifest, 0o644)  # readable beside a shared model, like the graph
    return graph


def _pooled_module(model: Any, pooling: str) -> Any:
    """torch module computing what the graph computes: transformer + pooling (built only to export)."""
    import torch

    takes_types = "token_type_ids" in inspect.signature(model.forward).parameters

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: "torch.Tensor", attention_mask: "torch.Tensor") -> "torch.Tensor":
            # token_type_ids passed explicitly: BERT's default slices a buffer, which tracing would freeze.
            extra = {"token_type_ids": torch.zeros_like(input_ids)} if takes_types else {}
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
            if pooling == "cls":
                return hidden[:, 0]
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    return Pooled().eval()


def _load_for_export(model_dir: Path) -> Any:
    from transformers import AutoConfig, AutoModel

    from .encoder import _POOLER_MODEL_TYPES, _transformer_dir

    source = _transformer_dir(model_dir)
    # Eager attention: the SDPA path drops an all-ones mask at trace time, which would bake "no padding" into
    # the graph (measured: padded rows then differ from torch by up to 1.1).
    config = AutoConfig.from_pretrained(source, trust_remote_code=False, attn_implementation="eager")
    extra = {"add_pooling_layer": False} if config.model_type in _POOLER_MODEL_TYPES else {}
    try:
        return AutoModel.from_pretrained(source, config=config, trust_remote_code=False, **extra).eval()
    except (OSError, ValueError) as e:
        raise ArtifactError(f"cannot load the model to export it ({str(e).splitlines()[0]}).", file=str(source),
                            fix="re-create the model folder.") from None


def _inline_checked(model_dir: Path, adapter_dir: Path, pooling: str) -> Any:
    """The base model with the adapter written in as plain modules, checked against the ``adapters`` library's
    own model on a padded batch (a library whose adapter arithmetic differs must not give a wrong graph)."""
    import torch

    from ..training.adapter_io import adapter_manifest, attach_adapter
    from .adapter_graph import inline_adapter

    base = _load_for_export(model_dir)
    # No base-weights check here: the graph's cache key covers the base and adapter weights.
    reference = attach_adapter(copy.deepcopy(base), adapter_dir, adapter_manifest(adapter_dir) or {}, None).eval()
    inlined = inline_adapter(base, adapter_dir)
    feed = {k: torch.from_numpy(v) for k, v in _verification_batch(int(inlined.config.vocab_size)).items()}
    with torch.inference_mode():
        got = _pooled_module(inlined, pooling)(**feed)
        ref = _pooled_module(reference, pooling)(**feed)
    err = float((got - ref).abs().max() / ref.abs().max().clamp(min=1e-6))
    if not err <= 1e-4:
        raise ArtifactError(f"the adapter written as plain modules differs from the adapters library's model "
                            f"(relative error {err:.2g}).", file=str(adapter_dir),
                            fix="use backend='torch' for this encoder, and report the adapters version.")
    return inlined


def _export(model_dir: Path, pooling: str, out: Path, adapter_dir: Path | None = None) -> None:
    """Export transformer (+ adapter) + pooling with the TorchScript exporter (no onnxscript needed)."""
    import torch

    model = _load_for_export(model_dir) if adapter_dir is None else _inline_checked(model_dir, adapter_dir, pooling)
    wrapped = _pooled_module(model, pooling)
    # Trace with padding in the batch so the mask arithmetic stays in the graph.
    ids = torch.full((2, 8), 5, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    dynamic = {"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"},
               "pooled": {0: "batch"}}
    with warnings.catch_warnings(), torch.inference_mode():
        # The legacy exporter warns that it is legacy and that traced constants are constants; both expected.
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapped, (ids, mask), str(out), dynamo=False, input_names=["input_ids", "attention_mask"],
                          output_names=["pooled"], dynamic_axes=dynamic, opset_version=OPSET,
                          do_constant_folding=True)


def _transformer_config(model_dir: Path) -> dict[str, Any]:
    from .encoder import _transformer_dir

    path = _transformer_dir(model_dir) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ArtifactError(f"cannot read the model config ({e}).", file=str(path),
                            fix="re-create the model folder.") from None


def _verification_batch(vocab_size: int) -> dict[str, np.ndarray]:
    """A right-padded batch of seeded random ids: full, half, short and one-token rows."""
    rng = np.random.default_rng(0)
    lengths = np.array([16, 9, 3, 1])
    ids = rng.integers(min(5, vocab_size - 1), vocab_size, size=(len(lengths), int(lengths.max())))
    mask = (np.arange(ids.shape[1])[None, :] < lengths[:, None]).astype(np.int64)
    return {"input_ids": (ids * mask).astype(np.int64), "attention_mask": mask}


def _run_once(graph: Path, feed: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(graph), sess_options=options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["pooled"], feed)[0], dtype=np.float32)


def _fuse(raw: Path, out: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Write the fused graph of ``raw`` to ``out`` (or ``raw`` itself when fusion is unavailable or inexact).

    Returns what the manifest records about it: ``{"fused": {op: count}}`` or ``{"fused": None, "why": ...}``.
    """
    heads, hidden = config.get("num_attention_heads"), config.get("hidden_size")
    why = None
    try:
        from onnxruntime.transformers import optimizer
        from onnxruntime.transformers.fusion_options import FusionOptions
    except ImportError as e:  # the optimizer needs the `onnx` package
        why = f"onnxruntime.transformers unavailable ({e})"
    if why is None and not (isinstance(heads, int) and isinstance(hidden, int)):
        why = "config.json lacks num_attention_heads / hidden_size"
    if why is None:
        options = FusionOptions("bert")
        # The 2-D 0/1 mask as it comes (not sequence lengths): correct for any padding layout.
        options.use_raw_attention_mask(True)
        try:
            with _quiet_root_logger():
                fused = optimizer.optimize_model(str(raw), model_type="bert", num_heads=heads, hidden_size=hidden,
                                                 optimization_options=options, opt_level=0, use_gpu=False)
                counts = {op: n for op, n in fused.get_fused_operator_statistics().items() if n}
                fused.save_model_to_file(str(out))
        except Exception as e:  # the optimizer raises assorted errors on graphs it does not know
            why = f"fusion failed ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})"
    if why is None:
        feed = _verification_batch(int(config.get("vocab_size", 100)))
        ref, got = _run_once(raw, feed), _run_once(out, feed)
        err = float(np.abs(got - ref).max() / max(float(np.abs(ref).max()), 1e-6))
        if not np.isfinite(err) or err > 1e-4:
            why = f"the fused graph differs from the exported one (relative error {err:.2g})"
    if why is not None:
        logger.warning("ONNX graph %s stays unfused: %s; it runs, only slower", out.name, why)
        shutil.copyfile(raw, out)
        return {"fused": None, "why": why}
    return {"fused": counts}


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime's optimizer and quantizer log progress and advice on the root logger at every call: keep
    the user's log clean (their warnings here are about pre-processing that changes nothing for these graphs)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def quantized_nodes(fp32_graph: Path, precision: str) -> list[str] | None:
    """Names of the nodes ``precision`` quantizes in ``fp32_graph`` (None: every MatMul / Attention)."""
    if precision == "int8-full":
        return None
    import onnx

    graph = onnx.load(str(fp32_graph), load_external_data=False).graph
    nodes = [n.name for n in graph.node if n.op_type in ("MatMul", "Attention") and not _is_ffn_output(n.name)]
    if not nodes or len(nodes) == sum(n.op_type in ("MatMul", "Attention") for n in graph.node):
        raise ArtifactError("the graph has no recognisable feed-forward output projections to keep in fp32.",
                            file=str(fp32_graph), fix="use precision='int8-full' (or 'fp32') for this model.")
    return nodes


def _is_ffn_output(name: str) -> bool:
    # BERT-family naming kept by the exporter: layer.N/output/dense is the FFN down-projection, while
    # layer.N/attention/output/dense is the attention output projection.
    return "/output/dense/" in name and "/attention/" not in name


def _quantize(fp32_graph: Path, out: Path, precision: str) -> None:
    """Dynamic int8 quantization of ``fp32_graph``'s projections (all, or all but the FFN outputs)."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:
        raise ConfigError(f"int8 ONNX graphs need the `onnx` package ({e}).", field="precision",
                          fix="pip install onnx==1.23.2 (a dependency of xnorm), or use precision='fp32'.") from None
    nodes = quantized_nodes(fp32_graph, precision)
    with _quiet_root_logger():
        # DefaultTensorType: shape inference cannot type the outputs of the fused contrib ops (Attention,
        # SkipLayerNormalization); they are float32.
        quantize_dynamic(str(fp32_graph), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Attention"], nodes_to_quantize=nodes,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def default_threads() -> int:
    """CPU cores this process may use (its affinity mask, else os.cpu_count())."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class OnnxPooledEncoder:
    """An ONNX Runtime session over a cached graph: ``(input_ids, attention_mask) -> pooled float32 [batch, dim]``."""

    def __init__(self, graph: str | Path, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ConfigError(f"backend 'onnx' needs onnxruntime ({e}).", field="backend",
                              fix="pip install onnxruntime, or use backend='torch'.") from None

        self.graph = Path(graph)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: ORT's per-node placement notes are noise here
        try:
            self.session = ort.InferenceSession(str(self.graph), sess_options=options,
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own exception types (InvalidProtobuf, Fail, ...)
            raise ArtifactError(f"ONNX Runtime cannot load the graph ({str(e).splitlines()[0][:200]}).",
                                file=str(self.graph),
                                fix="delete the file (and its .json manifest); it is re-exported on next use.")
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    @classmethod
    def for_model(cls, model_dir: str | Path, pooling: str = "mean", precision: str = "fp32",
                  threads: int | None = None, adapter_dir: str | Path | None = None) -> "OnnxPooledEncoder":
        """Session for the cached graph of ``model_dir`` (+ ``adapter_dir``'s adapter), exported first if needed."""
        return cls(ensure_graph(model_dir, pooling, precision, adapter_dir=adapter_dir), threads)

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        out = self.session.run(["pooled"], {"input_ids": np.ascontiguousarray(input_ids, dtype=np.int64),
                                            "attention_mask": np.ascontiguousarray(attention_mask, dtype=np.int64)})
        return np.asarray(out[0], dtype=np.float32)
