"""One entry point for every format: ``read_documents`` (format detected or forced) and ``write_documents``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import InputError
from .brat import read_brat, write_brat
from .hf import is_hf_folder, read_hf, split_path
from .jsonl import read_jsonl, write_jsonl
from .parts import is_parts_folder, read_parts
from .pubtator import read_pubtator, write_pubtator

READ_FORMATS = ("bigbio", "brat", "pubtator", "hf")
WRITE_FORMATS = ("bigbio", "brat", "pubtator")
_FIX = "force it with format= (CLI: --format) bigbio, brat, pubtator or hf."


def _looks_like_pubtator(path: Path) -> bool:
    """A ``PMID|t|`` line among the first non-empty lines."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for _ in range(20):
                line = f.readline(1 << 16)
                if not line:
                    return False
                if line.strip():
                    head = line.split("|", 2)
                    return len(head) == 3 and head[1] == "t" and "\t" not in head[0] and bool(head[0].strip())
    except OSError:
        return False
    return False


def detect_format(path: str | os.PathLike) -> str:
    """``bigbio`` (.jsonl/.json, or a folder of JSONL parts + manifest), ``brat`` (folder with .ann or an .ann
    file), ``hf`` (saved dataset folder, ``folder::split``) or ``pubtator`` (a ``PMID|t|title`` line);
    ``InputError`` if none fits."""
    p = Path(split_path(path)[0])
    if p.is_dir():
        if is_parts_folder(p):  # partitioned BigBIO JSONL (a distributed engine's output)
            return "bigbio"
        if is_hf_folder(p):
            return "hf"
        if next(p.rglob("*.ann"), None) is not None:
            return "brat"
        raise InputError("folder holds neither .ann files (brat) nor a saved Hugging Face dataset.", file=str(p),
                         fix="give a brat folder (.txt + .ann), a dataset folder from save_to_disk, or a file.")
    if not p.exists():
        raise InputError("file not found.", file=str(p), fix="check the path.")
    if p.suffix == ".ann":
        return "brat"
    if _looks_like_pubtator(p):
        return "pubtator"
    if p.suffix in (".jsonl", ".json") or p.name.endswith((".jsonl.gz", ".json.gz")):
        return "bigbio"
    with open(p, encoding="utf-8", errors="replace") as f:
        head = f.read(1 << 12).lstrip()
    if head.startswith(("{", "[")):
        return "bigbio"
    raise InputError("cannot tell the format of this file.", file=str(p), fix=_FIX)


def read_documents(path: str | os.PathLike, format: str | None = None, validate: bool = True,
                   **opts: Any) -> Iterator[dict]:
    """Stream kb documents from ``path``: BigBIO JSONL, brat, PubTator or a HF dataset (detected unless forced).

    ``opts`` go to the reader: ``lang`` (brat, PubTator), ``db_name`` (PubTator), ``split`` / ``config`` (hf),
    ``strict`` (bigbio). ``validate=False`` skips validation (faster, for trusted input).
    """
    fmt = format or detect_format(path)
    if fmt not in READ_FORMATS:
        raise InputError(f"unknown format {fmt!r}.", field="format", fix=f"use one of {', '.join(READ_FORMATS)}.")
    allowed = {"bigbio": {"strict"}, "brat": {"lang"}, "pubtator": {"lang", "db_name"}, "hf": {"split", "config"}}
    unknown = set(opts) - allowed[fmt]
    if unknown:
        raise InputError(f"option {sorted(unknown)[0]!r} does not apply to {fmt} input.", field=sorted(unknown)[0],
                         fix=f"{fmt} takes {', '.join(sorted(allowed[fmt])) or 'no options'}.")
    reader = {"bigbio": read_jsonl, "brat": read_brat, "pubtator": read_pubtator, "hf": read_hf}[fmt]
    if fmt == "bigbio" and Path(path).is_dir():  # a folder of JSONL parts + manifest reads as one dataset
        reader = read_parts
    return reader(path, validate=validate, **opts)


def output_format(path: str | os.PathLike) -> str:
    """The format implied by an output path: .jsonl/.json -> bigbio, .pubtator/.txt -> pubtator, else brat."""
    p = Path(path)
    if p.suffix in (".jsonl", ".json"):
        return "bigbio"
    if p.suffix in (".pubtator", ".txt"):
        return "pubtator"
    return "brat"


def write_documents(docs: Iterable[dict], path: str | os.PathLike, format: str | None = None, **opts: Any) -> int:
    """Write documents atomically as BigBIO JSONL, brat (a folder) or PubTator; return how many were written.

    ``format`` defaults to what the path says (:func:`output_format`). ``opts``: ``db_name`` for PubTator.
    """
    fmt = format or output_format(path)
    if fmt == "bigbio":
        return write_jsonl(docs, path)
    if fmt == "brat":
        return write_brat(docs, path)
    if fmt == "pubtator":
        return write_pubtator(docs, path, **opts)
    raise InputError(f"cannot write format {fmt!r}.", field="format", fix=f"use one of {', '.join(WRITE_FORMATS)}.")
