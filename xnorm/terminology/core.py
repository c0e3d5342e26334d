"""The columnar ``Terminology``: concepts and their names as parallel arrays.

A terminology is data, nothing else (like scispaCy's ``KnowledgeBase``): a concept table and a name table.
It is saved as a versioned folder of Parquet files plus a JSON manifest with checksums, never as a pickle,
so that a terminology someone downloads cannot run code.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .._io import atomic_dir, read_folder_manifest, sha256_file
from ..errors import ArtifactError

FORMAT = "xnorm-terminology"
FORMAT_VERSION = 1

# Name types. Loaders map their source's vocabulary onto these.
PREFERRED = "preferred"
EXACT = "exact"  # exact synonym
RELATED = "related"
BROAD = "broad"
NARROW = "narrow"
LAYPERSON = "layperson"
ABBREVIATION = "abbreviation"
TRANSLATION = "translation"  # a preferred-name translation (e.g. HPO Babelon rdfs:label rows)
NAME_TYPES = (PREFERRED, EXACT, RELATED, BROAD, NARROW, LAYPERSON, ABBREVIATION, TRANSLATION)


@dataclass
class Terminology:
    """Concepts and names as parallel arrays.

    Concepts (length C): ``concept_ids`` (str), ``preferred_names`` (str), ``semantic_types`` (str, several
    joined by ``|``), ``concept_sources`` (str).
    Names (length N): ``name_texts`` (str), ``name_concepts`` (int32 index into the concepts), ``name_langs``
    (ISO 639 code), ``name_types`` (one of ``NAME_TYPES``), ``name_provenance`` (free text such as
    ``"hp.obo"`` or ``"hp-de.babelon.tsv:CANDIDATE"``; machine-translated names say so here).
    ``aliases`` maps retired ids (OBO ``alt_id``, ``replaced_by`` of obsolete terms) to current ids.
    ``is_a`` (``[E, 2]`` int32, rows of (child, parent) concept indexes) holds the hierarchy where the source has
    one (OBO ``is_a``); empty otherwise. Hierarchy-aware evaluation (``xnorm.eval.hierarchy``) reads it.
    """

    concept_ids: np.ndarray
    preferred_names: np.ndarray
    semantic_types: np.ndarray
    concept_sources: np.ndarray
    name_texts: np.ndarray
    name_concepts: np.ndarray
    name_langs: np.ndarray
    name_types: np.ndarray
    name_provenance: np.ndarray
    aliases: dict[str, str] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)  # name, sources, versions: whatever built it says
    is_a: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int32))

    def __post_init__(self) -> None:
        self._index: dict[str, int] | None = None

    # ---- sizes and lookups -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.concept_ids)

    @property
    def n_names(self) -> int:
        return len(self.name_texts)

    @property
    def languages(self) -> list[str]:
        return sorted(set(self.name_langs.tolist()))

    def concept_index(self, concept_id: str) -> int:
        """Row of a concept id (aliases resolved); ``KeyError`` if unknown."""
        if self._index is None:
            self._index = {cid: i for i, cid in enumerate(self.concept_ids.tolist())}
        cid = self.resolve(concept_id)
        return self._index[cid]

    def __contains__(self, concept_id: str) -> bool:
        try:
            self.concept_index(concept_id)
        except KeyError:
            return False
        return True

    def resolve(self, concept_id: str) -> str:
        """Current id for ``concept_id``: follows alias chains (alt_id / replaced_by) to the end."""
        seen = set()
        while concept_id in self.aliases and concept_id not in seen:
            seen.add(concept_id)
            concept_id = self.aliases[concept_id]
        return concept_id

    def names_of(self, concept_id: str, lang: str | None = None) -> list[str]:
        row = self.concept_index(concept_id)
        mask = self.name_concepts == row
        if lang is not None:
            mask &= self.name_langs == lang
        return self.name_texts[mask].tolist()

    def parents_of(self, concept_id: str) -> list[str]:
        """Direct is_a parents of a concept (empty when the terminology has no hierarchy)."""
        row = self.concept_index(concept_id)
        return self.concept_ids[self.is_a[self.is_a[:, 0] == row, 1]].tolist()

    def children_of(self, concept_id: str) -> list[str]:
        """Direct is_a children of a concept."""
        row = self.concept_index(concept_id)
        return self.concept_ids[self.is_a[self.is_a[:, 1] == row, 0]].tolist()

    def select_names(self, mask: np.ndarray) -> "Terminology":
        """Same concepts, only the names where ``mask`` is true (e.g. one language, or a held-out split)."""
        return Terminology(
            self.concept_ids, self.preferred_names, self.semantic_types, self.concept_sources,
            self.name_texts[mask], self.name_concepts[mask], self.name_langs[mask], self.name_types[mask],
            self.name_provenance[mask], dict(self.aliases), dict(self.metadata), self.is_a,
        )

    # ---- summaries ---------------------------------------------------------------------------------------
    def info(self) -> dict:
        """Counts that ``xnorm terminology info`` prints."""
        per_concept = np.bincount(self.name_concepts, minlength=len(self)) if len(self) else np.zeros(0, int)
        langs = Counter(self.name_langs.tolist())
        concepts_per_lang = {
            lang: int(len(np.unique(self.name_concepts[self.name_langs == lang]))) for lang in sorted(langs)
        }
        return {
            "concepts": len(self),
            "names": self.n_names,
            "aliases": len(self.aliases),
            "is_a_edges": int(len(self.is_a)),
            "names_per_language": dict(sorted(langs.items())),
            "concepts_per_language": concepts_per_lang,
            "names_per_type": dict(sorted(Counter(self.name_types.tolist()).items())),
            "names_per_provenance": dict(sorted(Counter(self.name_provenance.tolist()).items())),
            "names_per_concept": {
                "mean": float(per_concept.mean()) if len(per_concept) else 0.0,
                "median": float(np.median(per_concept)) if len(per_concept) else 0.0,
                "max": int(per_concept.max()) if len(per_concept) else 0,
                "concepts_without_names": int((per_concept == 0).sum()),
            },
            "metadata": self.metadata,
        }

    # ---- persistence -------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the terminology as a folder (atomically: a failed save leaves any old folder intact)."""
        path = Path(path)
        with atomic_dir(path) as tmp:
            concepts = pa.table({
                "concept_id": pa.array(self.concept_ids.tolist(), pa.string()),
                "preferred_name": pa.array(self.preferred_names.tolist(), pa.string()),
                "semantic_types": pa.array(self.semantic_types.tolist(), pa.string()),
                "source": pa.array(self.concept_sources.tolist(), pa.string()),
            })
            names = pa.table({
                "text": pa.array(self.name_texts.tolist(), pa.string()),
                "concept": pa.array(self.name_concepts, pa.int32()),
                "lang": pa.array(self.name_langs.tolist(), pa.string()),
                "type": pa.array(self.name_types.tolist(), pa.string()),
                "provenance": pa.array(self.name_provenance.tolist(), pa.string()),
            })
            is_a = pa.table({"child": pa.array(self.is_a[:, 0], pa.int32()),
                             "parent": pa.array(self.is_a[:, 1], pa.int32())})
            pq.write_table(concepts, tmp / "concepts.parquet")
            pq.write_table(names, tmp / "names.parquet")
            pq.write_table(is_a, tmp / "is_a.parquet")
            (tmp / "aliases.json").write_text(json.dumps(self.aliases, ensure_ascii=False, sort_keys=True))
            files = ["concepts.parquet", "names.parquet", "is_a.parquet", "aliases.json"]
            from .. import __version__

            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "xnorm_version": __version__,
                "concepts": len(self),
                "names": self.n_names,
                "languages": self.languages,
                "metadata": self.metadata,
                "sha256": {f: sha256_file(tmp / f) for f in files},
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, verify: bool = True) -> "Terminology":
        """Read a folder written by ``save``; checks format, version and (if ``verify``) checksums."""
        path = Path(path)
        manifest = read_manifest(path, FORMAT, FORMAT_VERSION)
        if verify:
            verify_checksums(path, manifest)
        concepts = pq.read_table(path / "concepts.parquet")
        names = pq.read_table(path / "names.parquet")
        aliases = json.loads((path / "aliases.json").read_text())
        is_a = np.zeros((0, 2), dtype=np.int32)  # folders saved before the hierarchy was kept have no is_a file
        if (path / "is_a.parquet").is_file():
            edges = pq.read_table(path / "is_a.parquet")
            is_a = np.stack([edges.column("child").to_numpy(), edges.column("parent").to_numpy()], axis=1)
            is_a = is_a.astype(np.int32).reshape(-1, 2)
            if len(is_a) and (is_a.min() < 0 or is_a.max() >= concepts.num_rows):
                raise ArtifactError("is_a.parquet points at concept rows that do not exist.",
                                    file=str(path / "is_a.parquet"), fix="rebuild the folder; do not edit its files.")
        col = lambda t, c: np.asarray(t.column(c).to_pylist(), dtype=object)  # noqa: E731
        return cls(
            concept_ids=col(concepts, "concept_id"),
            preferred_names=col(concepts, "preferred_name"),
            semantic_types=col(concepts, "semantic_types"),
            concept_sources=col(concepts, "source"),
            name_texts=col(names, "text"),
            name_concepts=names.column("concept").to_numpy().astype(np.int32),
            name_langs=col(names, "lang"),
            name_types=col(names, "type"),
            name_provenance=col(names, "provenance"),
            aliases=aliases,
            metadata=manifest.get("metadata", {}),
            is_a=is_a,
        )


