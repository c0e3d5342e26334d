"""``train_encoder``: SapBERT-style self-alignment of an encoder on a terminology's synonyms and translations.

Names of one concept (English name ↔ synonyms and translations) are pulled together, names of other concepts
pushed apart, so that a mention in any trained language lands next to its concept's English names. Either a
small ``adapters`` adapter on the frozen encoder is trained (cheap, a few MB, shippable in ``adapters_zoo/``)
or all weights but the word embeddings (a full Hugging Face model folder).

Resumable: ``<output>/.checkpoints/last.pt`` holds the trainable weights, the optimizer, the step, the RNG state
and the early-stopping state as tensors and plain values (``torch.save`` of state dicts, read back with
``weights_only=True``). Batches are a function of (seed, batch number), so a resumed run sees exactly the
batches an uninterrupted one would.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from xnorm import __version__
from xnorm._io import atomic_write
from xnorm.errors import ArtifactError, ConfigError
from xnorm.models.encoder import AUTOCAST_PRECISIONS
from xnorm.terminology.core import Terminology
from xnorm.training import adapter_io
from xnorm.training.losses import LOSSES, make_loss
from xnorm.training.pairs import (ConceptBatchSampler, ConceptSplit, NameTable, concept_neighbours, split_concepts,
                                  training_names)

logger = logging.getLogger(__name__)

MODES = ("adapter", "full")
ADAPTER_TYPES = ("seq_bn", "lora")
CHECKPOINT_DIR = ".checkpoints"  # hidden: not part of the zoo manifest's file list
CHECKPOINT_FILE = "last.pt"
NEIGHBOURS_FILE = "neighbours.npy"  # beside the checkpoint: a resumed run draws the same hard-negative batches
NEIGHBOUR_POOL = 10  # hard negatives are drawn among each concept's 10 nearest concepts
# Settings that must match for --resume to continue a run (the rest, e.g. steps or patience, may change).
_RESUME_KEYS = ("base_model", "mode", "loss", "languages", "batch_size", "names_per_concept", "lr", "grad_accum",
                "max_length", "seed", "batch_seed", "adapter_type", "adapter_size", "freeze_embeddings",
                "dev_fraction", "test_fraction", "pivot", "hard_negatives")

_DEV_KEYS = ("dev_queries", "dev_distractors")  # may change on --resume: the best-so-far is then re-measured


@dataclass
class TrainConfig:
    """Everything that defines a training run (recorded in the manifest)."""

    base_model: str = "multilingual-e5-small"
    mode: str = "adapter"
    loss: str = "ms"
    languages: list[str] | None = None  # None: every language of the terminology
    pivot: str = "en"
    steps: int = 1000
    batch_size: int = 128
    names_per_concept: int = 2
    hard_negatives: int = 0  # per concept in a batch, this many of its nearest concepts join it (0: random batches)
    lr: float | None = None  # None: 1e-4 for adapters, 2e-5 for full fine-tuning
    weight_decay: float = 0.01
    warmup_steps: int | None = None  # None: a tenth of the steps, at most 100
    grad_accum: int = 1
    max_length: int = 24
    adapter_type: str = "seq_bn"
    adapter_size: int = 16  # seq_bn: reduction factor; lora: rank
    freeze_embeddings: bool = True  # full mode: word embeddings stay as they are
    dev_fraction: float = 0.05
    test_fraction: float = 0.1
    dev_every: int = 200
    dev_queries: int = 500
    dev_distractors: int = 2000
    patience: int = 3
    checkpoint_every: int = 100
    seed: int = 0  # the split, the dev set and (unless batch_seed is set) batches and init
    # Batches and init only: a second run over the same split sees other batches (training noise, measured).
    batch_seed: int | None = None
    threads: int | None = None
    device: str | None = None
    # The forward pass: "bf16" = torch autocast (trained tensors and optimizer state stay fp32; dev encoding in
    # bf16 too), "auto" = bf16 where the device computes it natively (AVX512-BF16 / AMX CPUs, recent GPUs):
    # 1.58x the steps/s at the same held-out quality (benchmarks/results/train_encoder_precision.md).
    precision: str = "auto"

    def check(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}.", field="mode", fix=f"use one of {', '.join(MODES)}.")
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r}.", field="loss", fix=f"use one of {', '.join(LOSSES)}.")
        if self.precision not in AUTOCAST_PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}.", field="precision",
                              fix=f"use one of {', '.join(AUTOCAST_PRECISIONS)}.")
        if self.adapter_type not in ADAPTER_TYPES:
            raise ConfigError(f"unknown adapter type {self.adapter_type!r}.", field="adapter_type",
                              fix=f"use one of {', '.join(ADAPTER_TYPES)}.")
        for name in ("steps", "batch_size", "grad_accum", "dev_every", "checkpoint_every", "max_length",
                     "adapter_size", "dev_queries"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, not {value!r}.", field=name,
                                  fix="pass a whole number of at least 1.")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr must be positive, not {self.lr!r}.", field="lr", fix="use e.g. 1e-4.")
        if not 0 <= self.hard_negatives <= NEIGHBOUR_POOL:
            raise ConfigError(f"hard_negatives must be in 0..{NEIGHBOUR_POOL}, not {self.hard_negatives!r}.",
                              field="hard_negatives", fix="use e.g. 3 (clusters of 4 similar concepts), or 0.")
        if self.patience < 0 or self.dev_distractors < 0:
            raise ConfigError("patience and dev_distractors must not be negative.", field="patience",
                              fix="use 0 to disable early stopping.")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (1e-4 if self.mode == "adapter" else 2e-5)

    @property
    def warmup(self) -> int:
        return self.warmup_steps if self.warmup_steps is not None else min(100, max(1, self.steps // 10))


@dataclass
class TrainResult:
    """What a finished run produced."""

    output_dir: Path
    manifest: dict
    history: list[dict] = field(default_factory=list)


# ---- tokenized names ---------------------------------------------------------------------------------------
class _Tokens:
    """Token ids of every training name with the query prefix and with the passage prefix, as flat arrays."""

    def __init__(self, tokenizer: Any, texts: np.ndarray, query_prefix: str, passage_prefix: str,
                 max_length: int) -> None:
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.sides = [self._flatten(tokenizer, texts, prefix, max_length) for prefix in (query_prefix,
                                                                                           passage_prefix)]

    @staticmethod
    def _flatten(tokenizer: Any, texts: np.ndarray, prefix: str, max_length: int):
        ids = tokenizer([prefix + t for t in texts.tolist()], truncation=True, max_length=max_length,
                        return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((t for x in ids for t in x), dtype=np.int64, count=int(lengths.sum()))
        starts = np.zeros(len(ids), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        return flat, starts, lengths

    def batch(self, rows: np.ndarray, passage: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Padded (input_ids, attention_mask) for names ``rows``; ``passage`` picks the prefix per row."""
        lens = np.where(passage, self.sides[1][2][rows], self.sides[0][2][rows])
        starts = np.where(passage, self.sides[1][1][rows], self.sides[0][1][rows])
        width = int(lens.max())
        pos = np.arange(width)
        mask = pos[None, :] < lens[:, None]
        gather = np.clip(starts[:, None] + pos[None, :], 0, None)
        q_flat, p_flat = self.sides[0][0], self.sides[1][0]
        ids = np.where(passage[:, None], p_flat[np.minimum(gather, len(p_flat) - 1)],
                       q_flat[np.minimum(gather, len(q_flat) - 1)])
        ids = np.where(mask, ids, self.pad_id)
        return ids, mask.astype(np.int64)


