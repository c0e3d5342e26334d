"""Train symmetric students from a bundle of ``distill_bundle.py export`` on a GPU (the ``device`` tool's machine).

Needs only torch, transformers, safetensors and numpy (no xnorm, no embedded model: the bundle holds the student
with a pruned vocabulary and pre-tokenized texts). Each ``--variant NAME:LR:BATCH`` trains in its own process, all
at once on the one GPU, for ``--seconds`` (the learning rate warms up over the first 5% of that time and decays
linearly to 0 at its end). Loss: ``distill_encoder.py``'s (1 - cos to the teacher + in-batch KL). Every
``--eval-seconds`` the student encodes the dev texts and ALL English names, and ranks the dev queries' gold concepts
against its own index; the best state by dev acc@1 + recall@64 is kept. Per variant, ``OUT/NAME.safetensors``
(that state's tensors but the word embeddings, fp16) and ``OUT/NAME.json`` (settings, history, timings).

    python3 benchmarks/distill_device.py --bundle .gpu/bundle --out $OUT --seconds 420 \\
        --variant a:5e-4:256 --variant b:1e-3:512
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from device_variants import run_variants  # noqa: E402
from distill_bundle import dev_recall  # noqa: E402  (numpy only, as the ranking it calls: train_encoder.py's)
from distill_encoder import loss_terms  # noqa: E402

SHARED = "embeddings.word_embeddings.weight"


def padded(data, part: str, pad_id: int, device):
    """A part's ragged token ids as one padded [n, longest] tensor on the device, and their lengths."""
    import torch

    flat, offsets = data[f"{part}_ids"].astype(np.int64), data[f"{part}_offsets"]
    lengths = np.diff(offsets)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = np.arange(len(flat)) - np.repeat(offsets[:-1], lengths)
    ids = np.full((len(lengths), int(lengths.max())), pad_id, dtype=np.int64)
    ids[rows, cols] = flat
    return torch.from_numpy(ids).to(device), torch.from_numpy(lengths).to(device)


def encode(model, ids, lengths, rows=None):
    """L2-normalised mean-pooled vectors of the given rows (all when None), trimmed to their longest text."""
    import torch

    if rows is not None:
        ids, lengths = ids[rows], lengths[rows]
    ids = ids[:, :int(lengths.max())]
    mask = (torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]).long()
    hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state.float()  # pooling in fp32 under bf16
    w = mask.unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * w).sum(1) / w.sum(1), dim=-1)


def targets(data, part: str, device):
    """The teacher's vectors of a part (int8 rows times their scales, renormalised)."""
    import torch

    rows = data[f"{part}_targets"].astype(np.float32) * data[f"{part}_scales"].astype(np.float32)
    return torch.nn.functional.normalize(torch.from_numpy(rows).to(device), dim=-1)


def encode_all(model, ids, lengths, batch: int = 1024):
    import torch

    return torch.cat([encode(model, ids[i:i + batch], lengths[i:i + batch]) for i in range(0, len(ids), batch)])


