"""Custom terminologies from simple files: TSV/CSV (one name per row) or JSONL (one concept per line).

TSV / CSV header columns: ``concept_id, name`` and optionally ``lang, type, preferred_name, semantic_types,
parents`` (several types or parent ids joined by ``|``). JSONL objects: ``{"concept_id", "preferred_name", "names":
["..."] or [{"text", "lang", "type"}], "semantic_types": [...], "parents": [...]}``. ``parents`` are the concept's
is_a parents (``Terminology.is_a``: ICD-10 chapters, ATC levels, any hierarchy). A bad row raises ``InputError``
naming file, line and column.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from ..errors import InputError
from .babelon import normalize_lang, read_tsv_rows
from .core import EXACT, NAME_TYPES, PREFERRED, TerminologyBuilder

TABULAR_COLUMNS = ("concept_id", "name", "lang", "type", "preferred_name", "semantic_types", "parents")
DELIMITERS = {".tsv": "\t", ".tab": "\t", ".txt": "\t", ".csv": ","}


def _delimiter(path: Path, delimiter: str | None) -> str:
    if delimiter:
        return "\t" if delimiter in ("tab", "\\t") else delimiter
    suffix = path.suffix.lower()
    if suffix not in DELIMITERS:
        raise InputError(f"cannot tell the delimiter from the extension {suffix!r}.", file=str(path),
                         field="delimiter", fix="name the file .tsv or .csv, or set `delimiter:` in the recipe.")
    return DELIMITERS[suffix]


def _name_type(value: str, path: Path, line: int, field: str) -> str:
    if value not in NAME_TYPES:
        raise InputError(f"unknown name type {value!r}.", file=str(path), line=line, field=field,
                         fix=f"use one of {', '.join(NAME_TYPES)}.")
    return value


def load_table(
    builder: TerminologyBuilder,
    path: str | os.PathLike,
    *,
    delimiter: str | None = None,
    lang: str = "en",
    name_type: str = EXACT,
    source: str | None = None,
) -> dict:
    """Add the rows of a TSV/CSV file to ``builder``; ``lang`` / ``name_type`` fill missing or empty cells."""
    path = Path(path)
    sep = _delimiter(path, delimiter)
    src = source or path.name
    default_type = _name_type(name_type, path, 0, "name_type")
    counts: Counter = Counter()
    concepts: set[str] = set()
    rows = read_tsv_rows(path, ("concept_id", "name"), "terminology table", delimiter=sep, allowed=TABULAR_COLUMNS)
    for lineno, row in rows:
        cid, text = row.get("concept_id", ""), row.get("name", "")
        for col, value in (("concept_id", cid), ("name", text)):
            if not value:
                raise InputError(f"empty {col}.", file=str(path), line=lineno, field=col,
                                 fix=f"fill in {col} on every row (or delete the row).")
        ntype = _name_type(row["type"], path, lineno, "type") if row.get("type") else default_type
        types = [t.strip() for t in row.get("semantic_types", "").split("|") if t.strip()]
        builder.add_concept(cid, row.get("preferred_name") or None, types, source=src)
        concepts.add(cid)
        for parent in row.get("parents", "").split("|"):
            if parent.strip():
                builder.add_is_a(cid, parent.strip())
                counts["is_a"] += 1
        builder.add_name(cid, text, normalize_lang(row.get("lang") or lang), ntype, src)
        counts["names"] += 1
    counts["concepts"] = len(concepts)
    stats = dict(counts)
    builder.add_source({"type": "table", "path": str(path), **stats})
    return stats


def load_jsonl(
    builder: TerminologyBuilder,
    path: str | os.PathLike,
    *,
    lang: str = "en",
    name_type: str = EXACT,
    source: str | None = None,
) -> dict:
    """Add one concept per JSON line to ``builder``; the preferred name is also added as a ``preferred`` name."""
    path = Path(path)
    if not path.is_file():
        raise InputError("JSONL terminology not found.", file=str(path), fix="check the path in the recipe.")
    src = source or path.name
    default_type = _name_type(name_type, path, 0, "name_type")
    counts: Counter = Counter()

    def bad(lineno: int, field: str, what: str, fix: str) -> InputError:
        return InputError(what, file=str(path), line=lineno, field=field, fix=fix)

    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise bad(lineno, "(json)", f"not valid JSON ({e.msg} at column {e.colno}).",
                          "write one JSON object per line.") from None
            if not isinstance(obj, dict):
                raise bad(lineno, "(json)", "expected a JSON object.", 'write {"concept_id": ..., "names": [...]}.')
            cid = obj.get("concept_id")
            if not isinstance(cid, str) or not cid:
                raise bad(lineno, "concept_id", "missing or empty concept_id.", "give every concept a string id.")
            pref = obj.get("preferred_name")
            if pref is not None and not isinstance(pref, str):
                raise bad(lineno, "preferred_name", "preferred_name must be a string.", "give one name as a string.")
            names = obj.get("names", [])
            if not isinstance(names, list):
                raise bad(lineno, "names", "names must be a list.", 'write "names": ["a", "b"] or [{"text": "a"}].')
            stypes = obj.get("semantic_types", [])
            if isinstance(stypes, str) or not isinstance(stypes, list) or not all(isinstance(t, str) for t in stypes):
                raise bad(lineno, "semantic_types", "semantic_types must be a list of strings.",
                          'write "semantic_types": ["T047"].')
            parents = obj.get("parents", [])
            if isinstance(parents, str) or not isinstance(parents, list) or not all(
                    isinstance(p, str) and p for p in parents):
                raise bad(lineno, "parents", "parents must be a list of concept ids.", 'write "parents": ["C0012634"].')
            if not pref and not names:
                raise bad(lineno, "names", "a concept with no preferred_name and no names.",
                          "give at least one name.")
            unknown = sorted(set(obj) - {"concept_id", "preferred_name", "names", "semantic_types", "parents"})
            if unknown:
                raise bad(lineno, unknown[0], f"unknown field {unknown[0]!r}.",
                          "use concept_id, preferred_name, names, semantic_types, parents.")
            builder.add_concept(cid, pref or None, stypes, source=src)
            for parent in parents:
                builder.add_is_a(cid, parent)
                counts["is_a"] += 1
            if pref:
                builder.add_name(cid, pref, normalize_lang(lang), PREFERRED, src)
                counts["names"] += 1
            for i, name in enumerate(names):
                if isinstance(name, str):
                    text, nlang, ntype = name, lang, default_type
                elif isinstance(name, dict) and isinstance(name.get("text"), str):
                    text = name["text"]
                    nlang = name.get("lang") or lang
                    ntype = _name_type(name.get("type") or default_type, path, lineno, f"names[{i}].type")
                    if not isinstance(nlang, str):
                        raise bad(lineno, f"names[{i}].lang", "lang must be a string.", 'e.g. "lang": "es".')
                else:
                    raise bad(lineno, f"names[{i}]", "a name must be a string or an object with a text.",
                              'write "a" or {"text": "a", "lang": "en", "type": "exact"}.')
                builder.add_name(cid, text, normalize_lang(nlang), ntype, src)
                counts["names"] += 1
            counts["concepts"] += 1
    stats = dict(counts)
    builder.add_source({"type": "jsonl", "path": str(path), **stats})
    return stats
