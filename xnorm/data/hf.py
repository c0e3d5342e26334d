"""Hugging Face ``datasets`` side: read kb documents from a saved dataset or the hub, and build datasets from them.

``read_hf("folder")`` / ``read_hf("folder::test")`` reads a ``save_to_disk`` folder (a ``DatasetDict`` needs a
split); a name that is not a folder goes to ``datasets.load_dataset(name, "<name>_bigbio_kb")`` (needs the hub).
``documents_to_dataset`` / ``jsonl_to_dataset`` build a ``datasets.Dataset`` (so ``dataset.map(batched=True)``
users can call xnorm), ``dataset_to_jsonl`` writes one back. Arrow needs one schema for all rows, and infers it
from the first rows: so keys that only some documents or entities carry (``lang``, a prediction's ``score``)
are first collected over all documents and filled with null elsewhere; reading drops those nulls again.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import InputError
from .jsonl import read_jsonl, write_jsonl
from .schema import DOCUMENT_FIELDS, ENTITY_FIELDS, PASSAGE_FIELDS, RELATION_FIELDS
from .validate import DocumentValidator

SPLIT_SEP = "::"
_SCHEMA_KEYS = set(DOCUMENT_FIELDS) | set(ENTITY_FIELDS) | set(PASSAGE_FIELDS) | set(RELATION_FIELDS) | {
    "db_name", "db_id", "trigger", "arguments", "role", "ref_id", "entity_ids"}


def split_path(spec: str | os.PathLike, split: str | None = None) -> tuple[str, str | None]:
    """``"folder::test"`` -> ``("folder", "test")``; an explicit ``split`` wins."""
    text = str(spec)
    if SPLIT_SEP in text:
        text, _, given = text.rpartition(SPLIT_SEP)
        split = split or given
    return text, split


def is_hf_folder(path: str | os.PathLike) -> bool:
    p = Path(split_path(path)[0])
    return p.is_dir() and ((p / "dataset_info.json").is_file() or (p / "dataset_dict.json").is_file()
                           or (p / "state.json").is_file())


def load_hf(spec: str | os.PathLike, split: str | None = None, config: str | None = None):
    """The ``datasets.Dataset`` named by ``spec`` (a saved folder, ``folder::split`` or a hub name)."""
    import datasets

    path, split = split_path(spec, split)
    if Path(path).is_dir():
        try:
            ds = datasets.load_from_disk(path)
        except (FileNotFoundError, ValueError) as e:
            raise InputError(f"not a saved Hugging Face dataset ({e}).", file=path,
                             fix="give a folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."
                             ) from None
        if isinstance(ds, datasets.DatasetDict):
            if split is None and len(ds) == 1:
                split = next(iter(ds))
            if split not in ds:
                raise InputError(f"split {split!r} is not in this dataset." if split else
                                 "this dataset has several splits.", file=path, field="split",
                                 fix=f"choose one: {', '.join(f'{path}{SPLIT_SEP}{s}' for s in ds)}.")
            ds = ds[split]
        elif split is not None and split not in (ds.split or "", "train"):
            raise InputError(f"this folder holds one dataset (split {ds.split!r}), not a {split!r} split.",
                             file=path, field="split", fix="drop the split or give the right folder.")
        return ds
    config = config or f"{path.split('/')[-1]}_bigbio_kb"
    try:
        return datasets.load_dataset(path, config, split=split or "test")
    except Exception as e:  # offline, unknown name: the hub's own message says which
        raise InputError(f"could not load {path!r} ({config}, split {split or 'test'}) from the hub: {e}",
                         file=path, fix="check the name and the network, or give a saved dataset folder.") from None


def read_hf(spec: str | os.PathLike, split: str | None = None, config: str | None = None,
            validate: bool = True) -> Iterator[dict]:
    """Yield kb documents from a saved dataset folder (``folder::split``) or a hub dataset, row by row."""
    ds = load_hf(spec, split, config)
    check = DocumentValidator(str(spec)) if validate else None
    for i in range(len(ds)):
        doc = _drop_nulls(ds[i])
        if check is not None:
            check(doc, None)
        yield doc


def _drop_nulls(value: Any, top: bool = True) -> Any:
    """Remove the null values Arrow filled in for keys a row did not have (schema keys stay)."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v, False) for k, v in value.items() if v is not None or k in _SCHEMA_KEYS}
    if isinstance(value, list):
        return [_drop_nulls(v, False) for v in value]
    return value


def _collect_keys(value: Any, path: str, keys: dict[str, dict[str, None]]) -> None:
    if isinstance(value, dict):
        seen = keys.setdefault(path, {})
        for k, v in value.items():
            seen.setdefault(k, None)
            _collect_keys(v, f"{path}.{k}", keys)
    elif isinstance(value, list):
        for v in value:
            _collect_keys(v, path + "[]", keys)


def _fill_keys(value: Any, path: str, keys: dict[str, dict[str, None]]) -> Any:
    if isinstance(value, dict):
        return {k: _fill_keys(value.get(k), f"{path}.{k}", keys) for k in keys.get(path, value)}
    if isinstance(value, list):
        return [_fill_keys(v, path + "[]", keys) for v in value]
    return value


def _generate(path: str, keys: dict | None) -> Iterator[dict]:
    for doc in read_jsonl(path, validate=False):
        yield doc if keys is None else _fill_keys(doc, "", keys)


def _check_features(doc: dict, features, source: str | None) -> None:
    """With fixed features, a key they lack would make Arrow fail deep inside: say which key and document."""
    extra = sorted(set(doc) - set(features))
    if extra:
        raise InputError(f"key {extra[0]!r} is not among the given features.", file=source,
                         document=str(doc.get("id")), field=extra[0],
                         fix="pass features=None to infer them, or drop the key.")


def jsonl_to_dataset(path: str | os.PathLike, validate: bool = True, cache_dir: str | None = None,
                     features=None):
    """A ``datasets.Dataset`` of the documents of a BigBIO kb JSONL file (two streaming passes, Arrow-backed).

    ``features``: e.g. ``kb_features()`` for exactly BigBIO's column types; default: inferred from the documents.
    """
    import datasets

    keys: dict[str, dict[str, None]] = {}
    n = 0
    for doc in read_jsonl(path, validate=validate):
        n += 1
        if features is None:
            _collect_keys(doc, "", keys)
        else:
            _check_features(doc, features, str(path))
    if not n:
        raise InputError("the file holds no documents.", file=str(path), fix="give a non-empty JSONL file.")
    return datasets.Dataset.from_generator(_generate, features=features, cache_dir=cache_dir,
                                           gen_kwargs={"path": str(path), "keys": keys if features is None else None})


def documents_to_dataset(docs: Iterable[dict], features=None):
    """A ``datasets.Dataset`` of in-memory documents (for a file, :func:`jsonl_to_dataset` streams)."""
    import datasets

    docs = list(docs)
    if features is not None:
        for doc in docs:
            _check_features(doc, features, None)
        return datasets.Dataset.from_list(docs, features=features)
    keys: dict[str, dict[str, None]] = {}
    for doc in docs:
        _collect_keys(doc, "", keys)
    return datasets.Dataset.from_list([_fill_keys(d, "", keys) for d in docs])


def dataset_to_jsonl(dataset, path: str | os.PathLike) -> int:
    """Write a kb ``datasets.Dataset`` as BigBIO JSONL, atomically; return the number of documents."""
    return write_jsonl((_drop_nulls(dataset[i]) for i in range(len(dataset))), path)