def _pool(model: Any, input_ids: "Any", attention_mask: "Any", pooling: str) -> "Any":
    import torch

    hidden = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state.float()  # fp32 under bf16
    if pooling == "cls":
        pooled = hidden[:, 0]
    else:
        w = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * w).sum(1) / w.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, p=2, dim=-1)


# ---- dev retrieval -----------------------------------------------------------------------------------------
@dataclass
class DevSet:
    """Dev queries (non-pivot names of dev concepts) and a dev index (pivot names of dev concepts plus a fixed
    sample of other concepts' pivot names as distractors): cheaper than indexing every concept."""

    queries: np.ndarray
    query_gold: np.ndarray  # concept id per query
    names: np.ndarray
    name_concepts: np.ndarray

    def describe(self) -> dict:
        return {"queries": int(len(self.queries)), "index_names": int(len(self.names)),
                "index_concepts": int(len(set(self.name_concepts.tolist())))}


def build_dev_set(terminology: Terminology, split: ConceptSplit, languages: Sequence[str] | None, pivot: str,
                  n_queries: int, n_distractors: int, seed: int) -> DevSet | None:
    """The dev retrieval task, or None when the dev split has no non-pivot names to query with."""
    rng = np.random.default_rng([seed, 3])
    dev_rows = np.isin(terminology.concept_ids, split.dev)
    by_name = dev_rows[terminology.name_concepts]
    langs = terminology.name_langs
    lang_ok = np.ones(len(langs), bool) if languages is None else np.isin(langs, np.asarray(list(languages), object))
    q = np.flatnonzero(by_name & (langs != pivot) & lang_ok)
    if len(q) == 0:
        return None
    if len(q) > n_queries:
        q = np.sort(rng.choice(q, n_queries, replace=False))
    idx = np.flatnonzero(by_name & (langs == pivot))
    others = np.flatnonzero(~by_name & (langs == pivot))
    if len(others) > n_distractors:
        others = np.sort(rng.choice(others, n_distractors, replace=False))
    idx = np.concatenate([idx, others])
    cids = terminology.concept_ids
    return DevSet(terminology.name_texts[q], cids[terminology.name_concepts[q]], terminology.name_texts[idx],
                  cids[terminology.name_concepts[idx]])


