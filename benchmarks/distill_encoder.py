"""Distil the shipped encoder (``hpo-align-e5small``: e5-small + bottleneck adapter, 12 layers) into a shallower
student for faster index builds (issue 3's encoding-speed goal: >= 600 names/s with recall@64 within 0.5 points).

Student: the embedded e5-small cut to ``--layers`` of its 12 transformer layers (no adapter), every weight trained
except the word embeddings (frozen: they are 96M of the 117M parameters and shared with the base). Passages are
encoded WITHOUT the ``passage: `` prefix (two tokens of ~12 per English HPO name: index builds pay for them);
queries keep ``query: ``. Targets: the teacher's vectors of the same texts with the teacher's own prefixes.

Data: names of the teacher's TRAINING concepts only (its split.json), so its test concepts stay held out for
``benchmarks/encoder_full_index.py``:
  - English names (hpo-en) as passages (all of them) and, sampled, as queries;
  - names in the teacher's other languages (hpo-multilingual; nl includes machine-translated CANDIDATE labels) as
    queries and, sampled, as passages.
Loss per batch: mean (1 - cos(student, teacher)) + KL(teacher || student) over the in-batch similarity rows
(temperature 0.05, self-pairs masked): the first matches each vector, the second the neighbourhoods retrieval
ranks by.

``--role query`` distils a QUERY encoder instead: a student that encodes mentions into the space of an index the
teacher built (names stay the teacher's vectors; only link-time encoding gets faster). Its examples are queries
only (English and other-language names of the training concepts) and its KL runs over the teacher's vectors of ALL
41,494 English names (temperature 0.02): the student learns the teacher's ranking of the very index it will search.
Dev also reports acc@1 / recall@64 of the dev concepts against that index, the student's beside the teacher's.

    XNORM_HOME=... XNORM_HPO_TRANSLATIONS=/work/shared/data/hpo-translations \\
        python benchmarks/distill_encoder.py --layers 0 4 8 11 --out /work/runs/student-4l --max-seconds 1800

The output is a plain Hugging Face folder (``xnorm_encoder.json`` declares pooling and prefixes) that ``Encoder``,
``xnorm index --config`` (``model: FOLDER``) and the ONNX / int8 backends load like any model, plus the teacher's
split.json and a manifest (steps, timings, dev agreement). ``--pack NAME`` also writes it into the user zoo
without its word embeddings (``xnorm.models.distilled``), to be loaded by name.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from xnorm.models.encoder import AUTOCAST_PRECISIONS, resolve_precision

REPO = Path(__file__).resolve().parents[1]
TEACHER = "hpo-align-e5small"
QUERY_PREFIX = "query: "
TEMPERATURE = 0.05
INDEX_TEMPERATURE = 0.02  # --role query: KL over the whole index, sharper so the top of the ranking dominates


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def sample(rng: np.random.Generator, rows: np.ndarray, n: int) -> np.ndarray:
    return rows if len(rows) <= n else np.sort(rng.choice(rows, n, replace=False))


def teacher_passages(args: argparse.Namespace, teacher, english) -> np.ndarray:
    """The teacher's vectors of every hpo-en name, in order (given, cached, or encoded once)."""
    from xnorm.models.registry import weights_fingerprint

    given = Path(args.teacher_passages) if args.teacher_passages else None
    cache = given or args.cache / f"passages-{weights_fingerprint(TEACHER)}.npy"
    if cache.is_file():
        return np.load(cache, allow_pickle=False)
    vecs = teacher.encode(english.name_texts.tolist(), kind="passage", show_progress=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vecs)
    return vecs


