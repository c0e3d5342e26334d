"""UMLS Metathesaurus loader: ``MRCONSO.RRF`` names, ``MRSTY.RRF`` semantic types, McCray's semantic groups,
``MRREL.RRF`` parent relations as the is_a hierarchy.

Streams the pipe-delimited RRF files (full MRCONSO has ~15M rows), so memory grows with what is kept, not with
the file. Semantic types are stored as TUIs (``T047``) plus, when a SemGroups file is given, the group codes
(``DISO``): both are usable in candidate filters.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Iterable

from ..errors import ConfigError, InputError
from .core import ABBREVIATION, EXACT, PREFERRED, TerminologyBuilder

# MRCONSO.RRF columns (UMLS Reference Manual, 3.3.4).
MRCONSO_COLUMNS = ("CUI", "LAT", "TS", "LUI", "STT", "SUI", "ISPREF", "AUI", "SAUI", "SCUI", "SDUI", "SAB", "TTY",
                   "CODE", "STR", "SRL", "SUPPRESS", "CVF")
MRSTY_COLUMNS = ("CUI", "TUI", "STN", "STY", "ATUI", "CVF")
MRREL_COLUMNS = ("CUI1", "AUI1", "STYPE1", "REL", "CUI2", "AUI2", "STYPE2", "RELA", "RUI", "SRUI", "SAB", "SL", "RG",
                 "DIR", "SUPPRESS", "CVF")
# REL is the relation of CUI2 to CUI1: PAR / RB make CUI2 the parent (broader), CHD / RN the child (narrower).
PARENT_RELS = {"PAR": True, "RB": True, "CHD": False, "RN": False}

# UMLS language codes (LAT) -> ISO 639-1.
LAT_TO_ISO = {
    "ARA": "ar", "BAQ": "eu", "CHI": "zh", "CZE": "cs", "DAN": "da", "DUT": "nl", "ENG": "en", "EST": "et",
    "FIN": "fi", "FRE": "fr", "GER": "de", "GRE": "el", "HEB": "he", "HUN": "hu", "ITA": "it", "JPN": "ja",
    "KOR": "ko", "LAV": "lv", "LIT": "lt", "NOR": "no", "POL": "pl", "POR": "pt", "RUS": "ru", "SCR": "hr",
    "SPA": "es", "SWE": "sv", "TUR": "tr", "UKR": "uk", "HRV": "hr", "PER": "fa", "SLO": "sk", "SLV": "sl",
}
ISO_TO_LAT = {iso: lat for lat, iso in LAT_TO_ISO.items() if lat != "HRV"}

# Term types that name an abbreviation / acronym in the common sources.
ABBREVIATION_TTYS = ("AB", "ACR", "AA", "AM", "QAB")


def _lat_codes(languages: Iterable[str] | None) -> set[str] | None:
    """Accept ISO (``es``) or UMLS (``SPA``) codes; ``None`` means every language."""
    if languages is None:
        return None
    out = set()
    for code in languages:
        c = str(code).strip()
        if c.upper() in LAT_TO_ISO:
            out.add(c.upper())
        elif c.lower() in ISO_TO_LAT:
            out.add(ISO_TO_LAT[c.lower()])
        else:
            raise ConfigError(f"unknown UMLS language {code!r}.", field="languages",
                              fix=f"use ISO codes ({', '.join(sorted(ISO_TO_LAT))}) or UMLS LAT codes.")
    return out


def _rrf_rows(path: Path, columns: tuple[str, ...], what: str):
    """(line number, fields) of a pipe-delimited RRF file, checked for its column count."""
    if not path.is_file():
        raise InputError(f"{what} not found.", file=str(path), fix=f"give the path of {what} (META folder).")
    width = len(columns)
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.rstrip("\r\n").split("|")
            # Each RRF row ends with a '|', hence the empty last field.
            if len(fields) < width:
                raise InputError(f"row has {len(fields) - 1} '|'-separated fields, {what} has {width}.",
                                 file=str(path), line=lineno,
                                 fix=f"give the unmodified {what} (columns {'|'.join(columns)}).")
            yield lineno, fields


def read_semantic_groups(path: str | os.PathLike) -> dict[str, tuple[str, str]]:
    """TUI -> (group code, group name) from McCray's ``SemGroups.txt`` (``GROUP|Group Name|TUI|Type``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("semantic groups file not found.", file=str(path),
                         fix="give SemGroups.txt (lines GROUP|Group Name|TUI|Type) or leave semantic_groups_file out.")
    out: dict[str, tuple[str, str]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\r\n").split("|")
            if len(parts) != 4 or not parts[2].startswith("T"):
                raise InputError("expected GROUP|Group Name|TUI|Type.", file=str(path), line=lineno,
                                 fix="use McCray's SemGroups.txt format, one semantic type per line.")
            out[parts[2]] = (parts[0], parts[1])
    return out


def load_umls(
    builder: TerminologyBuilder,
    mrconso: str | os.PathLike,
    *,
    mrsty: str | os.PathLike | None = None,
    semantic_groups_file: str | os.PathLike | None = None,
    languages: Iterable[str] | None = ("en",),
    sources: Iterable[str] | None = None,
    semantic_groups: Iterable[str] | None = None,
    semantic_types: Iterable[str] | None = None,
    drop_suppress: Iterable[str] = ("O", "E", "Y"),
    preferred_language: str = "en",
    mrrel: str | os.PathLike | None = None,
    hierarchy_rels: Iterable[str] = ("PAR",),
) -> dict:
    """Add UMLS concepts and names to ``builder``; returns counts.

    Filters: ``languages`` (ISO or LAT codes; ``None`` = all), ``sources`` (SAB values), ``semantic_groups``
    (needs ``mrsty`` and ``semantic_groups_file``), ``semantic_types`` (TUIs, needs ``mrsty``), and rows whose
    SUPPRESS flag is in ``drop_suppress`` (obsolete / editor-suppressed; give ``[]`` to keep them).
    A concept's preferred name is its first ``TS=P, STT=PF, ISPREF=Y`` row in ``preferred_language``; such rows
    (the preferred string of each language) get name type ``preferred``, abbreviation term types
    ``abbreviation``, the rest ``exact``.
    ``mrrel``: MRREL.RRF; its ``hierarchy_rels`` rows (PAR, CHD, RB, RN; default PAR: the sources' own
    hierarchies) between two loaded concepts become is_a edges, from the ``sources`` only when that is given.
    """
    mrconso = Path(mrconso)
    lats = _lat_codes(languages)
    sabs = None if sources is None else {str(s) for s in sources}
    suppress = {str(s).upper() for s in drop_suppress}
    pref_lat = ISO_TO_LAT.get(preferred_language.lower(), preferred_language.upper())
    if (semantic_groups or semantic_types) and mrsty is None:
        raise ConfigError("filtering by semantic group or type needs MRSTY.RRF.", field="mrsty",
                          fix="set `mrsty:` to the MRSTY.RRF file beside MRCONSO.RRF.")
    if semantic_groups and semantic_groups_file is None:
        raise ConfigError("filtering by semantic group needs the semantic groups file.", field="semantic_groups_file",
                          fix="set `semantic_groups_file:` to McCray's SemGroups.txt.")
    rels = {str(r).upper() for r in hierarchy_rels}
    if rels - set(PARENT_RELS):
        raise ConfigError(f"unknown hierarchy relation(s) {sorted(rels - set(PARENT_RELS))}.", field="hierarchy_rels",
                          fix=f"choose from {sorted(PARENT_RELS)} (MRREL REL values).")
    groups = read_semantic_groups(semantic_groups_file) if semantic_groups_file else {}
    if semantic_groups:
        known = {g for g, _ in groups.values()}
        unknown = sorted(set(semantic_groups) - known)
        if unknown:
            raise ConfigError(f"unknown semantic group(s) {unknown}.", field="semantic_groups",
                              fix=f"choose from {sorted(known)}.")

    # Semantic types first, so that the (much larger) MRCONSO pass can skip filtered-out concepts.
    types: dict[str, set[str]] = {}
    if mrsty is not None:
        for _, f in _rrf_rows(Path(mrsty), MRSTY_COLUMNS, "MRSTY.RRF"):
            tags = types.setdefault(f[0], set())
            tags.add(f[1])
            if f[1] in groups:
                tags.add(groups[f[1]][0])
    allowed: set[str] | None = None
    if semantic_groups or semantic_types:
        wanted = set(semantic_groups or ()) | set(semantic_types or ())
        allowed = {cui for cui, tags in types.items() if tags & wanted}

    counts: Counter = Counter()
    preferred: dict[str, str] = {}
    seen: set[str] = set()
    for _, f in _rrf_rows(mrconso, MRCONSO_COLUMNS, "MRCONSO.RRF"):
        cui, lat, ts, stt, ispref, sab, tty, text, supp = f[0], f[1], f[2], f[4], f[6], f[11], f[12], f[14], f[16]
        if lats is not None and lat not in lats:
            counts["skipped_language"] += 1
            continue
        if sabs is not None and sab not in sabs:
            counts["skipped_source"] += 1
            continue
        if supp in suppress:
            counts["skipped_suppressed"] += 1
            continue
        if allowed is not None and cui not in allowed:
            counts["skipped_semantic_type"] += 1
            continue
        is_pref = ts == "P" and stt == "PF" and ispref == "Y"
        if is_pref and lat == pref_lat:
            preferred.setdefault(cui, text)
        if cui not in seen:
            seen.add(cui)
            builder.add_concept(cui, None, sorted(types.get(cui, ())), source="UMLS")
        ntype = PREFERRED if is_pref else ABBREVIATION if tty in ABBREVIATION_TTYS else EXACT
        builder.add_name(cui, text, LAT_TO_ISO.get(lat, lat.lower()), ntype, f"UMLS:{sab}")
        counts["names"] += 1
    for cui, text in preferred.items():
        builder.add_concept(cui, text)
    # Concepts with no preferred-language PF row take their first kept name (the builder's rule).
    counts["concepts"] = len(seen)
    if mrrel is not None:
        edges: set[tuple[str, str]] = set()  # PAR and its inverse CHD row name the same edge
        for _, f in _rrf_rows(Path(mrrel), MRREL_COLUMNS, "MRREL.RRF"):
            cui1, rel, cui2, sab, supp = f[0], f[3], f[4], f[10], f[14]
            if rel not in rels or (sabs is not None and sab not in sabs) or supp in suppress:
                continue
            if cui1 not in seen or cui2 not in seen:
                counts["is_a_outside"] += 1  # a relation to a concept the filters left out
                continue
            edges.add((cui1, cui2) if PARENT_RELS[rel] else (cui2, cui1))
        for child, parent in sorted(edges):
            builder.add_is_a(child, parent)
        counts["is_a"] = len(edges)
    stats = dict(counts)
    builder.add_source({"type": "umls", "path": str(mrconso), "mrsty": str(mrsty) if mrsty else None,
                        "mrrel": str(mrrel) if mrrel else None, **stats})
    return stats
