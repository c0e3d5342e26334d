"""Run each ``--variant`` of a device training script in its own process, all at once on the one GPU (each variant
is far too small to fill it alone). Standard library only: the device machine has no xnorm."""
from __future__ import annotations

import subprocess
import sys


def run_variants(script: str, argv: list[str], variants: list[str], extra: tuple[str, ...] = ()) -> list[str]:
    """Start ``script`` once per variant with ``argv`` less its ``--variant`` options (+ ``extra``); wait for all.
    Returns the variants whose process failed."""
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--variant":
            skip = True
        elif not a.startswith("--variant="):
            rest.append(a)
    procs = [subprocess.Popen([sys.executable, script, *rest, *extra, "--variant", v]) for v in variants]
    return [v for v, p in zip(variants, procs) if p.wait()]