def native_bf16(device: str) -> bool:
    """Whether the device computes bfloat16 products natively (xnorm.models.encoder._native_bf16's test; this
    script cannot import xnorm)."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def evaluate(model, sets: dict, data, autocast) -> dict:
    """Dev agreement with the teacher (1 - cos, in-batch KL over full batches of 128, as distill_encoder.py) and
    dev queries' acc@1 / recall@64 against the student's own index of every English name."""
    import torch

    model.eval()
    with torch.inference_mode(), autocast():
        dev, index = encode_all(model, *sets["dev"]), encode_all(model, *sets["index"])
        targets = sets["dev_targets"]
        order = torch.from_numpy(np.random.default_rng(0).permutation(len(dev))).to(dev.device)
        cos, kl, b = [], [], min(128, len(order))
        for i in range(0, len(order) - b + 1, b):
            c, k = loss_terms(dev[order[i:i + b]], targets[order[i:i + b]])
            cos.append(float(c)), kl.append(float(k))
    model.train()
    out = {"dev_1-cos": round(float(np.mean(cos)), 5), "dev_kl": round(float(np.mean(kl)), 5)}
    rows = data["dev_concepts"] >= 0  # the texts whose concept has an English name
    recall = dev_recall(dev.float().cpu().numpy()[rows], data["dev_kinds"][rows], data["dev_langs"][rows],
                        data["dev_concepts"][rows], index.float().cpu().numpy(), data["index_concepts"])
    for lang, r in recall.items():
        out[f"acc1_{lang}"], out[f"r64_{lang}"] = r["acc1"], r["r64"]
    return out


def train(args: argparse.Namespace) -> None:
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import BertModel

    name, lr, batch = args.variant[0].split(":")
    lr, batch = float(lr), int(batch)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = True
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = args.precision == "bf16" or (args.precision == "auto" and native_bf16(device))

    def autocast():  # bf16 matrix products; the trained tensors and the optimizer state stay fp32
        return torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16)

    bundle = Path(args.bundle)
    info = json.loads((bundle / "bundle.json").read_text())
    data = np.load(bundle / "data.npz", allow_pickle=False)
    model = BertModel.from_pretrained(bundle / "model", add_pooling_layer=False).float().to(device).train()
    if args.init:  # an earlier student's tensors (a zoo entry's student.safetensors or a variant's output)
        state, init = model.state_dict(), load_file(args.init)
        if set(init) != set(state) - {SHARED}:
            differ = sorted(set(init) ^ (set(state) - {SHARED}))
            sys.exit(f"--init {args.init}: its tensors are not this student's (they differ in {differ})")
        model.load_state_dict({**state, **{k: v.float() for k, v in init.items()}})
    model.embeddings.word_embeddings.weight.requires_grad_(False)  # the base's rows: shared, never trained
    pad = int(data["pad_id"])
    sets = {part: padded(data, part, pad, device) for part in ("train", "dev", "index")}
    train_targets, sets["dev_targets"] = (targets(data, part, device) for part in ("train", "dev"))

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    warm = 0.05 * args.seconds
    n = len(sets["train"][0])
    gen = torch.Generator(device=device).manual_seed(args.seed)

    def snapshot() -> dict:
        return {k: v.detach().to("cpu", torch.float16).clone() for k, v in model.state_dict().items() if k != SHARED}

    history = [{"step": 0, "seconds": 0, **evaluate(model, sets, data, autocast)}]
    eval_seconds = 0.0
    print(name, history[-1], flush=True)
    best, best_score, best_step = snapshot(), history[0]["acc1_all"] + history[0]["r64_all"], 0  # may stay the init
    start = time.perf_counter()
    step, next_eval = 0, args.eval_seconds
    while (elapsed := time.perf_counter() - start) < args.seconds:
        for group in opt.param_groups:
            group["lr"] = lr * min(elapsed / warm, (args.seconds - elapsed) / (args.seconds - warm))
        rows = torch.randperm(n, generator=gen, device=device)[:batch]
        with autocast():
            vectors = encode(model, *sets["train"], rows)
        cos, kl = loss_terms(vectors, train_targets[rows])
        (cos + kl).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        if elapsed >= next_eval or time.perf_counter() - start >= args.seconds:
            next_eval += args.eval_seconds
            t = time.perf_counter()
            history.append({"step": step, "seconds": round(t - start, 1),
                            "train_1-cos": round(cos.item(), 5), "train_kl": round(kl.item(), 5),
                            **evaluate(model, sets, data, autocast)})
            eval_seconds += time.perf_counter() - t
            print(name, history[-1], flush=True)
            score = history[-1]["acc1_all"] + history[-1]["r64_all"]
            if score > best_score:
                best, best_score, best_step = snapshot(), score, step
    seconds = time.perf_counter() - start
    out = Path(args.out)
    save_file(best, str(out / f"{name}.safetensors"), metadata={"format": "pt"})
    gpu = torch.cuda.get_device_name() if device == "cuda" else f"{os.cpu_count()} CPUs"
    (out / f"{name}.json").write_text(json.dumps({
        "variant": name, "init": args.init, "layers": info["layers"], "lr": lr, "batch_size": batch,
        "precision": "bf16" if bf16 else "fp32", "steps": step,
        "best_step": best_step, "seconds": round(seconds, 1), "eval_seconds": round(eval_seconds, 1),
        "steps_per_second": round(step / (seconds - eval_seconds), 2),  # training alone
        "examples": {"train": int(n), "dev": int(len(sets["dev"][0]))},
        "machine": f"{gpu}, torch {torch.__version__}", "bundle": info, "history": history}, indent=1))
    print(f"{name}: {step} steps in {seconds:.0f} s, best step {best_step}", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--variant", action="append", required=True, metavar="NAME:LR:BATCH")
    ap.add_argument("--seconds", type=float, default=420, help="training time of each variant (they run at once)")
    ap.add_argument("--eval-seconds", type=float, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", help="default: cuda when present")
    ap.add_argument("--init", help="start from an earlier student's tensors (.safetensors without word embeddings, "
                    "e.g. adapters_zoo/hpo-align-e5small-4l-query/student.safetensors)")
    ap.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                    help="forward/backward in bf16 autocast (auto: where the device has it natively) or fp32")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = ap.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if len(args.variant) == 1:
        return train(args)
    failed = run_variants(__file__, argv if argv is not None else sys.argv[1:], args.variant)
    if failed:
        sys.exit(f"variants failed: {failed}")


if __name__ == "__main__":
    main()
