"""``Encoder``: turn names and mentions into L2-normalised vectors with any Hugging Face encoder.

One obvious call, ``Encoder(...).encode(texts)``; batching, length sorting, pooling and progress are handled
inside. An encoder is an ordinary object: several may live in one process (no global model cache).
"""
from __future__ import annotations

import functools
import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from xnorm.errors import ArtifactError, ConfigError, InputError
from xnorm.models import registry
from xnorm.models.tokenizers import call_lock

if TYPE_CHECKING:  # heavy imports stay lazy so that `import xnorm` is fast
    import torch

logger = logging.getLogger(__name__)

SETTINGS_FILE = "xnorm_encoder.json"
POOLINGS = ("mean", "cls")
# bf16: torch autocast (weights stay fp32, matrix products in bfloat16), fast where the CPU has native bf16
# (AVX512-BF16 / AMX) or on a GPU; auto: bf16 where the device has it natively, else fp32; int8 / int8-full:
# dynamic quantization (torch or ONNX Runtime), static calibrated quantization (OpenVINO); CPU only.
PRECISIONS = ("fp32", "bf16", "auto", "int8", "int8-full")
AUTOCAST_PRECISIONS = ("auto", "fp32", "bf16")  # what training (and the reranker) can run at: no int8
# onnx: ONNX Runtime on the CPU, fused graph cached beside the model (onnx_backend.py); openvino: OpenVINO on the
# CPU (openvino_backend.py; the `openvino` extra), fp32 / bf16 / calibrated int8; auto: onnx where it applies (CPU,
# a local model folder without adapter, onnxruntime and onnx installed), else torch.
BACKENDS = ("auto", "torch", "onnx", "openvino")
KINDS = ("query", "passage")
# A query encoder (role "query", benchmarks/distill_encoder.py --role query) encodes mentions into the vector space
# of another model's index (index_model, pinned by its weights fingerprint); it never encodes names itself.
ROLES = ("both", "query")
SETTINGS_KEYS = {"pooling", "query_prefix", "passage_prefix", "max_length", "role", "index_model",
                 "index_fingerprint"}
DEFAULT_MAX_LENGTH = 32
# Texts are tokenized this many batches at a time: enough to make length sorting pay off, little enough that
# encoding millions of names never holds all their token lists in memory at once.
_CHUNK_BATCHES = 32
_POOLER_MODEL_TYPES = {"bert", "roberta", "xlm-roberta", "camembert"}
_CONFIG_KEYS = {
    "model", "pooling", "query_prefix", "passage_prefix", "max_length", "batch_size", "device", "precision",
    "normalize", "backend",
}


