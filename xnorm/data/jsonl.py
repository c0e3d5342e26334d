"""BigBIO kb JSONL: one document (a JSON object) per line. Streaming reader, atomic writer."""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Iterable, Iterator

from .._io import atomic_write
from ..errors import InputError
from .validate import DocumentValidator


def read_jsonl(path: str | os.PathLike, validate: bool = True, strict: bool = False) -> Iterator[dict]:
    """Yield the documents of a BigBIO kb JSONL file one at a time (blank lines are skipped).

    A ``.gz`` file is decompressed on the fly. A ``.json`` file holding one JSON array of documents is read too
    (whole, as an array cannot be streamed).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found.", file=str(path), fix="check the path.")
    check = DocumentValidator(str(path), strict) if validate else None
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        first = _first_char(f)
        # A .json file may hold one array of documents; a .jsonl line starting with "[" is an error below.
        if first == "[" and not path.name.endswith((".jsonl", ".jsonl.gz")):
            yield from _read_json_array(f, path, check)
            return
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as e:
                raise InputError(f"not valid JSON ({e.msg} at column {e.pos + 1}).", file=str(path), line=line_no,
                                 fix="write one BigBIO kb document as a JSON object per line.") from None
            if not isinstance(doc, dict):
                raise InputError(f"a line holds a JSON {type(doc).__name__}, not an object.", file=str(path),
                                 line=line_no, fix="write one BigBIO kb document as a JSON object per line.")
            if check is not None:
                check(doc, line_no)
            yield doc


def _first_char(f) -> str:
    pos = f.tell()
    while True:
        c = f.read(1)
        if not c or not c.isspace():
            f.seek(pos)
            return c


def _read_json_array(f, path: Path, check) -> Iterator[dict]:
    try:
        docs = json.load(f)
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON ({e.msg} at column {e.colno}).", file=str(path), line=e.lineno,
                         fix="give a JSON array of documents, or JSONL (one document per line).") from None
    for i, doc in enumerate(docs):
        if check is not None:
            try:
                check(doc)
            except InputError as e:
                e.message = f"(document #{i + 1} of the array) {e.message}"
                raise InputError(e.message, file=e.file, line=e.line, document=e.document, field=e.field,
                                 fix=e.fix) from None
        yield doc


def write_jsonl(docs: Iterable[dict], path: str | os.PathLike) -> int:
    """Write documents as JSONL (UTF-8, one per line, non-ASCII kept as is) atomically; return how many."""
    n = 0
    with atomic_write(path) as f:
        for doc in docs:
            f.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
            f.write("\n")
            n += 1
    return n