def dev_recall_at_1(encoder: Any, dev: DevSet) -> float:
    """Share of dev queries whose nearest dev-index name belongs to their concept."""
    q = encoder.encode(dev.queries.tolist(), kind="query")
    n = encoder.encode(dev.names.tolist(), kind="passage")
    best = np.argmax(q @ n.T, axis=1)
    return float(np.mean(dev.name_concepts[best] == dev.query_gold))


# ---- checkpoints -------------------------------------------------------------------------------------------
def _trainable(model: Any) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _save_checkpoint(path: Path, state: dict) -> None:
    import torch

    with atomic_write(path, "wb") as f:
        torch.save(state, f)


def _load_checkpoint(path: Path) -> dict:
    import torch

    try:
        # weights_only: a checkpoint is tensors and plain values; loading never runs code from the file.
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file means the same to the user
        raise ArtifactError(f"cannot read the checkpoint ({type(e).__name__}: {str(e).splitlines()[0]}).",
                            file=str(path), fix=f"delete {path.parent} and train without --resume.") from None


# ---- model setup -------------------------------------------------------------------------------------------
def _setup_model(model: Any, cfg: TrainConfig, has_adapter: bool = False) -> Any:
    """Add and select the trainable part: an adapter on the frozen model (``has_adapter``: the one the model was
    loaded with, trained further), or all weights but word embeddings."""
    if cfg.mode == "adapter":
        import adapters

        # adapters warns "adapters available but none activated" between adding and activating: expected here.
        logging.getLogger("adapters.model_mixin").setLevel(logging.ERROR)
        if not has_adapter:
            adapters.init(model)
            if cfg.adapter_type == "seq_bn":
                acfg = adapters.SeqBnConfig(reduction_factor=cfg.adapter_size)
            else:
                acfg = adapters.LoRAConfig(r=cfg.adapter_size, alpha=2 * cfg.adapter_size)
            model.add_adapter(adapter_io.ADAPTER_NAME, config=acfg)
        model.train_adapter(adapter_io.ADAPTER_NAME)  # freezes everything else
        model.set_active_adapters(adapter_io.ADAPTER_NAME)
    else:
        for p in model.parameters():
            p.requires_grad_(True)
        if cfg.freeze_embeddings:
            model.get_input_embeddings().weight.requires_grad_(False)
    return model


