"""Describe the machine and the code a benchmark ran on, and measure memory (Linux /proc, resource)."""
from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
from pathlib import Path


def _proc_value(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def git_commit(cwd: str | os.PathLike | None = None) -> dict:
    """HEAD commit and whether the working tree had changes (results of a dirty tree are labelled so)."""
    cwd = cwd or Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if head.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def machine_description() -> dict:
    """Cores, RAM, CPU model, torch threads, Python / xnorm / key library versions."""
    from .. import __version__

    mem = _proc_value("/proc/meminfo", "MemTotal")
    info = {
        "cpu_model": _proc_value("/proc/cpuinfo", "model name") or platform.processor() or None,
        "cores_total": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gib": round(int(mem.split()[0]) / 2**20, 1) if mem else None,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "xnorm": __version__,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch"] = None
    for lib in ("numpy", "faiss", "sklearn", "transformers"):
        try:
            info[lib] = __import__(lib).__version__
        except (ImportError, AttributeError):
            info[lib] = None
    return info


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MiB; ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def current_rss_mb() -> float | None:
    """Resident set size now (MiB), from /proc/self/statm; None where that does not exist."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
