"""Translations: Babelon TSVs (``*.babelon.tsv``) and ROBOT synonym templates (``*.synonyms.tsv``).

Both add names to concepts that another source (the OBO file) defines; ids from older releases are mapped
through the builder's aliases, unknown ids are dropped and counted by the builder. Columns are read by name:
their order differs from file to file. Fields use CSV-style quoting (hp-it and hp-zh quote values that
contain quotes or commas), so the reader is ``csv`` with a tab delimiter, not a plain split.
"""
from __future__ import annotations

import csv
import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import InputError
from .core import EXACT, LAYPERSON, TRANSLATION, TerminologyBuilder

STATUSES = ("OFFICIAL", "CANDIDATE", "NOT_TRANSLATED")
LABEL_PREDICATES = ("rdfs:label",)
MISSING_VALUES = ("", "NA")


def normalize_lang(code: str) -> str:
    """ISO language code in the form names carry: lower case, region dropped (``es-ES`` / ``es_ES`` -> ``es``)."""
    return re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0]


def read_tsv_rows(path: str | os.PathLike, required: Iterable[str], what: str, delimiter: str = "\t",
                  allowed: Iterable[str] | None = None) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row as dict) for each data row, after checking that the header has the ``required``
    columns (and, if ``allowed`` is given, no others). Short rows lack the trailing keys."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found.", file=str(path), fix="check the path in the recipe.")
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise InputError(f"{what} is empty.", file=str(path), line=1, fix="give a file with a header row.")
        header = [h.strip() for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise InputError(f"{what} lacks column(s) {', '.join(missing)} (header: {', '.join(header)}).",
                             file=str(path), line=1, field=missing[0],
                             fix=f"give a file whose header names the columns {', '.join(required)}.")
        if allowed is not None:
            extra = [c for c in header if c not in allowed]
            if extra:
                raise InputError(f"unknown column {extra[0]!r}.", file=str(path), line=1, field=extra[0],
                                 fix=f"use the columns {', '.join(allowed)} (required: {', '.join(required)}).")
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) > len(header):
                raise InputError(f"row has {len(row)} fields, the header {len(header)}.", file=str(path),
                                 line=reader.line_num, fix=f"use one {delimiter!r} between fields; quote fields "
                                 "that contain it.")
            yield reader.line_num, dict(zip(header, (v.strip() for v in row)))


def _lang_from_filename(path: Path) -> str | None:
    """``hp-de.synonyms.tsv`` -> ``de``; ``hp-nl.babelon.2023-06-02.tsv`` -> ``nl`` (None if no such part)."""
    m = re.match(r"^[^-.]+-([A-Za-z]{2,3}(?:[-_][A-Za-z]{2,4})?)\.", path.name)
    return normalize_lang(m.group(1)) if m else None


def _check_statuses(statuses: Iterable[str], path: Path) -> set[str]:
    out = {s.upper() for s in statuses}
    bad = sorted(out - set(STATUSES))
    if bad:
        raise InputError(f"unknown translation status(es) {bad}.", file=str(path), field="statuses",
                         fix=f"choose from {list(STATUSES)}.")
    return out