def _start_adapter(cfg: TrainConfig) -> dict | None:
    """The manifest of the encoder adapter that ``cfg.base_model`` names (its training goes on), or None for a
    plain model. The adapter's own type and size replace the config's."""
    location = Path(_resolve_location(cfg.base_model))
    manifest = adapter_io.adapter_manifest(location) if location.is_dir() else None
    if manifest is None:
        return None
    if cfg.mode != "adapter":
        raise ConfigError(f"{cfg.base_model!r} is an encoder adapter: full mode starts from a plain model.",
                          field="base_model", fix=f"use mode 'adapter' to train the adapter further, or "
                          f"--base {manifest['base_model']} (its base model).")
    cfg.adapter_type, cfg.adapter_size = manifest["adapter_type"], int(manifest["adapter_size"])
    manifest["location"] = str(location)
    return manifest


def _held_out_now_trained(start: dict, split: ConceptSplit) -> int:
    """How many of the start adapter's dev/test concepts this run trains on (its held-out numbers then leak)."""
    path = Path(start["location"]) / start.get("split_file", "split.json")
    if not path.is_file():
        return 0
    before = ConceptSplit.load(path)
    held_out = set(before.dev.tolist()) | set(before.test.tolist())
    return len(held_out & set(split.train.tolist()))


def _hard_negative_table(encoder: Any, names: NameTable, path: Path) -> np.ndarray:
    """Each training concept's NEIGHBOUR_POOL nearest concepts by the starting encoder (one pivot name per
    concept), saved at ``path`` so a resumed run draws the same batches."""
    k = min(NEIGHBOUR_POOL, names.n_groups - 1)
    if path.is_file():
        table = np.load(path, allow_pickle=False)
        if table.shape == (names.n_groups, k):
            return table
    # Per concept its first pivot-language name (its first name when it has none).
    key = np.arange(len(names)) + np.where(names.english, 0, len(names))
    first = np.minimum.reduceat(key, names.offsets[:-1]) % len(names)
    encoder.model.eval()
    vectors = encoder.encode(names.texts[first].tolist(), kind="passage", show_progress=True)
    table = concept_neighbours(vectors, k)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        np.save(f, table)
    return table


def terminology_fingerprint(terminology: Terminology) -> str:
    """A content hash of the concept ids and names (what training saw)."""
    import hashlib

    h = hashlib.sha256()
    for arr in (terminology.concept_ids, terminology.name_texts, terminology.name_langs):
        h.update("\x1f".join(map(str, arr.tolist())).encode())
        h.update(b"\x1e")
    h.update(terminology.name_concepts.astype(np.int64).tobytes())
    return h.hexdigest()[:16]


