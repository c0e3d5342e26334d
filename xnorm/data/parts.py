"""Partitioned BigBIO JSONL: one dataset written as a folder of part files plus a manifest.

Distributed engines (``xnorm.engines``) write their output this way::

    manifest.json      format, version, the parts in order (file, documents, mentions, sha256), totals, run info
    part-00000.jsonl   documents 0 .. n0-1, one JSON object per line
    part-00001.jsonl   ...

``read_parts`` (and so ``read_documents`` / ``xnorm evaluate`` on the folder) yields the documents of every part
in manifest order, as if they were one JSONL file. ``PartsWriter`` builds the folder atomically: it appears under
its final name only when ``close()`` succeeds.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from .._io import read_folder_manifest, sha256_file
from ..errors import InputError

FORMAT = "xnorm-documents-parts"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def is_parts_folder(path: str | os.PathLike) -> bool:
    """True for a folder whose manifest says it is partitioned documents."""
    mf = Path(path) / MANIFEST
    if not mf.is_file():
        return False
    try:
        return json.loads(mf.read_text(encoding="utf-8")).get("format") == FORMAT
    except (json.JSONDecodeError, OSError, AttributeError):
        return False


def read_parts_manifest(path: str | os.PathLike) -> dict:
    """The manifest of a partitioned folder, checked (format, version, every listed part present)."""
    path = Path(path)
    mf = path / MANIFEST
    manifest = read_folder_manifest(path, FORMAT, FORMAT_VERSION, error=InputError,
                                    what="a partitioned documents folder (or an unfinished one)",
                                    fix="point at a folder written by `xnorm link --engine ray`.")
    for part in manifest.get("parts", []):
        if not (path / part["file"]).is_file():
            raise InputError(f"part {part['file']!r} listed in the manifest is missing.", file=str(mf),
                             field="parts", fix="copy the whole folder, or rewrite it.")
    return manifest


def read_parts(path: str | os.PathLike, validate: bool = True, strict: bool = False,
               verify: bool = False) -> Iterator[dict]:
    """Yield the documents of every part of a partitioned folder, in order.

    ``verify`` also checks each part's SHA-256 against the manifest before reading it (a full extra read).
    """
    from .jsonl import read_jsonl

    path = Path(path)
    manifest = read_parts_manifest(path)
    for part in manifest.get("parts", []):
        f = path / part["file"]
        if verify and sha256_file(f) != part.get("sha256"):
            raise InputError("part file does not match its checksum.", file=str(f), field="sha256",
                             fix="the folder was changed after it was written: rewrite it.")
        yield from read_jsonl(f, validate=validate, strict=strict)


class PartsWriter:
    """Write documents part by part into a temporary folder; ``close()`` adds the manifest and renames it.

    Use as a context manager: leaving the block by an exception removes the temporary folder, so the output
    folder never exists half-written. An existing folder at ``path`` is replaced only on success.
    """

    def __init__(self, path: str | os.PathLike, info: dict[str, Any] | None = None) -> None:
        from .._io import atomic_dir

        self.path = Path(path)
        self.info = dict(info or {})
        self.parts: list[dict] = []
        self._ctx = atomic_dir(self.path)
        self._tmp: Path | None = None

    def __enter__(self) -> "PartsWriter":
        self._tmp = self._ctx.__enter__()
        return self

    def write_part(self, lines: Iterable[str], mentions: int = 0) -> int:
        """Write one part from already-serialised JSON documents (one per item); return how many."""
        assert self._tmp is not None, "use PartsWriter as a context manager"
        name = f"part-{len(self.parts):05d}.jsonl"
        n = 0
        with open(self._tmp / name, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(line)
                f.write("\n")
                n += 1
        self.parts.append({"file": name, "documents": n, "mentions": int(mentions),
                           "sha256": sha256_file(self._tmp / name)})
        return n

    def write_documents(self, docs: Iterable[dict], mentions: int = 0) -> int:
        """Write one part from document dicts."""
        return self.write_part((json.dumps(d, ensure_ascii=False, separators=(",", ":")) for d in docs), mentions)

    @property
    def documents(self) -> int:
        return sum(p["documents"] for p in self.parts)

    @property
    def mentions(self) -> int:
        return sum(p["mentions"] for p in self.parts)

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            manifest = {"format": FORMAT, "format_version": FORMAT_VERSION,
                        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "documents": self.documents, "mentions": self.mentions, **self.info, "parts": self.parts}
            try:
                (self._tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False),
                                                  encoding="utf-8")
            except BaseException as e:  # the folder must not appear without its manifest
                self._ctx.__exit__(type(e), e, e.__traceback__)
                raise
        return bool(self._ctx.__exit__(exc_type, exc, tb))