def build_examples(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """texts, kinds (0 query, 1 passage), gold concept ids and teacher target vectors for train and dev concepts
    (cached); with ``--role query`` also ``index`` (the teacher's vectors of every hpo-en name) and its concepts."""
    from xnorm.models import Encoder
    from xnorm.models.registry import weights_fingerprint
    from xnorm.terminology import load_terminology

    cache = args.cache / f"targets-{weights_fingerprint(TEACHER)}-{args.role}-{args.en_queries}-" \
                         f"{args.other_queries}-{args.other_passages}-{args.seed}" \
                         f"{f'-perlang{args.per_lang_queries}' if args.per_lang_queries else ''}.npz"
    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        return {k: data[k] for k in data.files}
    split = json.loads((REPO / "adapters_zoo" / TEACHER / "split.json").read_text())
    manifest = json.loads((REPO / "adapters_zoo" / TEACHER / "manifest.json").read_text())
    other_langs = [lang for lang in manifest["languages"] if lang != "en"]
    rng = np.random.default_rng(args.seed)
    teacher = Encoder(TEACHER, device=args.device)
    english = load_terminology("hpo-en")
    multi = load_terminology("hpo-multilingual")
    index = teacher_passages(args, teacher, english)
    en_concepts = english.concept_ids[english.name_concepts]
    multi_concepts = multi.concept_ids[multi.name_concepts]
    out: dict[str, np.ndarray] = {}
    if args.role == "query":
        out["index"], out["index_concepts"] = index.astype(np.float32), en_concepts.astype(str)
    for part in ("train", "dev"):
        keep = list(split[part])
        scale = 1 if part == "train" else 0.05
        en_rows = np.flatnonzero(np.isin(en_concepts, keep))
        other_rows = np.flatnonzero(np.isin(multi_concepts, keep) & np.isin(multi.name_langs, other_langs))
        q_en = sample(rng, en_rows, int(args.en_queries * scale))
        if args.per_lang_queries:  # every language its share, however few names it has
            q_other = np.concatenate([sample(rng, other_rows[multi.name_langs[other_rows] == lang],
                                             int(args.per_lang_queries * scale)) for lang in other_langs])
        else:
            q_other = sample(rng, other_rows, int(args.other_queries * scale))
        # (texts, kind, gold concepts, teacher vectors); groups in the order of the first runs (same batches)
        groups = [(english.name_texts[en_rows], 1, en_concepts[en_rows], index[en_rows])] if args.role == "both" \
            else []
        groups += [
            (english.name_texts[q_en], 0, en_concepts[q_en],
             teacher.encode(english.name_texts[q_en].tolist(), kind="query", show_progress=True)),
            (multi.name_texts[q_other], 0, multi_concepts[q_other],
             teacher.encode(multi.name_texts[q_other].tolist(), kind="query", show_progress=True)),
        ]
        if args.role == "both":
            p_other = sample(rng, other_rows, int(args.other_passages * scale))
            groups.append((multi.name_texts[p_other], 1, multi_concepts[p_other],
                           teacher.encode(multi.name_texts[p_other].tolist(), kind="passage", show_progress=True)))
        out[f"{part}_texts"] = np.concatenate([g[0].astype(str) for g in groups])
        out[f"{part}_kinds"] = np.concatenate([np.full(len(g[0]), g[1], dtype=np.int8) for g in groups])
        out[f"{part}_concepts"] = np.concatenate([g[2].astype(str) for g in groups])
        out[f"{part}_targets"] = np.concatenate([g[3] for g in groups]).astype(np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out)
    return out


def make_student(layers: list[int], init: Path | None = None):
    """The base cut to ``layers``, or (``init``) a student saved by an earlier run, to train further."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from xnorm.models.registry import model_path

    source = init or model_path("multilingual-e5-small")
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModel.from_pretrained(source, add_pooling_layer=False)
    if init is None:
        model.encoder.layer = torch.nn.ModuleList([model.encoder.layer[i] for i in layers])
        model.config.num_hidden_layers = len(layers)
    model.embeddings.word_embeddings.weight.requires_grad_(False)
    return tokenizer, model


def encode_batch(tokenizer, model, texts: list[str], kinds: np.ndarray, max_length: int):
    """L2-normalised mean-pooled vectors, with gradients (the encoder trainer's pooling)."""
    from xnorm.training.encoder_trainer import _pool

    inputs = [(QUERY_PREFIX if k == 0 else "") + t for t, k in zip(texts, kinds)]
    enc = tokenizer(inputs, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    enc = enc.to(model.device)
    return _pool(model, enc["input_ids"], enc["attention_mask"], "mean")


def loss_terms(student, teacher, index=None):
    """1 - cos to the teacher's vectors, and the KL of the teacher's similarity distribution to the student's:
    over the batch itself (self-pairs masked) or, given ``index`` (--role query), over every name of the index."""
    import torch

    cos = 1.0 - (student * teacher).sum(-1).mean()
    if index is None:
        eye = torch.eye(len(student), dtype=torch.bool, device=student.device)
        s = (student @ student.T / TEMPERATURE).masked_fill(eye, -1e4)
        t = (teacher @ teacher.T / TEMPERATURE).masked_fill(eye, -1e4)
    else:
        s, t = student @ index.T / INDEX_TEMPERATURE, teacher @ index.T / INDEX_TEMPERATURE
    kl = torch.nn.functional.kl_div(s.log_softmax(-1), t.log_softmax(-1), log_target=True, reduction="batchmean")
    return cos, kl


def index_recall(vectors: np.ndarray, data: dict) -> dict[str, float]:
    """acc@1 and recall@64 of dev queries' gold concepts against the teacher's index (--role query)."""
    from train_encoder import concept_ranks

    ranks = concept_ranks(vectors, data["index"], data["index_concepts"], data["dev_concepts"])
    return {"acc1": round(float((ranks == 1).mean()), 4), "r64": round(float((ranks <= 64).mean()), 4)}


def dev_agreement(tokenizer, model, data: dict, max_length: int, index=None, autocast=contextlib.nullcontext
                  ) -> dict[str, float]:
    import torch

    model.eval()
    cos, kl, n, vectors = 0.0, 0.0, 0, []
    with torch.inference_mode(), autocast():
        order = np.random.default_rng(0).permutation(len(data["dev_texts"]))
        # in-batch KL depends on the batch size: full batches only; the KL over the index does not
        for i in range(0, len(order) - (127 if index is None else 0), 128):
            rows = order[i:i + 128]
            s = encode_batch(tokenizer, model, data["dev_texts"][rows].tolist(), data["dev_kinds"][rows], max_length)
            c, k = loss_terms(s, torch.from_numpy(data["dev_targets"][rows]).to(s.device), index)
            cos, kl, n = cos + float(c), kl + float(k), n + 1
            if index is not None:  # for the dev recall against the index
                vectors.append((rows, s.float().cpu().numpy()))
    model.train()
    out = {"dev_1-cos": round(cos / n, 5), "dev_kl": round(kl / n, 5)}
    if index is not None:
        rows = np.concatenate([r for r, _ in vectors])
        sub = {**data, "dev_concepts": data["dev_concepts"][rows]}
        out.update({f"dev_{k}": v for k, v in index_recall(np.concatenate([v for _, v in vectors]), sub).items()})
        out.update({f"dev_teacher_{k}": v for k, v in index_recall(data["dev_targets"][rows], sub).items()})
    return out


def main(argv=None) -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, nargs="+", default=[0, 4, 8, 11], help="teacher layers the student keeps")
    ap.add_argument("--role", choices=["both", "query"], default="both",
                    help="both: encode names and mentions; query: encode mentions into the teacher's index")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--init", type=Path, help="continue from a student folder of an earlier run (its layers)")
    ap.add_argument("--steps", type=int, default=3000,
                    help="planned steps (the LR schedule); --max-seconds may stop sooner")
    ap.add_argument("--max-seconds", type=float, default=1800)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--max-length", type=int, default=32)
    ap.add_argument("--en-queries", type=int, default=8000)
    ap.add_argument("--other-queries", type=int, default=14000)
    ap.add_argument("--other-passages", type=int, default=6000)
    ap.add_argument("--per-lang-queries", type=int, help="instead of --other-queries: up to N queries of EACH "
                    "other language (small languages such as de / it are otherwise a few %% of the queries)")
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cuda" if _cuda() else "cpu",
                    help="where teacher and student run (default: a GPU when present)")
    ap.add_argument("--precision", choices=AUTOCAST_PRECISIONS, default="auto",
                    help="the student's forward pass: bf16 autocast (auto: where the device computes it natively; "
                    "trained tensors and optimizer state stay fp32) or fp32")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/xnorm-distill"))
    ap.add_argument("--teacher-passages", help="the teacher's .npy vectors of every hpo-en name, in order")
    ap.add_argument("--pack", metavar="NAME", help="also put the student into the user zoo ($XNORM_HOME/adapters) "
                    "as NAME (kind distilled-encoder: loadable as Encoder(NAME) or `model: NAME`)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "benchmarks"))  # train_encoder's concept_ranks for the dev recall
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    t0 = time.perf_counter()
    data = build_examples(args)
    targets_s = time.perf_counter() - t0
    print(f"examples: train {len(data['train_texts']):,}, dev {len(data['dev_texts']):,} ({targets_s:.0f} s)",
          flush=True)
    earlier = json.loads((args.init / "manifest.json").read_text()) if args.init else {}
    if earlier:
        args.layers = earlier["layers"]
        if earlier.get("role", "both") != args.role:
            sys.exit(f"--init {args.init} is a student of role {earlier.get('role', 'both')!r}, not {args.role!r}")
    tokenizer, model = make_student(args.layers, args.init)
    model.to(args.device).train()
    index = torch.from_numpy(data["index"]).to(args.device) if args.role == "query" else None
    precision = resolve_precision(args.precision, args.device)

    def autocast():
        return torch.autocast(args.device.split(":")[0], dtype=torch.bfloat16, enabled=precision == "bf16")

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    warmup = max(1, args.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (args.steps - s) / max(1, args.steps - warmup))))
    rng = np.random.default_rng(args.seed)
    n = len(data["train_texts"])
    history = [{"step": 0, **dev_agreement(tokenizer, model, data, args.max_length, index, autocast)}]
    print(history[-1], flush=True)
    start, step = time.perf_counter(), 0
    while step < args.steps and time.perf_counter() - start < args.max_seconds:
        rows = rng.choice(n, args.batch_size, replace=False)
        with autocast():  # pooling, loss and the teacher targets stay fp32 (encode_batch pools in fp32)
            s = encode_batch(tokenizer, model, data["train_texts"][rows].tolist(), data["train_kinds"][rows],
                             args.max_length)
        cos, kl = loss_terms(s, torch.from_numpy(data["train_targets"][rows]).to(s.device), index)
        (cos + kl).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        step += 1
        if step % args.eval_every == 0:
            history.append({"step": step, "seconds": round(time.perf_counter() - start), "train_1-cos": cos.item(),
                            "train_kl": kl.item(),
                            **dev_agreement(tokenizer, model, data, args.max_length, index, autocast)})
            print(history[-1], flush=True)
    train_s = time.perf_counter() - start
    if history[-1]["step"] != step:
        history.append({"step": step, "seconds": round(train_s),
                        **dev_agreement(tokenizer, model, data, args.max_length, index, autocast)})

    model.to("cpu")
    total = step + earlier.get("steps", 0)  # with an --init run's steps
    save_student(args.out, model, tokenizer, role=args.role, layers=args.layers, steps=total, pack=args.pack,
                 max_length=args.max_length,
                 fields={"init_from": {"folder": str(args.init), "steps": earlier["steps"]} if earlier else None,
                         "planned_steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
                         "precision": precision,
                         "examples": {"train": int(n), "dev": int(len(data["dev_texts"])),
                                      "per_lang_queries": args.per_lang_queries},
                         "targets_seconds": round(targets_s, 1), "training_seconds": round(train_s, 1),
                         "machine": f"{os.cpu_count()} CPUs, torch threads {args.threads}, device {args.device}",
                         "history": history})
    print(f"saved {args.out}: {step} steps in {train_s:.0f} s", flush=True)