def load_babelon(
    builder: TerminologyBuilder,
    path: str | os.PathLike,
    *,
    statuses: Iterable[str] = ("OFFICIAL", "CANDIDATE"),
    lang: str | None = None,
    name_type: str = TRANSLATION,
    create_concepts: bool = False,
) -> dict:
    """Add the translated labels (``rdfs:label`` rows) of a Babelon TSV to ``builder``; returns counts.

    Provenance is ``<file>:OFFICIAL`` for human translations and ``<file>:CANDIDATE (machine translated)``
    for the others. ``NOT_TRANSLATED`` rows and missing values (``NA``) are never names. ``lang`` overrides the
    ``translation_language`` column. ``create_concepts``: add unknown ids as concepts (for a Babelon file used
    without its ontology); by default they are left to the builder, which maps them through aliases or drops them.
    """
    path = Path(path)
    keep = _check_statuses(statuses, path)
    required = ("subject_id", "predicate_id", "translation_value", "translation_status")
    if lang is None:
        required += ("translation_language",)
    counts: Counter = Counter()
    for lineno, row in read_tsv_rows(path, required, "Babelon TSV"):
        if row["predicate_id"] not in LABEL_PREDICATES:
            counts["skipped_not_label"] += 1  # definitions (IAO:0000115) are not names
            continue
        status = row["translation_status"].upper()
        value = row["translation_value"]
        if status == "NOT_TRANSLATED" or value in MISSING_VALUES:
            counts["skipped_not_translated"] += 1
            continue
        if status not in STATUSES:
            raise InputError(f"unknown translation_status {row['translation_status']!r}.", file=str(path),
                             line=lineno, field="translation_status", fix=f"use one of {list(STATUSES)}.")
        if status not in keep:
            counts[f"skipped_{status.lower()}"] += 1
            continue
        cid = row["subject_id"]
        if not cid:
            raise InputError("empty subject_id.", file=str(path), line=lineno, field="subject_id",
                             fix="give the concept id (e.g. HP:0001250) of every row.")
        code = normalize_lang(lang or row["translation_language"])
        if not code:
            raise InputError("empty translation_language.", file=str(path), line=lineno,
                             field="translation_language", fix="fill it in, or set `lang:` in the recipe.")
        prov = f"{path.name}:{status}" + (" (machine translated)" if status == "CANDIDATE" else "")
        if create_concepts:
            builder.add_concept(cid, None, source=path.name)
        builder.add_name(cid, value, code, name_type, prov)
        counts[f"names_{status.lower()}"] += 1
    counts["names"] = sum(v for k, v in counts.items() if k.startswith("names_"))
    stats = dict(counts)
    builder.add_source({"type": "babelon", "path": str(path), **stats})
    return stats


def load_robot_synonyms(
    builder: TerminologyBuilder,
    path: str | os.PathLike,
    *,
    lang: str | None = None,
    split: str | None = None,
    statuses: Iterable[str] = ("OFFICIAL", "CANDIDATE"),
    create_concepts: bool = False,
) -> dict:
    """Add the synonyms of a ROBOT synonym template (``subject_id``, ``translation_value``, ...) to ``builder``.

    The template row (``subject_id == "ID"``) is skipped; it names the language (``...@de``) and the split
    character (``SPLIT=|``), which ``lang`` / ``split`` override. A ``synonym_type`` (or comment) saying
    ``layperson`` gives layperson names, anything else exact synonyms. Where the file has a status column
    (hp-fr: ``Status``), ``NOT_TRANSLATED`` rows (English text copied) are skipped and ``statuses`` filters.
    """
    path = Path(path)
    keep = _check_statuses(statuses, path)
    counts: Counter = Counter()
    language = normalize_lang(lang) if lang else None
    sep = split
    status_col = None
    for lineno, row in read_tsv_rows(path, ("subject_id", "translation_value"), "ROBOT synonym template"):
        if status_col is None:
            status_col = next((c for c in row if c.lower() in ("status", "translation_status")), "")
        cid = row["subject_id"]
        value = row["translation_value"]
        if cid == "ID":  # the template row: "AL oboInOwl:hasExactSynonym@de SPLIT=|"
            m = re.search(r"@([A-Za-z_-]+)", value)
            if language is None and m:
                language = normalize_lang(m.group(1))
            m = re.search(r"SPLIT=(\S+)", value)
            if sep is None and m:
                sep = m.group(1)
            continue
        if language is None:
            language = _lang_from_filename(path)
            if language is None:
                raise InputError("cannot tell the language of this synonym template.", file=str(path),
                                 line=lineno, field="lang", fix="set `lang:` for this source in the recipe.")
        if not cid:
            raise InputError("empty subject_id.", file=str(path), line=lineno, field="subject_id",
                             fix="give the concept id (e.g. HP:0001250) of every row.")
        status = row.get(status_col, "").upper() if status_col else ""
        if status == "NOT_TRANSLATED":
            counts["skipped_not_translated"] += 1
            continue
        if status and status not in keep:
            counts[f"skipped_{status.lower()}"] += 1
            continue
        kind = " ".join(v for k, v in row.items() if k.lower() in ("synonym_type", "comment", "type")).lower()
        ntype = LAYPERSON if "layperson" in kind else EXACT
        prov = path.name + (f":{status}" if status else "")
        if create_concepts:
            builder.add_concept(cid, None, source=path.name)
        for text in (value.split(sep) if sep else [value]):
            if text.strip() in MISSING_VALUES:
                counts["skipped_empty"] += 1
                continue
            builder.add_name(cid, text, language, ntype, prov)
            counts["names"] += 1
            counts[f"names_{ntype}"] += 1
    stats = dict(counts)
    builder.add_source({"type": "robot_synonyms", "path": str(path), "lang": language, "split": sep, **stats})
    return stats