# ---- training ----------------------------------------------------------------------------------------------
def train_encoder(
    terminology: Terminology,
    base_model: str = "multilingual-e5-small",
    output_dir: str | os.PathLike = "trained-encoder",
    *,
    mode: str = "adapter",
    loss: str = "ms",
    languages: Sequence[str] | None = None,
    exclude_concepts: Sequence[str] = (),
    resume: bool = False,
    progress: bool = True,
    **options: Any,
) -> TrainResult:
    """Train ``base_model`` to align ``terminology``'s names across languages; write the result to ``output_dir``.

    ``mode="adapter"`` trains a bottleneck (``adapter_type="seq_bn"``) or LoRA adapter on the frozen encoder and
    writes an adapter folder that ``Encoder(output_dir)`` loads; ``mode="full"`` writes a Hugging Face model
    folder. ``exclude_concepts`` (e.g. a benchmark's test concepts) never reach training. Other ``options`` are
    fields of ``TrainConfig`` (steps, batch_size, lr, grad_accum, dev_every, patience, seed, ...).
    """
    import torch
    from tqdm.auto import tqdm

    from xnorm.models.encoder import Encoder

    unknown = set(options) - (set(TrainConfig.__dataclass_fields__) - {"base_model", "mode", "loss", "languages"})
    if unknown:
        raise ConfigError(f"unknown training options {sorted(unknown)}.", field="options",
                          fix=f"use fields of TrainConfig: {sorted(TrainConfig.__dataclass_fields__)}.")
    cfg = TrainConfig(base_model=str(base_model), mode=mode, loss=loss,
                      languages=None if languages is None else sorted(set(languages)), **options)
    cfg.check()
    start = _start_adapter(cfg)
    if cfg.languages is not None and cfg.pivot not in cfg.languages:
        cfg.languages = sorted(set(cfg.languages) | {cfg.pivot})  # the pivot's names anchor every concept
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(output_dir)
    ckpt_path = out / CHECKPOINT_DIR / CHECKPOINT_FILE
    if out.exists() and any(out.iterdir()) and not resume:
        raise ConfigError("the output folder exists and is not empty.", file=str(out), field="output_dir",
                          fix="pick a new folder, delete it, or pass resume=True (--resume) to continue its run.")
    if resume and not ckpt_path.is_file():
        raise ArtifactError("no checkpoint to resume from.", file=str(ckpt_path),
                            fix="train without --resume (the folder holds no interrupted run).")
    out.mkdir(parents=True, exist_ok=True)

    split = split_concepts(terminology, dev_fraction=cfg.dev_fraction, test_fraction=cfg.test_fraction,
                           seed=cfg.seed, exclude=exclude_concepts)
    split.save(out)
    leaked = _held_out_now_trained(start, split) if start else 0
    if leaked:
        logger.warning("%d dev/test concepts of %s are training concepts of this run: its held-out results no "
                       "longer hold for the new adapter", leaked, cfg.base_model)
    names = training_names(terminology, split.train, cfg.languages, pivot=cfg.pivot)
    dev = build_dev_set(terminology, split, cfg.languages, cfg.pivot, cfg.dev_queries, cfg.dev_distractors,
                        cfg.seed)

    batch_seed = cfg.seed if cfg.batch_seed is None else cfg.batch_seed
    torch.manual_seed(batch_seed)
    encoder = Encoder(cfg.base_model, device=cfg.device, max_length=cfg.max_length, batch_size=256,
                      precision=cfg.precision)
    autocast_device = "cuda" if str(encoder.device).startswith("cuda") else "cpu"
    base_location = _resolve_location(start["base_model"] if start else cfg.base_model)
    model = _setup_model(encoder.model, cfg, has_adapter=start is not None)
    model.to(encoder.device)
    neighbours = _hard_negative_table(encoder, names, out / CHECKPOINT_DIR / NEIGHBOURS_FILE) \
        if cfg.hard_negatives else None
    sampler = ConceptBatchSampler(names, cfg.batch_size, cfg.names_per_concept, seed=batch_seed,
                                  neighbours=neighbours, hard_negatives=cfg.hard_negatives)
    tokens = _Tokens(encoder.tokenizer, names.texts, encoder.query_prefix, encoder.passage_prefix, cfg.max_length)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    criterion = make_loss(cfg.loss)

    step, history, best, best_state, bad_evals, seconds = 0, [], -1.0, None, 0, 0.0
    if resume:
        state = _load_checkpoint(ckpt_path)
        saved = json.loads(state["config"])
        changed = [k for k in _RESUME_KEYS if saved.get(k) != asdict(cfg).get(k)]
        if changed:
            raise ConfigError(f"--resume with different settings {changed} than the checkpoint's run.",
                              file=str(ckpt_path), fix="resume with the same settings, or start a new folder.")
        model.load_state_dict(state["trainable"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") and torch.cuda.is_available():  # dropout on the GPU draws from these
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        step, best, bad_evals = int(state["step"]), float(state["best"]), int(state["bad_evals"])
        best_state = state["best_trainable"] or None
        history = json.loads(state["history"])
        seconds = float(state["seconds"])
        logger.info("resuming at step %d", step)
        dev_changed = any(saved.get(k) != getattr(cfg, k) for k in _DEV_KEYS)

    def checkpoint() -> None:
        _save_checkpoint(ckpt_path, {
            "trainable": _trainable(model), "optimizer": optimizer.state_dict(), "step": step,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [], "best": best, "bad_evals": bad_evals,
            "best_trainable": best_state or {}, "history": json.dumps(history), "seconds": seconds,
            "config": json.dumps(asdict(cfg)),
        })

    def evaluate() -> float:
        model.eval()
        value = dev_recall_at_1(encoder, dev)
        model.train()
        return value

    if dev is not None and step == 0 and not history:
        base_r1 = evaluate()
        history.append({"step": 0, "dev_recall@1": base_r1})
        best = base_r1
        if start is not None:  # the adapter trained further is kept as it was unless a step beats it on dev
            best_state = _trainable(model)
    elif dev is not None and resume and dev_changed:
        # The best-so-far was measured on another dev set: re-measure it and the current weights on this one.
        current = _trainable(model)
        scores = {}
        if best_state:
            model.load_state_dict(best_state, strict=False)
            scores["best"] = evaluate()
        model.load_state_dict(current, strict=False)
        scores["current"] = evaluate()
        best = max(scores.values())
        best_state = current if scores["current"] >= best else best_state
        bad_evals = 0
        history.append({"step": step, "dev_changed": dev.describe(), "dev_recall@1": scores["current"]}
                       | ({"dev_recall@1_previous_best": scores["best"]} if "best" in scores else {}))
        logger.info("new dev set: recall@1 %s", scores)

    stopped_early = False
    started = time.perf_counter() - seconds
    model.train()
    ema = None
    with tqdm(total=cfg.steps, initial=step, disable=not progress, desc=f"train-encoder ({cfg.mode})",
              unit="step") as bar:
        while step < cfg.steps:
            for g in optimizer.param_groups:  # linear warm-up, then constant (a function of the step alone)
                g["lr"] = cfg.learning_rate * min(1.0, (step + 1) / cfg.warmup)
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for micro in range(cfg.grad_accum):
                rows, labels, first = sampler.batch(step * cfg.grad_accum + micro)
                ids, mask = tokens.batch(rows, first)
                with torch.autocast(autocast_device, dtype=torch.bfloat16, enabled=encoder.precision == "bf16"):
                    emb = _pool(model, torch.from_numpy(ids).to(encoder.device),
                                torch.from_numpy(mask).to(encoder.device), encoder.pooling)
                value = criterion(emb, torch.from_numpy(labels).to(encoder.device),
                                  torch.from_numpy(first).to(encoder.device)) / cfg.grad_accum
                value.backward()
                total += float(value.detach())
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            step += 1
            ema = total if ema is None else 0.95 * ema + 0.05 * total
            history.append({"step": step, "loss": total})
            bar.update(1)
            bar.set_postfix(loss=f"{ema:.4f}")
            if dev is not None and (step % cfg.dev_every == 0 or step == cfg.steps):
                r1 = evaluate()
                history.append({"step": step, "dev_recall@1": r1})
                bar.write(f"step {step}: dev recall@1 {r1:.4f} (best {max(best, r1):.4f})")
                if r1 > best:
                    best, best_state, bad_evals = r1, _trainable(model), 0
                else:
                    bad_evals += 1
                if cfg.patience and bad_evals >= cfg.patience:
                    stopped_early = True
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or stopped_early:
                seconds = time.perf_counter() - started
                checkpoint()
            if stopped_early:
                break
    seconds = time.perf_counter() - started
    if best_state:  # early stopping keeps the weights of the best dev evaluation
        model.load_state_dict(best_state, strict=False)
    best_step = min((h["step"] for h in history if h.get("dev_recall@1") == best), default=step)
    manifest = {
        "kind": adapter_io.KIND_ADAPTER if cfg.mode == "adapter" else adapter_io.KIND_FULL,
        "name": _safe_name(out.name),
        "base_model": start["base_model"] if start else cfg.base_model,
        "base_model_sha256": _base_sha256(base_location),
        "terminology": {"name": terminology.metadata.get("name"), "fingerprint": terminology_fingerprint(terminology),
                        "concepts": len(terminology), "names": terminology.n_names,
                        "training_concepts": int(names.n_groups), "training_names": len(names)},
        "languages": cfg.languages or terminology.languages,
        "split_file": "split.json",
        "split": {k: int(len(split.of(k))) for k in ("train", "dev", "test")} | {"forced": int(len(split.forced))},
        "steps": step,
        "stopped_early": stopped_early,
        "best_step": int(best_step) if best_state else step,
        "loss": cfg.loss,
        **({"init_from": {"adapter": cfg.base_model, "steps": start.get("steps"),
                          "held_out_concepts_now_trained": leaked}} if start else {}),
        "dev": (dev.describe() | {"recall@1_base": history[0].get("dev_recall@1"), "recall@1_best": best})
        if dev is not None else None,
        "training_seconds": round(seconds, 1),
        "device": str(encoder.device),
        "precision": encoder.precision,  # as run (the config may say auto)
        "config": asdict(cfg),
        "encoder_settings": {"pooling": encoder.pooling, "query_prefix": encoder.query_prefix,
                             "passage_prefix": encoder.passage_prefix},
    }
    with atomic_write(out / "history.json") as f:
        json.dump(history, f)
    manifest = _write_output(out, model, encoder, cfg, manifest)
    return TrainResult(out, manifest, history)


def _resolve_location(base_model: str) -> str:
    from xnorm.models import registry

    return registry.resolve_model(base_model)


def _safe_name(text: str) -> str:
    """A zoo-valid adapter name from a folder name (letters, digits, '.', '_', '-')."""
    import re

    name = re.sub(r"[^A-Za-z0-9._\-]", "-", text).lstrip("._-")
    return name or "encoder-adapter"


def _base_sha256(location: str) -> str | None:
    from xnorm import zoo

    # A hub model's files are not at hand here: record its id (loading onto it then skips the weight check).
    return zoo.model_sha256(location) if Path(location).is_dir() else f"hub:{location}"


def _write_output(out: Path, model: Any, encoder: Any, cfg: TrainConfig, manifest: dict) -> dict:
    """Write the model (adapter files or full model folder) beside a temporary name, move it in, and the
    manifest last: a folder with a manifest is complete. Returns the manifest as written."""
    from xnorm import zoo
    from xnorm.models.encoder import SETTINGS_FILE

    settings = {"pooling": encoder.pooling, "query_prefix": encoder.query_prefix,
                "passage_prefix": encoder.passage_prefix,
                "max_length": int(_resolve_max_length(cfg.base_model, encoder))}
    (out / adapter_io.MANIFEST_FILE).unlink(missing_ok=True)
    tmp = out / ".output.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    if cfg.mode == "adapter":
        model.save_adapter(str(tmp), adapter_io.ADAPTER_NAME, use_safetensors=True)
        manifest.update({"adapter_name": adapter_io.ADAPTER_NAME, "adapter_type": cfg.adapter_type,
                         "adapter_size": cfg.adapter_size,
                         "adapter_params": int(sum(p.numel() for p in model.parameters() if p.requires_grad))})
    else:
        model.save_pretrained(str(tmp), safe_serialization=True)
        encoder.tokenizer.save_pretrained(str(tmp))
    (tmp / SETTINGS_FILE).write_text(json.dumps(settings, ensure_ascii=False, indent=1), encoding="utf-8")
    for item in tmp.iterdir():
        target = out / item.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(item, target)
    tmp.rmdir()
    if cfg.mode == "adapter":
        # A zoo folder: manifest with every file's sha256 (xnorm.zoo), so it can be shipped in adapters_zoo/.
        zoo.write_manifest(out, **manifest)
        return zoo.read_manifest(out, verify=False)
    manifest = {"format": adapter_io.FULL_FORMAT, **manifest, "xnorm_version": __version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with atomic_write(out / adapter_io.MANIFEST_FILE) as f:
        json.dump(manifest, f, ensure_ascii=False, indent=1)
    return manifest


def _resolve_max_length(base_model: str, encoder: Any) -> int:
    """The max length the base model is used with at inference (training may use a shorter one)."""
    from xnorm.models import registry
    from xnorm.models.encoder import DEFAULT_MAX_LENGTH, read_model_settings

    info = registry.lookup(base_model)
    if info is not None:
        return info.max_length
    location = Path(_resolve_location(base_model))
    return int(read_model_settings(location).get("max_length", DEFAULT_MAX_LENGTH)) if location.is_dir() \
        else DEFAULT_MAX_LENGTH
