"""``Reranker``: a cross-encoder over (mention in context, candidate names) that re-scores a ``Candidates`` batch.

Built with the ``adapters`` library on a frozen multilingual base model (default: the embedded e5-small):

- ``adapter``: a task adapter (bottleneck, ``seq_bn``) + a scoring head are trained, the base stays frozen;
- ``stack``: as ``adapter``, but trained under ``Stack(lang, task)`` with a frozen language adapter of the
  training language (MAD-X); at inference the mention's language adapter is swapped in;
- ``full``: no adapters; every transformer layer and the head are trained (the comparison point). The word
  embedding matrix stays frozen even here: it is 96M of e5-small's 118M parameters (250k rows, of which a
  training run touches a few thousand), and its Adam state alone would take ~0.8 GB;
- a plain sentence-transformers ``CrossEncoder`` folder is loaded as is (inference only).

At inference (mode ``stack``), mentions whose language has a language adapter (explicit ``{lang: folder}``, or
found in the adapter zoo) run under ``Stack(lang, task)``; the others under the task adapter alone. A task adapter
trained alone (mode ``adapter``) always runs alone: it never saw a language adapter under it.
Scores: per mention, a softmax over its candidates.

Saved as one folder: ``manifest.json`` (base model, mode, adapter config, λ, k, training data, steps, dev
metrics, checksums), ``weights.safetensors`` (only the trained tensors) and ``lang_adapters/<lang>/`` (the
language adapters it was trained or shipped with). Nothing is ever unpickled.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .. import __version__
from .._io import atomic_dir, atomic_write, sha256_file
from ..errors import ArtifactError, ConfigError
from ..models.encoder import AUTOCAST_PRECISIONS
from ..models.registry import weights_fingerprint
from ..models.tokenizers import load_tokenizer
from ..terminology.core import read_manifest, verify_checksums
from ..types import Candidates, Mentions
from .calibrate import fuse, language_keys, weights_for
from .head import pool, scoring_head
from .loss import generator_minmax
from .pairs import PairEncoder

log = logging.getLogger(__name__)

FORMAT = "xnorm-reranker"
FORMAT_VERSION = 1
MODES = ("adapter", "stack", "full")
TASK = "rerank"  # the task adapter's name inside the model
# An encoder adapter given as the base model (e.g. hpo-align-e5small) runs frozen under the task adapter.
BASE_ADAPTER = "xnorm_base"
WEIGHTS = "weights.safetensors"
DEFAULT_BASE = "multilingual-e5-small"
DEFAULT_ADAPTER: dict[str, Any] = {"architecture": "seq_bn", "reduction_factor": 16}
# No context by default: at size on 2 CPU cores (benchmarks/results/rerank_in_context.md) every run that read 48
# characters of context each side lost acc@1 on GSC+ dev, while the same training without context gained on every
# test set (GSC+ test +0.040). Context stays available (context_chars) for training at larger scale.
DEFAULT_PAIRS: dict[str, Any] = {"max_length": 48, "context_chars": 0, "n_names": 3, "semantic_types": False,
                                 "parents": False}
# Mean pooling: e5 was trained with mean-pooled embeddings, its [CLS] state never learned to summarise a pair;
# mean pooling also gives an untrained head a representation that differs per candidate from the first step.
# "segments": the mention's and the candidate's tokens are mean-pooled apart (each contextualised by the other in
# the joint pass) and the head reads their interaction [m * c, |m - c|, cos(m, c)]: the bi-encoder's matching signal
# is in the head's input from the first step instead of having to be learned through the pair's mean.
POOLINGS = ("mean", "cls", "segments")
# The default since 2026-11-25: at size (4,549 training mentions, benchmarks/results/rerank_in_context.md) dev acc@1
# on held-out labels rose +0.036/+0.043 above the candidates with "segments" (2 runs) and at most +0.011 with "mean".
DEFAULT_POOLING = "segments"
DEFAULT_PRIOR_WEIGHT = 4.0
# Precision of the base model's forward pass (training and inference): "bf16" runs it under torch autocast
# (weights and gradients stay fp32, the head reads fp32), "auto" picks bf16 where the device computes it natively.
PRECISIONS = AUTOCAST_PRECISIONS
DEFAULT_PRECISION = "auto"  # benchmarks/results/rerank_precision.md (second look)


def _lang_key(lang: str) -> str:
    return f"lang_{lang}"


class _QuietAdapters:
    """Silences ``adapters``' "adapters available but none are activated" warning, which ``add_adapter`` /
    ``load_adapter`` trigger themselves (an internal empty forward pass while the new adapter is being set up)."""

    def __enter__(self):
        self.logger = logging.getLogger("adapters.model_mixin")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)


def _load_adapter_model(path: str):
    """The base model with adapter support; ``BertAdapterModel`` for BERT-type bases (no noisy log line)."""
    import transformers
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # "some weights not used: pooler" is expected: we pool ourselves
    try:
        if config.model_type == "bert":
            from adapters import BertAdapterModel

            model = BertAdapterModel.from_pretrained(path, config=config)
        else:
            from adapters import AutoAdapterModel

            model = AutoAdapterModel.from_pretrained(path, config=config, trust_remote_code=False)
    finally:
        transformers.logging.set_verbosity(verbosity)
    return model


def _load_base(base_model: str) -> tuple[str, Any, Any, bool]:
    """(model folder or hub id, tokenizer, adapter-ready model, whether an encoder adapter came with it).

    ``base_model`` is a registry name, a Hugging Face folder, or an encoder adapter (a zoo name such as
    ``hpo-align-e5small`` or a ``train-encoder`` folder): then its base model is loaded and the adapter is added,
    frozen, as ``BASE_ADAPTER``.
    """
    from ..models.registry import resolve_model
    from ..training.adapter_io import adapter_manifest

    path = resolve_model(str(base_model))
    encoder_adapter = adapter_manifest(path) if Path(path).is_dir() else None
    model_path = resolve_model(encoder_adapter["base_model"]) if encoder_adapter else path
    tokenizer = load_tokenizer(model_path)  # shared with the encoders of the same base
    model = _load_adapter_model(model_path)
    if encoder_adapter:
        from .. import zoo

        with _QuietAdapters():
            zoo.load_into(model, path, load_as=BASE_ADAPTER,
                          model_dir=model_path if Path(model_path).is_dir() else None)
        for name, p in model.named_parameters():
            if f".{BASE_ADAPTER}." in name:
                p.requires_grad = False
    return model_path, tokenizer, model, encoder_adapter is not None


def _check_safetensors_adapter(path: Path) -> None:
    if not (path / "adapter.safetensors").is_file():
        msg = "no adapter.safetensors in this adapter folder"
        if (path / "pytorch_adapter.bin").is_file():
            msg += " (only pickled pytorch_adapter.bin, which xnorm never loads)"
        raise ArtifactError(msg + ".", file=str(path),
                            fix="save the adapter with save_adapter(..., use_safetensors=True), "
                                "e.g. with `xnorm train-lang-adapter`.")


def zoo_language_adapters(base_model: str, languages: Sequence[str], model_dir: str | None = None) -> dict[str, str]:
    """Language adapters for the base model found in the adapter zoo (``xnorm.zoo``), by language.

    An adapter fits when its base model has the same registry name, or (with ``model_dir``) the same weights
    (``base_model_sha256``), so a base given as a folder path still finds its adapters. Empty when the zoo holds
    none; never an error (the task adapter then runs alone).
    """
    try:
        from .. import zoo
    except ImportError:
        return {}
    wanted = {lang.lower() for lang in languages}
    found: dict[str, str] = {}
    try:
        name = zoo.canonical_model_name(base_model)
        sha = None
        for info in zoo.list_adapters("language-adapter"):
            lang = str(info.language or "").lower()
            if lang not in wanted or lang in found:
                continue
            same = zoo.canonical_model_name(info.base_model) == name
            if not same and model_dir is not None:
                sha = sha or zoo.model_sha256(model_dir)
                same = info.base_model_sha256 == sha
            if same:
                found[lang] = str(info.path)
    except Exception as e:  # noqa: BLE001 - a broken zoo entry must not stop linking; it is logged
        log.warning("adapter zoo lookup failed: %s", e)
    return found


class Reranker:
    """A cross-encoder reranker; build with :meth:`create` (to train) or :meth:`load`; use :meth:`rerank`."""

    def __init__(self, model: Any, head: Any, tokenizer: Any, *, mode: str, base_model: str,
                 adapter_config: dict | None, pair_settings: dict, source_lang: str | None = None,
                 lang_adapters: Mapping[str, str] | None = None, info: dict | None = None,
                 cross_encoder: Any = None) -> None:
        self.model = model
        self.head = head
        self.tokenizer = tokenizer
        self.mode = mode
        self.base_model = base_model
        self.adapter_config = adapter_config
        self.pair_settings = {**DEFAULT_PAIRS, **pair_settings}
        self.source_lang = source_lang
        self.lang_adapters: dict[str, str] = dict(lang_adapters or {})
        self.info: dict = dict(info or {})
        self.cross_encoder = cross_encoder
        self._loaded_langs: set[str] = set()
        self._encoders: dict[int, PairEncoder] = {}
        self.use_zoo = True
        self.path: str | None = None  # the folder it was loaded from
        self.model_dir: str | None = None  # the resolved base model folder
        self.base_adapter = False  # base_model is an encoder adapter (BASE_ADAPTER, frozen, under the task adapter)
        self.set_precision(DEFAULT_PRECISION)  # precision: requested_precision resolved for the device

    # ---- construction --------------------------------------------------------------------------------------
    @classmethod
    def create(cls, base_model: str | os.PathLike = DEFAULT_BASE, *, mode: str = "adapter",
               adapter_config: Mapping | None = None, source_lang_adapter: tuple[str, str] | None = None,
               lang_adapters: Mapping[str, str] | None = None, pair_settings: Mapping | None = None,
               dropout: float = 0.1, prior_weight: float | None = DEFAULT_PRIOR_WEIGHT, pooling: str = DEFAULT_POOLING,
               seed: int = 0, precision: str = DEFAULT_PRECISION) -> "Reranker":
        """A new, untrained reranker over ``base_model`` (registry name or HF folder).

        ``mode="stack"`` needs ``source_lang_adapter = (lang, folder)``: the frozen language adapter trained
        under the task adapter. ``lang_adapters``: more language adapters used at inference.
        ``prior_weight``: start weight of the generator prior (see ``_scoring_head``); ``None``: no prior.
        ``precision``: see :meth:`set_precision`.
        """
        import torch

        if mode not in MODES:
            raise ConfigError(f"unknown reranker mode {mode!r}.", field="mode", fix=f"use one of {MODES}.")
        if pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {pooling!r}.", field="pooling", fix=f"use one of {POOLINGS}.")
        if mode == "stack" and not source_lang_adapter:
            raise ConfigError("mode 'stack' needs the training language's adapter.", field="lang_adapter",
                              fix="pass --lang-adapter LANG=FOLDER (e.g. en=adapters_zoo/...), or use mode adapter.")
        torch.manual_seed(seed)
        path, tokenizer, model, base_adapter = _load_base(str(base_model))
        if base_adapter and mode != "adapter":
            raise ConfigError(f"base model {base_model!r} is an encoder adapter: it runs under a task adapter "
                              f"(mode 'adapter'), not in mode {mode!r}.", field="mode",
                              fix="use mode adapter, or its base model as --base-model.")
        if pooling == "segments" and not getattr(tokenizer, "is_fast", False):
            raise ConfigError("pooling 'segments' needs a fast tokenizer (to tell mention from candidate tokens).",
                              field="pooling", fix="use pooling 'mean'.")
        head = scoring_head(model.config.hidden_size, dropout, prior_weight, pooling)
        cfg = None
        source_lang = None
        langs = dict(lang_adapters or {})
        if mode in ("adapter", "stack"):
            cfg = dict(adapter_config or DEFAULT_ADAPTER)
            with _QuietAdapters():
                model.add_adapter(TASK, config=_adapter_config(cfg), set_active=True)
        if mode == "stack":
            source_lang, folder = source_lang_adapter  # type: ignore[misc]
            langs[source_lang] = str(folder)
        rr = cls(model, head, tokenizer, mode=mode, base_model=str(base_model), adapter_config=cfg,
                 pair_settings=dict(pair_settings or {}), source_lang=source_lang, lang_adapters=langs,
                 info={"prior_weight_init": prior_weight, "pooling": pooling})
        rr.model_dir = path
        rr.base_adapter = base_adapter
        rr.prepare_training()
        return rr.set_precision(precision)

    def prepare_training(self) -> None:
        """Freeze what this mode keeps frozen; activate the adapter setup used in training."""
        if self.cross_encoder is not None:
            raise ConfigError("a sentence-transformers CrossEncoder folder is loaded for inference only.",
                              field="mode", fix="train an xnorm reranker (mode adapter, stack or full) instead.")
        if self.mode == "full":
            for name, p in self.model.named_parameters():
                p.requires_grad = "word_embeddings" not in name
        else:
            from adapters import Stack

            self.model.train_adapter(TASK)  # freezes the base (embeddings included), trains the task adapter
            if self.mode == "stack":
                key = self._ensure_lang(self.source_lang)  # type: ignore[arg-type]
                self.model.active_adapters = Stack(key, TASK)
            elif self.base_adapter:
                self.model.active_adapters = Stack(BASE_ADAPTER, TASK)
        for p in self.head.parameters():
            p.requires_grad = True

    def trainable_parameters(self) -> list:
        return [p for p in self.model.parameters() if p.requires_grad] + list(self.head.parameters())

    def parameter_counts(self) -> dict[str, int]:
        """Trained vs total parameters (the head included in both)."""
        trained = sum(p.numel() for p in self.trainable_parameters())
        total = sum(p.numel() for p in self.model.parameters()) + sum(p.numel() for p in self.head.parameters())
        return {"trained": int(trained), "total": int(total)}

    def to(self, device: str) -> "Reranker":
        if self.model is not None:
            self.model.to(device)
            self.head.to(device)
        return self.set_precision(self.requested_precision)

    @property
    def device(self):
        if self.cross_encoder is not None:
            return self.cross_encoder.model.device
        return next(self.head.parameters()).device

    def set_precision(self, precision: str) -> "Reranker":
        """Run the base model at ``precision``: ``fp32``, ``bf16`` (autocast) or ``auto`` (bf16 where native)."""
        from ..models.encoder import resolve_precision, warn_if_emulated_bf16

        if precision not in PRECISIONS:
            raise ConfigError(f"unknown reranker precision {precision!r}.", field="precision",
                              fix=f"use one of {', '.join(PRECISIONS)}.")
        self.requested_precision = precision
        self.precision = resolve_precision(precision, str(self.device))
        warn_if_emulated_bf16(self.precision, str(self.device), "reranker precision")
        return self

    def _autocast(self):
        import torch

        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    # ---- language adapters -----------------------------------------------------------------------------------
    def _ensure_lang(self, lang: str) -> str:
        """Load ``lang``'s adapter into the model once (frozen); its name inside the model."""
        key = _lang_key(lang)
        if lang not in self._loaded_langs:
            folder = Path(self.lang_adapters[lang])
            if (folder / "manifest.json").is_file():  # an adapter-zoo folder: checksums verified before loading
                from .. import zoo

                with _QuietAdapters():
                    zoo.load_into(self.model, folder, load_as=key, with_head=False,
                                  model_dir=self.model_dir if self.model_dir and Path(self.model_dir).is_dir() else None)
            else:  # a plain `adapters` folder
                _check_safetensors_adapter(folder)
                with _QuietAdapters():
                    self.model.load_adapter(str(folder), load_as=key, with_head=False, use_safetensors=True)
            for name, p in self.model.named_parameters():
                if f".{key}." in name:
                    p.requires_grad = False
            self.model.to(self.device)
            self._loaded_langs.add(lang)
        return key

    def adapter_for(self, lang: str) -> str | None:
        """The language whose adapter runs for a mention in ``lang`` (``None``: task adapter alone)."""
        # Only a task adapter trained on top of a language adapter (mode "stack", MAD-X) can take another
        # language's adapter under it; a task adapter trained alone ("adapter") never saw one and runs alone.
        if self.mode != "stack":
            return None
        if lang not in self.lang_adapters and self.use_zoo:
            self.lang_adapters.update(zoo_language_adapters(self.base_model, [lang], self.model_dir))
        return lang if lang in self.lang_adapters else None

    def _activate(self, lang: str | None) -> None:
        if self.mode == "full" or self.cross_encoder is not None:
            return
        from adapters import Stack

        if lang:
            self.model.active_adapters = Stack(self._ensure_lang(lang), TASK)
        else:
            self.model.active_adapters = Stack(BASE_ADAPTER, TASK) if self.base_adapter else TASK

    # ---- scoring ---------------------------------------------------------------------------------------------
    def pair_encoder(self, terminology) -> PairEncoder:
        enc = self._encoders.get(id(terminology))
        if enc is None or enc.candidate_texts.terminology is not terminology:
            enc = PairEncoder(self.tokenizer, terminology, **self.pair_settings)
            self._encoders = {id(terminology): enc}
        return enc

    @property
    def uses_prior(self) -> bool:
        return self.head is not None and bool(getattr(self.head, "use_prior", False))

    def forward(self, batch: Mapping, prior=None) -> Any:
        """Raw scores (logits) of a tokenized pair batch, as a 1-d tensor (gradients flow in training).

        ``prior``: per pair, the min-max normalised generator score (used when the head has a prior).
        """
        import torch

        inputs = {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask",
                                                                         "token_type_ids")}
        with self._autocast():
            out = self.model(**inputs)
        hidden = out[0] if isinstance(out, tuple) else getattr(out, "last_hidden_state", out[0])
        hidden = hidden.float()  # the head and pooling in fp32 whatever the precision
        pooled = pool(hidden, inputs["attention_mask"], batch.get("segments"), self.info.get("pooling", "cls"))
        if prior is not None:
            prior = torch.as_tensor(prior, dtype=hidden.dtype, device=hidden.device)
        elif self.uses_prior:
            raise ValueError("this reranker adds the generator prior: pass prior= (generator_minmax scores)")
        return self.head(pooled, prior)

    def logits(self, mentions: Mentions, candidates: Candidates, terminology, *, batch_size: int = 256,
               progress: bool = False) -> np.ndarray:
        """Raw scores ``[n, k]`` (``-inf`` in empty slots), batched across mentions, grouped by language adapter."""
        import torch

        enc = self.pair_encoder(terminology)
        firsts, seconds, valid = enc.texts(mentions, candidates)
        prior = generator_minmax(candidates.scores, valid)[valid]
        out = np.full(valid.shape, -np.inf, dtype=np.float32)
        if not firsts:
            return out
        rows = np.nonzero(valid)[0]
        langs = language_keys(mentions.langs)
        adapter_of = {lang: self.adapter_for(lang) for lang in set(langs.tolist())}
        pair_adapter = np.asarray([adapter_of[langs[r]] or "" for r in rows], dtype=object)
        flat = np.empty(len(firsts), dtype=np.float32)
        if self.cross_encoder is not None:
            with self._autocast():
                flat[:] = self.cross_encoder.predict(list(zip(firsts, seconds)), batch_size=batch_size,
                                                     activation_fn=torch.nn.Identity(), convert_to_numpy=True,
                                                     show_progress_bar=progress)
        else:
            self.model.eval()
            self.head.eval()
            # Pairs sorted by length inside each adapter group: less padding per batch.
            lengths = np.fromiter((len(a) + len(b) for a, b in zip(firsts, seconds)), dtype=np.int64,
                                  count=len(firsts))
            with torch.inference_mode():
                for adapter in sorted(set(pair_adapter.tolist())):
                    self._activate(adapter or None)
                    idx = np.flatnonzero(pair_adapter == adapter)
                    idx = idx[np.argsort(lengths[idx], kind="stable")]
                    for s in range(0, len(idx), batch_size):
                        part = idx[s:s + batch_size]
                        batch = enc.tokenize([firsts[i] for i in part], [seconds[i] for i in part])
                        flat[part] = self.forward(batch, prior[part] if self.uses_prior else None
                                                 ).float().cpu().numpy()
        out[valid] = flat
        return out

    def rerank_scores(self, mentions: Mentions, candidates: Candidates, terminology, *, batch_size: int = 256,
                      progress: bool = False) -> np.ndarray:
        """``[n, k]`` scores in the candidates' own order (``-inf`` in empty slots): softmax over each mention's
        candidates of the logits plus its language's generator weight times the generator scores (:mod:`.calibrate`)."""
        logits = self.logits(mentions, candidates, terminology, batch_size=batch_size, progress=progress)
        weights = weights_for(self.info.get("generator_weight"), mentions.langs)
        return softmax_rows(fuse(logits, candidates.scores, weights))

    def rerank(self, mentions: Mentions, candidates: Candidates, terminology, *, batch_size: int = 256,
               progress: bool = False) -> Candidates:
        """``candidates`` re-ordered by :meth:`rerank_scores`."""
        return reorder(candidates, self.rerank_scores(mentions, candidates, terminology, batch_size=batch_size,
                                                      progress=progress))

    # ---- persistence -----------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, **info) -> Path:
        """Write the folder atomically: manifest, trained tensors (safetensors), language adapters."""
        from safetensors.torch import save_file

        if self.cross_encoder is not None:
            raise ConfigError("a loaded CrossEncoder folder is already saved; point at it directly.",
                              field="reranker", fix="use the CrossEncoder folder itself.")
        self.info.update(info)
        path = Path(path)
        with atomic_dir(path) as tmp:
            names = {id(p): n for n, p in self.model.named_parameters()}
            tensors = {f"model.{names[id(p)]}": p.detach().cpu().contiguous()
                       for p in self.model.parameters() if p.requires_grad}
            tensors.update({f"head.{n}": p.detach().cpu().contiguous() for n, p in self.head.named_parameters()})
            save_file(tensors, str(tmp / WEIGHTS))
            files = [WEIGHTS]
            langs = {}
            for lang, folder in sorted(self.lang_adapters.items()):
                if lang == self.source_lang or lang in self.info.get("ship_lang_adapters", []):
                    dest = tmp / "lang_adapters" / lang
                    shutil.copytree(folder, dest)
                    files += [str(f.relative_to(tmp)) for f in sorted(dest.rglob("*")) if f.is_file()]
                    langs[lang] = f"lang_adapters/{lang}"
            manifest = {
                "format": FORMAT, "format_version": FORMAT_VERSION, "xnorm_version": __version__,
                "mode": self.mode, "base_model": self.base_model, "adapter_config": self.adapter_config,
                "source_lang": self.source_lang, "lang_adapters": langs, "pairs": self.pair_settings,
                "hidden_size": int(self.model.config.hidden_size),
                "base_weights": weights_fingerprint(self.base_model) if self.base_adapter else None,
                "parameters": self.parameter_counts(), **_jsonable(self.info),
                "sha256": {f: sha256_file(tmp / f) for f in files},
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, lang_adapters: Mapping[str, str] | None = None,
             base_model: str | None = None, precision: str = DEFAULT_PRECISION) -> "Reranker":
        """A folder written by :meth:`save`, or a sentence-transformers ``CrossEncoder`` folder.

        ``lang_adapters`` adds (or overrides) language adapters; ``base_model`` overrides the stored base
        (e.g. when the model folder moved); ``precision``: see :meth:`set_precision`.
        """
        path = Path(path)
        if not path.is_dir():
            raise ArtifactError("reranker folder not found.", file=str(path),
                                fix="train one with `xnorm train-reranker ... -o DIR`, or give a CrossEncoder folder.")
        if not (path / "manifest.json").is_file() and _is_cross_encoder(path):
            ce = cls._load_cross_encoder(path)
            ce.path = str(path)
            return ce.set_precision(precision)
        manifest = read_manifest(path, FORMAT, FORMAT_VERSION)
        verify_checksums(path, manifest)
        from safetensors.torch import load_file

        base = base_model or manifest["base_model"]
        model_path, tokenizer, model, base_adapter = _load_base(base)
        if base_adapter and manifest.get("base_weights") not in (None, weights_fingerprint(base)):
            raise ArtifactError(f"the base encoder adapter {base!r} now has other weights than the ones this "
                                "reranker was trained over.", file=str(path / "manifest.json"),
                                field="base_weights", fix="retrain the reranker over the current adapter.")
        if manifest["mode"] in ("adapter", "stack"):
            with _QuietAdapters():
                model.add_adapter(TASK, config=_adapter_config(manifest["adapter_config"]), set_active=True)
        head = scoring_head(model.config.hidden_size, 0.1, manifest.get("prior_weight_init"),
                             manifest.get("pooling", "cls"))
        langs = {lang: str(path / rel) for lang, rel in manifest.get("lang_adapters", {}).items()}
        langs.update(lang_adapters or {})
        info = {k: v for k, v in manifest.items() if k not in _MANIFEST_CORE}
        rr = cls(model, head, tokenizer, mode=manifest["mode"], base_model=base,
                 adapter_config=manifest.get("adapter_config"), pair_settings=manifest.get("pairs", {}),
                 source_lang=manifest.get("source_lang"), lang_adapters=langs, info=info)
        tensors = load_file(str(path / WEIGHTS))
        model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        head_state = {k[len("head."):]: v for k, v in tensors.items() if k.startswith("head.")}
        unexpected = set(model_state) - set(dict(model.named_parameters()))
        if unexpected or not head_state:
            raise ArtifactError(f"weights do not fit the base model ({len(unexpected)} unknown tensors, e.g. "
                                f"{sorted(unexpected)[:1]}).", file=str(path / WEIGHTS),
                                fix="load with the base model it was trained on (--base-model), or retrain.")
        model.load_state_dict(model_state, strict=False)
        for name, p in model.named_parameters():  # trainable = what was trained and saved, so save() round-trips
            p.requires_grad_(name in model_state)
        head.load_state_dict(head_state)
        model.eval()
        head.eval()
        rr.path = str(path)
        rr.model_dir = model_path
        rr.base_adapter = base_adapter
        rr._activate(None)
        return rr.set_precision(precision)

    @classmethod
    def _load_cross_encoder(cls, path: Path) -> "Reranker":
        from sentence_transformers import CrossEncoder

        ce = CrossEncoder(str(path), trust_remote_code=False, device="cpu")
        if getattr(ce.model.config, "num_labels", 1) != 1:
            raise ArtifactError(f"this CrossEncoder has {ce.model.config.num_labels} outputs; a reranker needs 1.",
                                file=str(path), fix="use a CrossEncoder trained for ranking (one score per pair).")
        return cls(None, None, ce.tokenizer, mode="cross-encoder", base_model=str(path), adapter_config=None,
                   pair_settings={}, cross_encoder=ce)

    def describe(self) -> str:
        precision = self.precision + (" (auto)" if self.requested_precision == "auto" else "")
        if self.cross_encoder is not None:
            return f"CrossEncoder({self.base_model}, {precision})"
        langs = ",".join(sorted(self.lang_adapters)) or "none"
        gw = self.info.get("generator_weight")
        weight = "" if not gw else ", generator weight " + ", ".join(
            [f"{gw['default']:g}"] + [f"{lang} {w:g}" for lang, w in sorted(gw.get("languages", {}).items())])
        return (f"reranker({self.mode}, {Path(str(self.base_model)).name}, {precision}, language adapters: {langs}"
                f"{weight})")


