"""`xnorm terminology build|info|list` on the shipped HPO recipes: the printed counts equal the API's."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from tests.conftest import SHARED_DATA
from xnorm.cli.main import cli
from xnorm.terminology import Terminology, load_terminology


def _field(output: str, key: str) -> str:
    return next(line.split(": ", 1)[1] for line in output.splitlines() if line.startswith(key + ": "))


def _counts(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in (item.split("=") for item in text.split(", "))}


def _check_printed_counts(output: str, term: Terminology) -> None:
    info = term.info()
    assert int(_field(output, "concepts")) == info["concepts"] == len(term)
    assert int(_field(output, "names")) == info["names"] == term.n_names
    assert int(_field(output, "aliases")) == len(term.aliases)
    assert int(_field(output, "is_a edges").split()[0]) == len(term.is_a) == info["is_a_edges"]
    assert _counts(_field(output, "names per language")) == info["names_per_language"]
    assert _counts(_field(output, "concepts per language")) == info["concepts_per_language"]
    assert _counts(_field(output, "names per type")) == info["names_per_type"]
    dropped = term.metadata.get("dropped_names", {})
    assert int(_field(output, "dropped names")) == sum(dropped.values())


def test_build_and_info_hpo_en(tmp_path):
    runner = CliRunner()
    out = tmp_path / "hpo-en"
    result = runner.invoke(cli, ["terminology", "build", "hpo-en", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "[obo] hp.obo: concepts=" in result.output
    term = Terminology.load(out)
    assert len(term.is_a) > len(term)  # the HPO's is_a hierarchy is kept (a DAG: some terms have two parents)
    _check_printed_counts(result.output, term)
    assert term.info() == load_terminology("hpo-en").info() | {"metadata": term.info()["metadata"]}
    info = runner.invoke(cli, ["terminology", "info", str(out), "--json"])
    assert info.exit_code == 0 and json.loads(info.output)["concepts"] == len(term)
    text = runner.invoke(cli, ["terminology", "info", "hpo-en"])  # a recipe name: built into the cache
    assert text.exit_code == 0
    _check_printed_counts(text.output, term)


@pytest.mark.skipif(not (SHARED_DATA / "hpo-translations").is_dir(), reason=f"{SHARED_DATA} is absent")
def test_build_hpo_multilingual(tmp_path, monkeypatch):
    monkeypatch.delenv("XNORM_HPO_TRANSLATIONS", raising=False)
    monkeypatch.setenv("XNORM_DATA", str(SHARED_DATA))
    out = tmp_path / "hpo-ml"
    result = CliRunner().invoke(cli, ["terminology", "build", "hpo-multilingual", "-o", str(out)])
    assert result.exit_code == 0, result.output
    term = Terminology.load(out)
    _check_printed_counts(result.output, term)
    api = load_terminology("hpo-multilingual")
    assert api.info()["names_per_language"] == term.info()["names_per_language"]
    assert "[babelon] hp-es.babelon.tsv: names_official=19932, names=19932" in result.output
    assert "[robot_synonyms] hp-de.synonyms.tsv:" in result.output
    # Names of ids obsolete without replacement are reported, per file and status.
    assert "unknown concept id (hp-es.babelon.tsv:OFFICIAL)" in result.output
    assert {"en", "es", "fr", "de", "it", "ja", "zh", "nl"} <= set(term.languages)


def test_list():
    result = CliRunner().invoke(cli, ["terminology", "list"])
    assert result.exit_code == 0 and "hpo-en *" in result.output and "hpo-multilingual" in result.output
    rows = json.loads(CliRunner().invoke(cli, ["terminology", "list", "--json"]).output)
    assert [r["name"] for r in rows if r["default"]] == ["hpo-en"]


def test_user_errors_exit_3(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("XNORM_DATA", "XNORM_HPO_TRANSLATIONS")}
    run = lambda *a: subprocess.run([sys.executable, "-m", "xnorm.cli.main", *a], capture_output=True,  # noqa: E731
                                    text=True, env=env, cwd=tmp_path)
    (tmp_path / "keep.txt").write_text("not a terminology")
    r = run("terminology", "build", "hpo-en", "-o", str(tmp_path))
    assert r.returncode == 3 and "refusing to replace" in r.stderr and (tmp_path / "keep.txt").exists()
    r = run("terminology", "info", "hpo-multilingual")
    assert r.returncode == 3 and "neither environment variable XNORM_HPO_TRANSLATIONS nor XNORM_DATA is set" in r.stderr
    assert "Traceback" not in r.stderr