def save_student(out: Path, model, tokenizer, *, role: str, layers: list[int], steps: int, fields: dict,
                 max_length: int = 32, pack: str | None = None) -> None:
    """The student folder (Hugging Face model + tokenizer, encoder settings, the teacher's split, a manifest with
    ``fields``), atomically; ``pack`` also puts it into the user zoo under that name."""
    from xnorm._io import atomic_dir

    trained = sum(p.numel() for n, p in model.named_parameters() if n != "embeddings.word_embeddings.weight")
    with atomic_dir(out) as tmp:  # the folder appears complete or not at all
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        settings = {"pooling": "mean", "query_prefix": QUERY_PREFIX, "passage_prefix": "", "max_length": max_length}
        if role == "query":  # mentions only, into the teacher's index: pinned to the teacher's weights
            from xnorm.models.registry import weights_fingerprint

            settings.update(role="query", index_model=TEACHER, index_fingerprint=weights_fingerprint(TEACHER))
        (tmp / "xnorm_encoder.json").write_text(json.dumps(settings))
        shutil.copy(REPO / "adapters_zoo" / TEACHER / "split.json", tmp / "split.json")
        (tmp / "manifest.json").write_text(json.dumps({
            "kind": "distilled-encoder", "teacher": TEACHER, "role": role, "layers": layers, "steps": steps,
            "best_step": steps, "trained_params": trained, **fields}, indent=1))
    if pack:
        from xnorm import zoo
        from xnorm.models import distilled

        entry = distilled.pack(out, zoo.user_zoo_dir() / pack, name=pack, teacher=TEACHER, role=role,
                               layers=layers, steps=steps, trained_params=trained)
        print(f"packed into the zoo: {entry}", flush=True)

if __name__ == "__main__":
    main()