def read_manifest(path: Path, fmt: str, version: int) -> dict:
    """The manifest of a saved xnorm folder, checked for its format and version."""
    return read_folder_manifest(path, fmt, version, what=f"a saved xnorm {fmt} folder",
                                fix=f"point at a {fmt} folder written by this version of xnorm, or rebuild it.")


def verify_checksums(path: Path, manifest: dict) -> None:
    for name, digest in manifest.get("sha256", {}).items():
        f = Path(path) / name
        if not f.is_file():
            raise ArtifactError(f"file {name} listed in the manifest is missing.", file=str(path),
                                fix="rebuild the folder; do not edit its files by hand.")
        if sha256_file(f) != digest:
            raise ArtifactError(f"checksum mismatch for {name}: the file was changed or is corrupt.",
                                file=str(f), fix="rebuild the folder; do not edit its files by hand.")


class TerminologyBuilder:
    """Collects concepts, names and aliases from one or more sources, then builds one ``Terminology``.

    Merging rules: a concept seen again keeps its first preferred name and source, and gains semantic
    types; exact duplicate names (same concept, text, language) are kept once (first wins). Names of ids
    that are aliases are moved to the current id; names of unknown ids are dropped and counted in
    ``dropped`` (reported by ``xnorm terminology build``), never silently.
    """

    def __init__(self) -> None:
        self._concepts: dict[str, list] = {}  # id -> [preferred, set(types), source]
        self._names: list[tuple[str, str, str, str, str]] = []
        self.aliases: dict[str, str] = {}
        self._is_a: list[tuple[str, str]] = []
        self.metadata: dict = {"sources": []}
        self.dropped: Counter = Counter()

    def add_concept(self, concept_id: str, preferred_name: str | None = None,
                    semantic_types: Iterable[str] = (), source: str = "") -> None:
        entry = self._concepts.get(concept_id)
        if entry is None:
            self._concepts[concept_id] = [preferred_name, set(semantic_types), source]
        else:
            if entry[0] is None and preferred_name:
                entry[0] = preferred_name
            entry[1].update(semantic_types)

    def add_name(self, concept_id: str, text: str, lang: str, name_type: str = EXACT,
                 provenance: str = "") -> None:
        text = text.strip()
        if text:
            self._names.append((concept_id, text, lang, name_type, provenance))

    def add_alias(self, old_id: str, new_id: str) -> None:
        if old_id != new_id:
            self.aliases.setdefault(old_id, new_id)

    def add_is_a(self, child_id: str, parent_id: str) -> None:
        """A hierarchy edge; resolved through aliases at build time. Edges touching unknown ids are dropped and
        counted in ``metadata["dropped_is_a_edges"]`` (a partial OBO file may name parents it does not define)."""
        self._is_a.append((child_id, parent_id))

    def add_source(self, description: Mapping) -> None:
        self.metadata["sources"].append(dict(description))

    def _resolve(self, cid: str) -> str:
        seen = set()
        while cid in self.aliases and cid not in seen and cid not in self._concepts:
            seen.add(cid)
            cid = self.aliases[cid]
        return cid

    def build(self, **metadata) -> Terminology:
        ids = list(self._concepts)
        row = {cid: i for i, cid in enumerate(ids)}
        seen: set[tuple[int, str, str]] = set()
        cols: tuple[list, ...] = ([], [], [], [], [])
        for cid, text, lang, ntype, prov in self._names:
            r = row.get(self._resolve(cid))
            if r is None:
                self.dropped[f"unknown concept id ({prov or 'no provenance'})"] += 1
                continue
            key = (r, text, lang)
            if key in seen:
                continue
            seen.add(key)
            for c, v in zip(cols, (text, r, lang, ntype, prov)):
                c.append(v)
        # A concept without a preferred name takes its first name (loaders normally give one).
        first_name: dict[int, str] = {}
        for text, r in zip(cols[0], cols[1]):
            first_name.setdefault(r, text)
        prefs = [self._concepts[c][0] or first_name.get(i, c) for i, c in enumerate(ids)]
        edges: dict[tuple[int, int], None] = {}  # ordered set: first-seen order, duplicates once
        dropped_edges = 0
        for child, parent in self._is_a:
            c, p = row.get(self._resolve(child)), row.get(self._resolve(parent))
            if c is None or p is None:
                dropped_edges += 1
            elif c != p:
                edges[(c, p)] = None
        obj = lambda xs: np.asarray(xs, dtype=object).reshape(len(xs))  # noqa: E731
        meta = dict(self.metadata)
        meta.update(metadata)
        if self.dropped:
            meta["dropped_names"] = dict(self.dropped)
        if dropped_edges:
            meta["dropped_is_a_edges"] = dropped_edges
        return Terminology(
            concept_ids=obj(ids),
            preferred_names=obj(prefs),
            semantic_types=obj(["|".join(sorted(self._concepts[c][1])) for c in ids]),
            concept_sources=obj([self._concepts[c][2] for c in ids]),
            name_texts=obj(cols[0]),
            name_concepts=np.asarray(cols[1], dtype=np.int32),
            name_langs=obj(cols[2]),
            name_types=obj(cols[3]),
            name_provenance=obj(cols[4]),
            aliases={k: self._resolve(v) for k, v in self.aliases.items() if k not in self._concepts},
            metadata=meta,
            is_a=np.asarray(list(edges), dtype=np.int32).reshape(-1, 2),
        )
