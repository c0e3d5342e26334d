"""Memory of the models a full linker loads, with tokenizers shared (``xnorm.models.tokenizers``) and not.

One fresh process per mode and repeat, in alternation; each loads what a linker with a distilled query encoder
and a reranker holds: the shipped encoder ``hpo-align-e5small`` (names), the query encoder
``hpo-align-e5small-4l-query`` (mentions) and an untrained reranker on the same e5-small base. Reported: peak RSS
(VmHWM) and the RSS after loading, medians; ``separate`` gives every model its own tokenizer (the behaviour
before sharing), by making each tokenizer's cache key unique.

    XNORM_HOME=... python benchmarks/tokenizer_sharing.py --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # scale.py's RSS readers
MODES = ("separate", "shared")


def child(mode: str) -> None:
    import itertools

    from scale import peak_rss_mb, rss_mb
    from xnorm.models import Encoder, tokenizers
    from xnorm.rerank import Reranker

    if mode == "separate":  # the pre-sharing behaviour: a key of its own for every load
        counter = itertools.count()
        tokenizers._key = lambda source: f"{source}#{next(counter)}"
    start = time.perf_counter()
    models = [Encoder("hpo-align-e5small"), Encoder("hpo-align-e5small-4l-query"), Reranker.create()]
    loaded = time.perf_counter() - start
    print(json.dumps({"mode": mode, "rss_mb": rss_mb(), "peak_mb": peak_rss_mb(),
                      "tokenizers": tokenizers.shared_count(), "load_s": loaded, "models": len(models)}))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "tokenizer_sharing.md")
    args = ap.parse_args(argv)
    if args.child:
        return child(args.child)
    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    for _ in range(args.repeats):
        for mode in MODES:
            out = subprocess.run([sys.executable, __file__, "--child", mode], capture_output=True, text=True,
                                 check=True).stdout
            runs[mode].append(json.loads(out.strip().splitlines()[-1]))
            print(runs[mode][-1], flush=True)
    med = {m: {k: statistics.median(r[k] for r in runs[m]) for k in ("rss_mb", "peak_mb", "load_s", "tokenizers")}
           for m in MODES}
    base = med["separate"]
    lines = ["# Shared tokenizers: memory of a linker's models", "",
             f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {platform.machine()}, "
             f"{os.cpu_count()} CPUs; {args.repeats} fresh processes per mode, alternating; medians",
             "- each process loads `hpo-align-e5small` (names), `hpo-align-e5small-4l-query` (mentions) and "
             "`Reranker.create()` (e5-small base), as a linker with a query encoder and a reranker does",
             "- command: `python benchmarks/tokenizer_sharing.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
             + "`", "",
             "| mode | tokenizers held | RSS after loading (MB) | peak RSS (MB) | vs separate | load s |",
             "|---|---|---|---|---|---|"]
    for mode in MODES:
        m = med[mode]
        lines.append(f"| {mode} | {m['tokenizers']:.0f} | {m['rss_mb']:.0f} | {m['peak_mb']:.0f} | "
                     f"{m['rss_mb'] - base['rss_mb']:+.0f} MB ({m['rss_mb'] / base['rss_mb']:.2f}x) | "
                     f"{m['load_s']:.1f} |")
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