def update_manifest(path: str | os.PathLike, **info) -> dict:
    """Set ``info`` entries in a saved reranker folder's manifest (written atomically; weights untouched)."""
    path = Path(path)
    manifest = read_manifest(path, FORMAT, FORMAT_VERSION)  # a folder without one is an ArtifactError there
    manifest.update(_jsonable(info))
    with atomic_write(path / "manifest.json") as f:
        f.write(json.dumps(manifest, indent=2, ensure_ascii=False))
    return manifest


_MANIFEST_CORE = {"format", "format_version", "xnorm_version", "mode", "base_model", "adapter_config",
                  "source_lang", "lang_adapters", "pairs", "hidden_size", "base_weights", "sha256"}


def _adapter_config(cfg: Mapping):
    from adapters import AdapterConfig

    cfg = dict(cfg)
    try:
        return AdapterConfig.load(cfg.pop("architecture", "seq_bn"), **cfg)
    except (TypeError, ValueError, KeyError) as e:
        raise ConfigError(f"bad adapter config {cfg} ({e}).", field="adapter_config",
                          fix="use e.g. {architecture: seq_bn, reduction_factor: 16}.") from None


def _is_cross_encoder(path: Path) -> bool:
    cfg = path / "config.json"
    if not cfg.is_file():
        return False
    try:
        archs = json.loads(cfg.read_text(encoding="utf-8")).get("architectures") or []
    except json.JSONDecodeError:
        return False
    return any(a.endswith("ForSequenceClassification") for a in archs)


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax over finite entries; ``-inf`` slots stay ``-inf`` (empty)."""
    finite = np.isfinite(logits)
    m = np.where(finite, logits, -np.inf).max(axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.where(finite, np.exp(np.where(finite, logits, 0.0) - m), 0.0)
    total = e.sum(axis=1, keepdims=True)
    p = e / np.where(total > 0, total, 1.0)
    return np.where(finite, p, -np.inf).astype(np.float32)


def reorder(candidates: Candidates, scores: np.ndarray) -> Candidates:
    """``candidates`` with new ``scores``, each row sorted by them (empty slots stay last; ties keep order)."""
    order = np.argsort(-np.where(np.isfinite(scores), scores, -np.inf), axis=1, kind="stable")
    take = lambda a: np.take_along_axis(a, order, axis=1)  # noqa: E731
    out = Candidates(take(candidates.concepts), take(scores), take(candidates.names), take(candidates.routes),
                     "rerank", dict(candidates.meta))
    return out