def read_model_settings(model_dir: str | Path) -> dict[str, Any]:
    """Pooling / prefixes / max_length a model folder declares for itself (empty dict when it declares nothing).

    ``xnorm_encoder.json`` wins; else a sentence-transformers folder's ``modules.json``, its pooling module's
    ``config.json`` and the ``query``/``passage`` prompts of ``config_sentence_transformers.json``.
    """
    model_dir = Path(model_dir)
    own = model_dir / SETTINGS_FILE
    if own.is_file():
        try:
            data = json.loads(own.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ArtifactError(f"not valid JSON ({e.msg}).", file=str(own), line=e.lineno,
                                fix="repair or delete the file.") from None
        unknown = set(data) - SETTINGS_KEYS
        if unknown:
            raise ArtifactError(f"unknown settings {sorted(unknown)}.", file=str(own),
                                fix=f"keep only {', '.join(sorted(SETTINGS_KEYS))}.")
        if data.get("role", "both") not in ROLES or \
                (data.get("role") == "query" and not (data.get("index_model") and data.get("index_fingerprint"))):
            raise ArtifactError(f"role must be one of {ROLES}, and a query encoder must name its index_model and "
                                "index_fingerprint.", file=str(own), field="role",
                                fix="re-pack the model (benchmarks/distill_encoder.py).")
        return data
    modules = model_dir / "modules.json"
    if not modules.is_file():
        return {}
    settings: dict[str, Any] = {}
    try:
        for module in json.loads(modules.read_text(encoding="utf-8")):
            if module.get("type", "").endswith("Pooling"):
                pool_cfg = json.loads((model_dir / module.get("path", "") / "config.json").read_text("utf-8"))
                if pool_cfg.get("pooling_mode_cls_token"):
                    settings["pooling"] = "cls"
                elif pool_cfg.get("pooling_mode_mean_tokens"):
                    settings["pooling"] = "mean"
        st_cfg = model_dir / "config_sentence_transformers.json"
        if st_cfg.is_file():
            prompts = json.loads(st_cfg.read_text("utf-8")).get("prompts") or {}
            if "query" in prompts:
                settings["query_prefix"] = prompts["query"]
            if "passage" in prompts or "document" in prompts:
                settings["passage_prefix"] = prompts.get("passage", prompts.get("document"))
    except (OSError, json.JSONDecodeError, AttributeError) as e:
        raise ArtifactError(f"unreadable sentence-transformers settings ({e}).", file=str(model_dir),
                            fix="repair the folder, or pass pooling= and the prefixes explicitly.") from None
    return settings


def _transformer_dir(model_dir: Path) -> Path:
    """The folder holding the transformer weights (older sentence-transformers folders use ``0_Transformer``)."""
    if not (model_dir / "config.json").is_file() and (model_dir / "0_Transformer" / "config.json").is_file():
        return model_dir / "0_Transformer"
    return model_dir


class Encoder:
    """A Hugging Face encoder with pooling, prefixes and length-sorted batching.

    ``model`` is a registry name (``xnorm models list``; the embedded default is materialized on first use), a
    local Hugging Face or sentence-transformers folder, or a hub id. Settings left at ``None`` come from the
    model itself (``xnorm_encoder.json``, sentence-transformers files, the registry), else mean pooling, no
    prefix, max_length 32.
    """

    def __init__(
        self,
        model: str | Path = registry.DEFAULT_MODEL,
        *,
        pooling: str | None = None,
        query_prefix: str | None = None,
        passage_prefix: str | None = None,
        max_length: int | None = None,
        batch_size: int = 128,
        device: str | None = None,
        precision: str = "fp32",
        normalize: bool = True,
        backend: str = "torch",
    ) -> None:
        """``backend``: ``torch``, ``onnx``, ``openvino`` (the ``openvino`` extra; fp32, bf16, calibrated int8) or
        ``auto`` (onnx on the CPU when it can run, else torch; ``config()`` then records the backend actually used)."""
        import torch

        if precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {precision!r}.", field="precision", fix=f"use one of {PRECISIONS}.")
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}.", field="backend", fix=f"use one of {BACKENDS}.")
        if pooling is not None and pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {pooling!r}.", field="pooling", fix=f"use one of {POOLINGS}.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, not {batch_size!r}.", field="batch_size",
                              fix="use e.g. 128.")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 2):
            raise ConfigError(f"max_length must be an integer >= 2, not {max_length!r}.", field="max_length",
                              fix="use e.g. 32 for entity names.")

        info = registry.lookup(str(model)) if not isinstance(model, Path) else None
        # What config() reports: the registry's canonical name, an absolute folder path or the hub id as given.
        if info is not None:
            self._model_ref = info.name
        elif Path(str(model)).expanduser().is_dir():
            self._model_ref = str(Path(str(model)).expanduser().resolve())
        else:
            self._model_ref = str(model)
        location = registry.resolve_model(model)
        is_local = Path(location).is_dir()

        declared = read_model_settings(location) if is_local else {}
        # A folder from `xnorm train-encoder --mode adapter`: load its base model, then activate the adapter.
        from xnorm.training.adapter_io import adapter_manifest

        adapter_dir, adapter = (location, adapter_manifest(location)) if is_local else (None, None)
        if adapter is not None:
            info = registry.lookup(adapter["base_model"])
            location = registry.resolve_model(adapter["base_model"])
            is_local = Path(location).is_dir()
        if info is not None:
            fallback = {"pooling": info.pooling, "query_prefix": info.query_prefix,
                        "passage_prefix": info.passage_prefix, "max_length": info.max_length}
        else:
            fallback = {"pooling": "mean", "query_prefix": "", "passage_prefix": "", "max_length": DEFAULT_MAX_LENGTH}

        def pick(key: str, given: Any) -> Any:
            return given if given is not None else declared.get(key, fallback[key])

        self.pooling: str = pick("pooling", pooling)
        if self.pooling not in POOLINGS:
            raise ArtifactError(f"the model declares an unknown pooling {self.pooling!r}.", file=location,
                                field="pooling", fix=f"pass pooling= one of {POOLINGS}.")
        self.query_prefix: str = pick("query_prefix", query_prefix)
        self.passage_prefix: str = pick("passage_prefix", passage_prefix)
        self.max_length: int = int(pick("max_length", max_length))
        self.role: str = declared.get("role", "both")
        self.index_model: str | None = declared.get("index_model")
        self.index_fingerprint: str | None = declared.get("index_fingerprint")
        self.batch_size = batch_size
        self.normalize = normalize
        self._requested_device = device
        self._requested_precision = precision  # config() keeps "auto": a saved index picks again on each machine
        self.precision = precision = resolve_precision(precision, device, backend)
        if precision == "bf16" and backend == "onnx":
            raise ConfigError("precision 'bf16' runs on the torch and openvino backends.", field="precision",
                              fix="use backend='torch' (or 'auto', 'openvino') with bf16, or fp32 / int8 with 'onnx'.")
        # `auto` keeps adapter encoders on torch: their fp32 graph measured 1.05x torch (benchmarks/results/
        # encoding_speed_adapter.md), too little for the one-off export (~35 s) and a 470 MB graph; bf16 is torch's.
        if backend == "auto":
            backend = "torch" if precision == "bf16" else _auto_backend(device, is_local and adapter is None)
        elif backend == "onnx" and precision == "fp32" and not _onnx_runtime_installed():
            # Same vectors either way (fp32), so an index built with ONNX Runtime still loads without it.
            logger.warning("onnxruntime is not installed: encoding with torch instead (same fp32 vectors)")
            backend = "torch"
        self.backend = backend
        self.device = device or ("cuda" if torch.cuda.is_available() and backend == "torch" else "cpu")
        why = None
        if backend in ("onnx", "openvino") and adapter is not None:
            # An adapter exports when adapter_graph can write it as plain modules (the shipped ones can).
            from .adapter_graph import unsupported_reason

            why = unsupported_reason(adapter_dir)
        if backend in ("onnx", "openvino") and (not self.device.startswith("cpu") or not is_local or why):
            why = f" ({why})" if why else ""
            raise ConfigError(f"backend {backend!r} exports a local model folder (with a bottleneck adapter of "
                              f"`xnorm train-encoder` or none) and runs on the CPU{why}.", field="backend",
                              fix=f"use device='cpu' and a model folder, registry or zoo name with backend="
                              f"{backend!r}; else backend='torch'.")
        if precision.startswith("int8") and not self.device.startswith("cpu"):
            raise ConfigError(f"precision {precision!r} (dynamic quantization) runs on the CPU only.",
                              field="precision",
                              fix="use device='cpu' with int8, or precision='fp32' on the GPU.")

        self.tokenizer, self.model = _load(location, is_local)
        if adapter is not None:
            from xnorm.training.adapter_io import attach_adapter

            self.model = attach_adapter(self.model, adapter_dir, adapter, location if is_local else None)
        # A graph runtime (ONNX Runtime, OpenVINO): (input_ids, attention_mask) -> pooled vectors.
        self._runtime: Any = None
        if backend == "onnx":  # the torch model stays loaded: it answers config / dim questions
            from xnorm.models.onnx_backend import OnnxPooledEncoder

            self._runtime = OnnxPooledEncoder.for_model(_transformer_dir(Path(location)), self.pooling, precision,
                                                        adapter_dir=adapter_dir if adapter is not None else None)
        elif backend == "openvino":
            from xnorm.models.openvino_backend import OpenVinoPooledEncoder, ensure_ir

            xml = ensure_ir(_transformer_dir(Path(location)), self.pooling, precision,
                            adapter_dir=adapter_dir if adapter is not None else None, tokenizer=self.tokenizer,
                            passage_prefix=self.passage_prefix, max_length=self.max_length)
            warn_if_emulated_bf16(precision, self.device)  # OpenVINO then computes in fp32
            # int8: what stays out of int8 (softmax, LayerNorm, ...) runs in bf16 where native
            self._runtime = OpenVinoPooledEncoder(xml, bf16=precision != "fp32" and _native_bf16())
        elif precision.startswith("int8"):
            self.model = _quantize(self.model, full=precision == "int8-full")
        else:
            warn_if_emulated_bf16(precision, self.device)
        self.model.to(self.device)
        self.model.eval()
        if self._runtime is not None:
            # The runtime holds its own copy of the weights: keep the module for its config only.
            self.model.to("meta")
        self._pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is not None and self.max_length > limit:
            raise ConfigError(f"max_length {self.max_length} exceeds the model's {limit} positions.",
                              field="max_length", fix=f"use max_length <= {limit}.")

    # -- public ---------------------------------------------------------------------------------------------

    def weights_fingerprint(self) -> str | None:
        """``registry.weights_fingerprint`` of this encoder's model (None for a hub id)."""
        if not hasattr(self, "_fingerprint"):
            self._fingerprint = registry.weights_fingerprint(self._model_ref)
        return self._fingerprint

    @property
    def dim(self) -> int:
        """Dimension of the vectors ``encode`` returns."""
        return int(self.model.config.hidden_size)

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this encoder with ``Encoder.from_config`` (JSON-serialisable)."""
        return {
            "model": self._model_ref,
            "pooling": self.pooling,
            "query_prefix": self.query_prefix,
            "passage_prefix": self.passage_prefix,
            "max_length": self.max_length,
            "batch_size": self.batch_size,
            "device": self._requested_device,
            "precision": self._requested_precision,
            "normalize": self.normalize,
            "backend": self.backend,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Encoder":
        """Rebuild an encoder from ``config()``'s output."""
        if not isinstance(config, dict) or "model" not in config:
            raise ConfigError("an encoder config must be a mapping with a 'model' entry.", field="encoder",
                              fix="pass the dict that Encoder.config() returned.")
        unknown = set(config) - _CONFIG_KEYS
        if unknown:
            raise ConfigError(f"unknown encoder settings {sorted(unknown)}.", field="encoder",
                              fix=f"use only {sorted(_CONFIG_KEYS)}.")
        kwargs = dict(config)
        return cls(kwargs.pop("model"), **kwargs)

    def encode(self, texts: Sequence[str], kind: str = "query", show_progress: bool = False) -> np.ndarray:
        """Encode ``texts`` into a float32 array [n, dim], rows in input order (L2-normalised when ``normalize``).

        ``kind`` picks the prefix (``query`` for mentions, ``passage`` for terminology names where the model
        distinguishes them). Texts are sorted by token length inside each chunk so batches carry little padding.
        """
        import torch
        from tqdm.auto import tqdm

        if isinstance(texts, str):
            raise InputError("encode() takes a sequence of texts, not one string.", field="texts",
                             fix="wrap the text in a list: encode([text]).")
        if kind not in KINDS:
            raise ConfigError(f"unknown kind {kind!r}.", field="kind", fix=f"use one of {KINDS}.")
        if kind == "passage" and self.role == "query":
            raise ConfigError(f"{self._model_ref} is a query encoder: it encodes mentions into an index of "
                              f"{self.index_model!r}, not names.", field="model",
                              fix=f"build the index with model: {self.index_model} and give this one as "
                              f"query_model.")
        prefix = self.query_prefix if kind == "query" else self.passage_prefix
        n = len(texts)
        out = np.empty((n, self.dim), dtype=np.float32)
        chunk = self.batch_size * _CHUNK_BATCHES
        with tqdm(total=n, unit="name", unit_scale=True, disable=not show_progress, desc="encoding") as bar, \
                torch.inference_mode():
            for start in range(0, n, chunk):
                part = texts[start:start + chunk]
                for i, t in enumerate(part):
                    if not isinstance(t, str):
                        raise InputError(f"text {start + i} is a {type(t).__name__}, not a string.",
                                         field="texts", fix="pass strings only (drop or convert missing values).")
                with call_lock(self.tokenizer):  # shared with other models: see xnorm.models.tokenizers
                    ids = self.tokenizer(
                        [prefix + t for t in part] if prefix else list(part),
                        add_special_tokens=True, truncation=True, max_length=self.max_length,
                        return_attention_mask=False, return_token_type_ids=False,
                    )["input_ids"]
                for rows, vectors in self._encode_tokenized(ids):
                    out[start + rows] = vectors
                    bar.update(len(rows))
        return out

    def __repr__(self) -> str:
        return (f"Encoder({self._model_ref!r}, pooling={self.pooling!r}, max_length={self.max_length}, "
                f"precision={self.precision!r}, backend={self.backend!r}, device={self.device!r})")

    # -- internals ------------------------------------------------------------------------------------------

    def _encode_tokenized(self, ids: list[list[int]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (row indices within ``ids``, vectors) batch by batch, longest texts first."""
        import torch

        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((t for x in ids for t in x), dtype=np.int64, count=int(lengths.sum()))
        starts = np.zeros(len(ids), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        # Longest first: a too-large batch fails at once, and each batch pads only to its own longest text.
        order = np.argsort(-lengths, kind="stable")
        for b in range(0, len(order), self.batch_size):
            rows = order[b:b + self.batch_size]
            lens = lengths[rows]
            width = int(lens.max())
            positions = np.arange(width)
            mask = positions[None, :] < lens[:, None]
            input_ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
            input_ids[mask] = flat[(starts[rows][:, None] + positions[None, :])[mask]]
            yield rows, self._forward(torch.from_numpy(input_ids), torch.from_numpy(mask.astype(np.int64)))

    def _forward(self, input_ids: "torch.Tensor", attention_mask: "torch.Tensor") -> np.ndarray:
        import torch

        if self._runtime is not None:
            pooled = torch.from_numpy(self._runtime(input_ids.numpy(), attention_mask.numpy()))
            return (torch.nn.functional.normalize(pooled, p=2, dim=-1) if self.normalize else pooled).numpy()
        input_ids = input_ids.to(self.device)
        attention_mask = attention_mask.to(self.device)
        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = hidden.float()  # pooling and normalisation in fp32 whatever the precision
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
        return pooled.cpu().numpy()


def resolve_precision(precision: str, device: str | None = None, backend: str = "auto") -> str:
    """The precision an encoder runs at: ``auto`` is bf16 where the device computes it natively (a CUDA GPU with
    bf16, a CPU with AVX512-BF16 / AMX) and the backend is torch, else fp32; any other value stays as it is."""
    if precision != "auto":
        return precision
    import torch

    on_gpu = device.startswith("cuda") if device else torch.cuda.is_available() and backend != "onnx"
    try:
        native = torch.cuda.is_bf16_supported() if on_gpu else _native_bf16()
    except (RuntimeError, AssertionError):  # CUDA asked for but absent: the device error comes later, clearer
        native = False
    return "bf16" if native and backend != "onnx" else "fp32"


def warn_if_emulated_bf16(precision: str, device: str, what: str = "precision") -> None:
    """Warn when bf16 runs on a CPU that only emulates it (slower than fp32 there)."""
    if precision == "bf16" and device.startswith("cpu") and not _native_bf16():
        logger.warning("this CPU has no native bfloat16 (AVX512-BF16 / AMX): %s 'bf16' will be slower than fp32 "
                       "here", what)


@functools.lru_cache(maxsize=1)
def _native_bf16() -> bool:
    """Whether this CPU computes bfloat16 products natively (else oneDNN emulates them, slower than fp32); True
    where the CPU flags cannot be read (no warning on platforms we cannot inspect)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _onnx_runtime_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def _auto_backend(device: str | None, local_plain_model: bool) -> str:
    """``onnx`` where it runs and is faster (the CPU, a local model folder without adapter, onnxruntime and
    onnx installed: onnx builds the fused graph), else ``torch`` (GPUs, hub ids, adapters, missing packages)."""
    import importlib.util

    import torch

    on_cpu = device.startswith("cpu") if device is not None else not torch.cuda.is_available()
    installed = _onnx_runtime_installed() and importlib.util.find_spec("onnx") is not None
    return "onnx" if on_cpu and local_plain_model and installed else "torch"


def _quantize(model: Any, full: bool) -> Any:
    """Dynamic int8 quantization (int8 weights per output channel, activations quantized on the fly).

    ``full=False`` quantizes only the attention projections: measured on HPO names (benchmarks/encoding_speed.md)
    that keeps Spanish→English acc@1 within 0.5 points of fp32, while quantizing the feed-forward layers too
    (``full=True``, faster) costs several points: the LayerNorm outputs feeding them carry outlier channels that a
    per-tensor activation scale flattens.
    """
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    if full:
        spec: Any = {torch.nn.Linear: per_channel_dynamic_qconfig}
    else:
        spec = {name: per_channel_dynamic_qconfig for name, module in model.named_modules()
                if isinstance(module, torch.nn.Linear) and ".attention." in f".{name}."}
    # torch 2.13 marks torch.ao.quantization deprecated in favour of torchao, which is not in our pinned set; it
    # still works, so keep the log clean.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(model, spec, dtype=torch.qint8)


def _load(location: str, is_local: bool) -> tuple[Any, Any]:
    """Tokenizer and model from a folder or the hub; failures become ``ArtifactError`` with a fix."""
    from transformers import AutoConfig, AutoModel

    from .tokenizers import load_tokenizer

    source = str(_transformer_dir(Path(location))) if is_local else location
    try:
        tokenizer = load_tokenizer(source)  # shared with other encoders / rerankers of the same tokenizer
        config = AutoConfig.from_pretrained(source, trust_remote_code=False)
        # Pooling is ours: skip the BERT-family pooler (unused weights, and a "newly initialized" warning for
        # checkpoints saved without it).
        extra = {"add_pooling_layer": False} if config.model_type in _POOLER_MODEL_TYPES else {}
        model = AutoModel.from_pretrained(source, config=config, trust_remote_code=False, **extra)
    except (OSError, ValueError) as e:
        if is_local:
            raise ArtifactError(
                f"cannot load a Hugging Face model from this folder ({str(e).splitlines()[0]}).", file=source,
                fix="it needs config.json, the weights (model.safetensors) and tokenizer files; re-create it, "
                "or run `xnorm models prepare` for the embedded model.",
            ) from None
        raise ArtifactError(
            f"model {location!r} is not a local folder and could not be fetched from the Hugging Face hub "
            f"(the hub is unreachable or offline, or the id is wrong: {str(e).splitlines()[0]}).",
            fix=f"where the hub is reachable run `huggingface-cli download {location} --local-dir DIR` and pass "
            "DIR as the model; or use the embedded model 'multilingual-e5-small', which works offline.",
        ) from None
    return tokenizer, model
