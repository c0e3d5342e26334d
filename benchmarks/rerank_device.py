"""Fine-tune full rerankers from a ``rerank_bundle.py export`` bundle on a GPU (the ``device`` tool's machine).

Needs only torch, transformers, safetensors and numpy: the bundle holds the base model (pruned vocabulary, int8
rows) and token ids; the scoring head and the loss are xnorm's own files (``xnorm/rerank/head.py``, ``loss.py``)
loaded by path. Mode ``full``: every layer and the head train, the word embeddings stay frozen, as
``xnorm train-reranker --mode full``. Each ``--variant NAME:LR:LAMBDA:K:BATCH[:SETS]`` (K candidates per training
mention, BATCH mentions per step, SETS the bundle's training sets joined by ``+``, default
``train+train_synonyms``; ``train_matched`` with ``export --matched``) trains in its own process, all at once on the
one GPU (``--device cpu`` runs it here, slowly), for ``--seconds`` (warm-up over
the first 5%, then linear decay to 0). Every ``--eval-seconds`` it reranks the dev sets' top ``--eval-k``; the state
kept is the one with the best worst-set acc@1 gain over the candidates (the product's rule; the untrained state,
which ranks as the candidates, is step 0). The kept state then reranks every test set. ``OUT/chosen.json`` holds
every variant's report (settings, dev history, test acc@1); the best variant by dev (worst-set gain, then dev
acc@1) returns its tensors as ``OUT/weights-*.safetensors`` (fp16, under 16 MB each: the tool returns 8 files).

    python3 benchmarks/rerank_device.py --bundle .gpu/rerank --out $OUT --seconds 300 \\
        --variant a:5e-5:0:8:64 --variant b:5e-5:1:8:64
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from device_variants import run_variants  # noqa: E402
from rerank_bundle import SETS_DEV, assemble_pairs  # noqa: E402  (numpy only)

WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"
POOLING, PRIOR_WEIGHT, DROPOUT = "segments", 4.0, 0.1  # the product's defaults (xnorm.rerank.model)


def _xnorm_file(name: str):
    """A module of xnorm/rerank/ that imports nothing of xnorm (this machine lacks xnorm's dependencies)."""
    spec = importlib.util.spec_from_file_location(f"xnorm_rerank_{name}", HERE.parent / "xnorm" / "rerank" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


head_module, loss_module = _xnorm_file("head"), _xnorm_file("loss")


def load_model(bundle: Path, device: str):
    """The bundle's BertModel, int8 rows dequantized, in fp32 on ``device``."""
    import torch
    from safetensors.numpy import load_file
    from transformers import BertConfig, BertModel

    config = BertConfig.from_dict(json.loads((bundle / "config.json").read_text()))
    model = BertModel(config, add_pooling_layer=False)
    raw = load_file(str(bundle / "model.safetensors"))
    state = {k: v.astype(np.float32) * raw[k + ".scale"] if k + ".scale" in raw else v
             for k, v in raw.items() if not k.endswith(".scale")}
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    params = dict(model.named_parameters())
    assert not unexpected and not [m for m in missing if m in params], (missing, unexpected)  # buffers may differ
    return model.float().to(device)


class PairSet:
    """One set's mentions × first k candidates as assembled pairs on the device (valid slots only)."""

    def __init__(self, data, info: dict, name: str, k: int, device: str, limit: int | None = None) -> None:
        import torch

        take = slice(None, limit)  # the first `limit` mentions only (quick checks)
        text = data[f"{name}_text"][take, :k]
        self.valid = text >= 0
        self.gold = data[f"{name}_gold"][take].astype(np.int64)
        self.gold = np.where(self.gold < k, self.gold, -1)  # gold beyond the first k: a miss
        # [n, k] every gold column (evaluation sets hold several when a mention has several gold concepts;
        # bundles written before the mask existed: the first gold column only)
        if f"{name}_gold_mask" in data:
            self.gold_mask = data[f"{name}_gold_mask"][take, :k].astype(bool)
        else:
            self.gold_mask = np.zeros(text.shape, dtype=bool)
            self.gold_mask[np.flatnonzero(self.gold >= 0), self.gold[self.gold >= 0]] = True
        scores = data[f"{name}_scores"][take, :k]
        self.prior = loss_module.generator_minmax(scores, self.valid)
        self.q = loss_module.generator_distribution(scores, self.valid)
        self.source = data[f"{name}_source"][take] if f"{name}_source" in data else None
        self.langs = data[f"{name}_lang"][take]
        rows, cols = np.nonzero(self.valid)
        ids, seg = assemble_pairs((data["a_ids"].astype(np.int64), data["a_offsets"]),
                                  (data["b_ids"].astype(np.int64), data["b_offsets"]),
                                  data[f"{name}_mention"][take][rows], text[rows, cols], info["template"],
                                  info["pairs"]["max_length"])
        self.pair_of = np.full(self.valid.shape, -1, dtype=np.int64)  # [n, k] -> row of ids (-1: empty slot)
        self.pair_of[rows, cols] = np.arange(len(rows))
        self.ids = torch.from_numpy(ids).to(device)
        self.seg = torch.from_numpy(seg).to(device)
        self.pad = int(info["template"]["pad"])
        self.n, self.k = self.valid.shape

    def batch(self, rows: np.ndarray):
        """(ids, attention mask, segments, valid [b, k]) of these mentions' pairs."""
        import torch

        valid = self.valid[rows]
        index = torch.from_numpy(self.pair_of[rows][valid]).to(self.ids.device)  # row-major, as masked_scatter fills
        ids, seg = self.ids[index], self.seg[index]
        mask = (ids != self.pad).long()
        width = int(mask.sum(1).max())
        return ids[:, :width], mask[:, :width], seg[:, :width], valid


def scores(model, head, pairs: PairSet, rows: np.ndarray, autocast):
    """Logits [b, k] of these mentions (-inf in empty slots), gradients flowing."""
    import torch

    ids, mask, seg, valid = pairs.batch(rows)
    with autocast():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    pooled = head_module.pool(hidden.float(), mask, seg, POOLING)
    valid_t = torch.from_numpy(valid).to(ids.device)
    prior = torch.from_numpy(pairs.prior[rows][valid]).to(ids.device)
    flat = head(pooled, prior)
    logits = torch.full(valid.shape, float("-inf"), device=ids.device, dtype=flat.dtype)
    return logits.masked_scatter(valid_t, flat), valid_t


def top1(model, head, pairs: PairSet, autocast, batch: int = 512) -> np.ndarray:
    """The column each mention's reranked first candidate came from."""
    import torch

    model.eval(), head.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, pairs.n, batch):
            logits, _ = scores(model, head, pairs, np.arange(s, min(s + batch, pairs.n)), autocast)
            out.append(logits.argmax(1).cpu().numpy())
    model.train(), head.train()
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def hits(pairs: PairSet, first: np.ndarray) -> np.ndarray:
    """Per mention: the chosen column is one of its gold columns."""
    return pairs.gold_mask[np.arange(pairs.n), first] if pairs.n else np.zeros(0, dtype=bool)


def accuracy(pairs: PairSet, first: np.ndarray) -> float:
    return round(float(hits(pairs, first).mean()), 4)


def train(args: argparse.Namespace) -> None:
    import torch
    from safetensors.torch import save_file

    name, lr, lam, k_train, batch, *sets = args.variant[0].split(":")
    lr, lam, k_train, batch = float(lr), float(lam), int(k_train), int(batch)
    sets = sets[0].split("+") if sets else ["train", "train_synonyms"]
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    # auto: bf16 on a GPU that computes it natively, else fp32
    bf16 = args.precision == "bf16" or (args.precision == "auto" and device.startswith("cuda")
                                         and torch.cuda.is_bf16_supported())

    def autocast():  # bf16 matrix products; the trained tensors and the optimizer state stay fp32
        return torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16)

    bundle = Path(args.bundle)
    info = json.loads((bundle / "bundle.json").read_text())
    data = np.load(bundle / "data.npz", allow_pickle=False)
    t_load = time.perf_counter()
    model = load_model(bundle, device).train()
    model.embeddings.word_embeddings.weight.requires_grad_(False)  # as mode full: the base's rows stay
    head = head_module.scoring_head(model.config.hidden_size, DROPOUT, PRIOR_WEIGHT, POOLING).to(device).train()
    if args.init:  # an earlier run's returned tensors (its OUT folder): training continues from them
        from safetensors.torch import load_file

        init = {}
        for f in sorted(Path(args.init).glob("weights-*.safetensors")):
            init.update(load_file(str(f)))
        body = {k: v.float() for k, v in init.items() if not k.startswith("head.")}
        unexpected = set(body) - set(model.state_dict())
        if not init or unexpected:
            sys.exit(f"--init {args.init}: no weights-*.safetensors, or tensors of another model ({sorted(unexpected)[:2]})")
        model.load_state_dict(body, strict=False)
        head.load_state_dict({k[len("head."):]: v.float() for k, v in init.items() if k.startswith("head.")})
    train_sets = [PairSet(data, info, s, k_train, device, args.limit) for s in sets]
    devs = {s: PairSet(data, info, s, args.eval_k, device, args.limit) for s in SETS_DEV}
    tests = sorted(s for s in data.files if s.startswith("test_") and s.endswith("_text"))
    tests = [s[:-len("_text")] for s in tests]
    # the sampling pool: (set, row) of every mention whose gold is among its first k_train candidates; GSC+
    # mentions (in context, source 1) repeated --gsc-weight times
    pool = []
    for i, ps in enumerate(train_sets):
        rows = np.flatnonzero(ps.gold >= 0)
        if ps.source is not None and args.gsc_weight > 1:
            rows = np.concatenate([rows] + [rows[ps.source[rows] == 1]] * (args.gsc_weight - 1))
        pool.append(np.stack([np.full(len(rows), i), rows], 1))
    pool = np.concatenate(pool)
    load_seconds = time.perf_counter() - t_load

    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    warm = 0.05 * args.seconds

    def evaluate(step: int, elapsed: float) -> dict:
        firsts = {s: top1(model, head, ps, autocast) for s, ps in devs.items()}
        accs = {s: accuracy(ps, firsts[s]) for s, ps in devs.items()}
        gains = {s: accs[s] - accuracy(ps, np.zeros(ps.n, dtype=np.int64)) for s, ps in devs.items()}
        # per language: acc@1 gain over the candidates (a diagnosis; selection stays on the sets)
        base = {s: hits(ps, np.zeros(ps.n, dtype=np.int64)) for s, ps in devs.items()}
        by_lang = {f"{s}:{lang}": round(float((hits(ps, firsts[s]) & (ps.langs == lang)).sum()
                                              - (base[s] & (ps.langs == lang)).sum()) / int((ps.langs == lang).sum()), 4)
                   for s, ps in devs.items() for lang in np.unique(ps.langs)}
        return {"step": step, "seconds": round(elapsed, 1), "sets": accs, "gain": round(min(gains.values()), 4),
                "acc1": round(float(np.mean(list(accs.values()))), 4), "gain_by_lang": by_lang}

    def snapshot() -> dict:
        out = {k: v.detach().to("cpu", torch.float16).clone() for k, v in model.state_dict().items()
               if k != WORD_EMBEDDINGS and "position_ids" not in k}
        out.update({f"head.{k}": v.detach().cpu().float().clone() for k, v in head.state_dict().items()})
        return out

    history = [evaluate(0, 0.0)]
    best, best_eval = snapshot(), history[0]
    print(name, history[-1], flush=True)
    losses, eval_seconds, step = [], 0.0, 0
    start = time.perf_counter()
    next_eval = args.eval_seconds
    while (elapsed := time.perf_counter() - start) < args.seconds:
        for group in opt.param_groups:
            group["lr"] = lr * min(elapsed / warm, (args.seconds - elapsed) / (args.seconds - warm))
        picked = pool[rng.integers(0, len(pool), size=batch)]
        loss = 0.0
        for i, ps in enumerate(train_sets):  # one forward per source set in the batch
            rows = picked[picked[:, 0] == i, 1]
            if not len(rows):
                continue
            logits, valid = scores(model, head, ps, rows, autocast)
            gold = torch.from_numpy(ps.gold[rows]).to(device)
            q = torch.from_numpy(ps.q[rows]).to(device)
            loss = loss + loss_module.rank_regularized_loss(logits, gold, q, valid, lam) * (len(rows) / batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        losses.append(float(loss.detach()))
        if elapsed >= next_eval or time.perf_counter() - start >= args.seconds:
            next_eval += args.eval_seconds
            t = time.perf_counter()
            history.append({**evaluate(step, t - start), "loss_last_50": round(float(np.mean(losses[-50:])), 4)})
            eval_seconds += time.perf_counter() - t
            print(name, history[-1], flush=True)
            if (history[-1]["gain"], history[-1]["acc1"]) > (best_eval["gain"], best_eval["acc1"]):
                best, best_eval = snapshot(), history[-1]
    seconds = time.perf_counter() - start
    # the kept state on the test sets, at the dev's k and at every k the bundle holds
    state = {k: v.to(device) for k, v in best.items()}
    model.load_state_dict({k: v.float() for k, v in state.items() if not k.startswith("head.")}, strict=False)
    head.load_state_dict({k[len("head."):]: v for k, v in state.items() if k.startswith("head.")})
    results = {}
    for s in tests:
        for k in args.test_k or sorted({args.eval_k, int(info["k"])}):
            ps = PairSet(data, info, s, k, device, args.limit)
            results.setdefault(s, {})[f"k{k}"] = {"acc1": accuracy(ps, top1(model, head, ps, autocast)),
                                                  "acc1_candidates": accuracy(ps, np.zeros(ps.n, dtype=np.int64)),
                                                  f"recall_{k}": round(float((ps.gold >= 0).mean()), 4), "n": ps.n}
    print(name, json.dumps(results), flush=True)
    save_file(best, str(Path(args.scratch) / f"{name}.safetensors"))
    gpu = torch.cuda.get_device_name() if device.startswith("cuda") else f"{os.cpu_count()} CPUs"
    (Path(args.scratch) / f"{name}.json").write_text(json.dumps({
        "variant": name, "init": args.init, "lr": lr, "lambda": lam, "k_train": k_train, "batch_mentions": batch, "eval_k": args.eval_k,
        "gsc_weight": args.gsc_weight, "train_sets": sets, "pooling": POOLING,
        "prior_weight_init": PRIOR_WEIGHT, "precision": "bf16" if bf16 else "fp32", "steps": step,
        "best_step": best_eval["step"], "best_dev": best_eval, "seconds": round(seconds, 1),
        "eval_seconds": round(eval_seconds, 1), "load_seconds": round(load_seconds, 1),
        "mentions_seen": step * batch, "pool": int(len(pool)),
        "train_seconds_per_1k_mentions": round(1000 * (seconds - eval_seconds) / max(1, step * batch), 3),
        "machine": f"{gpu}, torch {torch.__version__}", "tests": results, "history": history}, indent=1))
    print(f"{name}: {step} steps in {seconds:.0f} s, best step {best_eval['step']}", flush=True)


def choose(args: argparse.Namespace, names: list[str]) -> None:
    """The best variant by dev (worst-set gain, then mean acc@1): its tensors into OUT in parts under 16 MB."""
    from safetensors.torch import load_file, save_file

    out = Path(args.out)
    scratch = Path(args.scratch)
    reports = {n: json.loads((scratch / f"{n}.json").read_text()) for n in names if (scratch / f"{n}.json").is_file()}
    chosen = max(reports, key=lambda n: (reports[n]["best_dev"]["gain"], reports[n]["best_dev"]["acc1"]))
    tensors = load_file(str(scratch / f"{chosen}.safetensors"))
    part, size, parts = {}, 0, []
    for key in sorted(tensors):
        nbytes = tensors[key].numel() * tensors[key].element_size()
        if part and size + nbytes > 15_000_000:  # the device tool returns files of at most 16 MB
            parts.append(part)
            part, size = {}, 0
        part[key], size = tensors[key], size + nbytes
    parts.append(part)
    for i, p in enumerate(parts):
        save_file(p, str(out / f"weights-{i}.safetensors"))
    (out / "chosen.json").write_text(json.dumps({"chosen": chosen, "pooling": POOLING,
                                                 "prior_weight_init": PRIOR_WEIGHT, "variants": reports}, indent=1))
    print(f"chosen: {chosen} ({reports[chosen]['best_dev']}), {len(parts)} weight files", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--scratch", default="/tmp/rerank-variants", help="where every variant's kept tensors go")
    ap.add_argument("--variant", action="append", required=True, metavar="NAME:LR:LAMBDA:K:BATCH[:SETS]",
                    help="SETS: the bundle's training sets joined by + (default train+train_synonyms)")
    ap.add_argument("--seconds", type=float, default=300, help="training time of each variant (they run at once)")
    ap.add_argument("--eval-seconds", type=float, default=20)
    ap.add_argument("--eval-k", type=int, default=8, help="candidates reranked in dev and test (the table's k)")
    ap.add_argument("--test-k", type=int, nargs="*", help="candidates reranked in test (default: --eval-k and the "
                    "bundle's k)")
    ap.add_argument("--gsc-weight", type=int, default=4, help="draw GSC+ training mentions this many times as often")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", help="continue from an earlier run's returned tensors (the folder of its weights-*)")
    ap.add_argument("--device", help="default: cuda when present")
    ap.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    ap.add_argument("--limit", type=int, help="only the first N mentions of every set (a quick check of the script)")
    ap.add_argument("--single", action="store_true", help=argparse.SUPPRESS)  # a variant's own process
    args = ap.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.scratch).mkdir(parents=True, exist_ok=True)
    names = [v.split(":")[0] for v in args.variant]
    if args.single:
        return train(args)
    failed = run_variants(__file__, argv if argv is not None else sys.argv[1:], args.variant, ("--single",))
    if len(failed) == len(args.variant):
        sys.exit(f"every variant failed: {failed}")
    choose(args, names)
    if failed:
        sys.exit(f"variants failed: {failed}")


if __name__ == "__main__":
    main()
