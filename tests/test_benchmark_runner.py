"""The benchmark runner and `xnorm benchmark`: the shipped smoke config end to end (TF-IDF, no model), resume,
config errors, report helpers."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import SHARED_DATA
from xnorm.benchmark.config import load_config
from xnorm.benchmark.datasets import ExtraNames
from xnorm.benchmark.report import order_languages
from xnorm.benchmark.runner import build_linker, run_benchmark, with_extra_names
from xnorm.errors import ConfigError, InputError

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "benchmarks" / "configs" / "smoke.yaml"
needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data folder {SHARED_DATA} is absent")


def _hpo_terminology(path: Path) -> Path:
    """The English HPO (labels + exact synonyms of current terms, is_a edges, hp.obo aliases) saved as a folder."""
    from xnorm.benchmark.hpo_obo import default_hp_obo, read_hpo_ids
    from xnorm.terminology import TerminologyBuilder

    ids = read_hpo_ids()
    b = TerminologyBuilder()
    term: dict = {}

    def flush():
        if term.get("id") in ids.current:
            b.add_concept(term["id"], term["name"], source="hp.obo")
            b.add_name(term["id"], term["name"], "en", "preferred", "hp.obo")
            for s in term.get("syn", []):
                b.add_name(term["id"], s, "en", "exact", "hp.obo")
            for parent in term.get("is_a", []):
                b.add_is_a(term["id"], parent)

    for line in open(default_hp_obo(), encoding="utf-8"):
        if line.startswith("["):
            flush()
            term = {}
        elif line.startswith("id: "):
            term["id"] = line[4:].strip()
        elif line.startswith("name: "):
            term["name"] = line[6:].strip()
        elif line.startswith("is_a: "):
            term.setdefault("is_a", []).append(line.split()[1])
        elif line.startswith("synonym: ") and " EXACT" in line:
            term.setdefault("syn", []).append(line.split('"')[1])
    flush()
    for old, new in ids.aliases.items():
        b.add_alias(old, new)
    b.build(name="hpo-en-test", db_name="HPO").save(path)
    return path


@pytest.fixture(scope="module")
def hpo_folder(tmp_path_factory) -> Path:
    return _hpo_terminology(tmp_path_factory.mktemp("term") / "hpo-en")


def _smoke_config(tmp_path: Path, hpo_folder: Path, languages=("es", "ja", "nna")) -> Path:
    """The shipped smoke config, pointed at the test's terminology folder and a few languages (for speed)."""
    raw = yaml.safe_load(SMOKE.read_text())
    for d in raw["datasets"]:
        d["options"]["languages"] = list(languages)
    for p in raw["pipelines"]:
        p["linker"]["terminology"] = str(hpo_folder)
    raw["data_root"] = str(SHARED_DATA)
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@needs_data
def test_smoke_runs_end_to_end_and_resumes(tmp_path, hpo_folder):
    cfg = _smoke_config(tmp_path, hpo_folder)
    out = tmp_path / "results"
    lines: list[str] = []
    run_benchmark(cfg, out, show_progress=False, echo=lines.append)
    res = json.loads((out / "results.json").read_text())
    assert set(res["runs"]) == {"hpo-labels/tfidf", "hpo-labels-in-language/tfidf"}
    assert res["machine"]["cores_usable"] >= 1 and res["machine"]["python"].startswith("3.")
    assert res["git"]["commit"] and res["config"]["name"] == "smoke"
    assert res["updated"] == max(r["finished"] for r in res["runs"].values()) >= res["started"]
    en = res["runs"]["hpo-labels/tfidf"]
    assert en["n_mentions"] == 150 and set(en["per_language"]) == {"es", "ja", "nna"}
    m = en["metrics"]
    assert 0 <= m["accuracy@1"] <= m["recall@5"] <= m["recall@10"] <= m["recall@64"] <= 1
    assert m["accuracy@1"] == pytest.approx(np.mean([v["accuracy@1"] for v in en["per_language"].values()]))
    # The terminology has is_a edges, so answers one level off the gold also count in lenient@1.
    assert m["accuracy@1"] < m["lenient@1"] <= 1
    assert m["lenient@1"] == pytest.approx(np.mean([v["lenient@1"] for v in en["per_language"].values()]))
    # Character n-grams match Spanish/French labels far better than Japanese ones against English names.
    assert en["per_language"]["es"]["recall@64"] > en["per_language"]["ja"]["recall@64"] + 0.3
    # Per-mention first-hit ranks per language (for paired tests): their means are the table's figures.
    es_ranks = np.asarray(en["gold_ranks"]["es"])
    assert len(es_ranks) == 50 and np.mean(es_ranks == 1) == pytest.approx(en["per_language"]["es"]["accuracy@1"])
    t = en["timing"]
    assert t["index_build_s"] > 0 and t["mentions_per_s"] > 0 and t["peak_rss_mb"] > 50
    held = res["runs"]["hpo-labels-in-language/tfidf"]
    extra = res["datasets"]["hpo-labels-in-language"]["index_terminology"][str(hpo_folder)]
    assert extra["extra_names_added"] > 1000 and held["terminology"]["names"] == extra["names"]
    assert "es" in held["terminology"]["languages"]
    # In-language names of other concepts must not hurt much and Japanese gains from Japanese names.
    assert held["per_language"]["ja"]["recall@64"] >= en["per_language"]["ja"]["recall@64"]

    md = (out / "results.md").read_text()
    assert "## hpo-labels" in md and "| language | n | tfidf acc@1 | tfidf lenient@1 | tfidf R@1 |" in md
    rows = [ln.split(" | ")[0].strip("| ") for ln in md.split("## hpo-labels-in-language")[0].splitlines()
            if re.match(r"^\| (es|ja|nna|\*\*all)", ln)]
    assert rows == ["es", "ja", "nna", "**all**"]  # high- to low-resource
    assert f"{en['per_language']['es']['accuracy@1']:.3f}" in md
    pngs = sorted(p.name for p in out.glob("*.png"))
    try:
        import matplotlib  # noqa: F401
        assert pngs == ["hpo-labels-acc1.png", "hpo-labels-in-language-acc1.png",
                        "hpo-labels-in-language-recall-at-k.png", "hpo-labels-recall-at-k.png"]
    except ImportError:
        assert not pngs and any("plots skipped" in ln for ln in lines)

    # Resume: nothing reruns; the factory would fail if it were called.
    def boom(*_):
        raise AssertionError("a finished run was rerun")

    lines.clear()
    run_benchmark(cfg, out, resume=True, factory=boom, show_progress=False, echo=lines.append)
    assert any("already done" in ln for ln in lines)
    assert json.loads((out / "results.json").read_text())["runs"]["hpo-labels/tfidf"]["finished"] == en["finished"]

    # A changed pipeline reruns only its runs; a run already done stays as it was.
    raw = yaml.safe_load(cfg.read_text())
    raw["pipelines"].append({"name": "tfidf-same", "linker": {**raw["pipelines"][0]["linker"], "candidates": {
        "generators": [{"type": "sparse"}], "routing": "same"}}})
    raw["baseline"] = "tfidf"
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    calls = []

    def counting(term, linker_cfg):
        calls.append(linker_cfg["candidates"]["routing"])
        return build_linker(term, linker_cfg)

    run_benchmark(cfg, out, resume=True, factory=counting, show_progress=False, echo=lines.append)
    res2 = json.loads((out / "results.json").read_text())
    assert calls == ["same", "same"] and res2["runs"]["hpo-labels/tfidf"]["finished"] == en["finished"]
    # With no Spanish names at all, "same" still falls back to English: as good as "fallback".
    assert res2["runs"]["hpo-labels/tfidf-same"]["per_language"]["es"] == en["per_language"]["es"]
    # Held-out split + only Spanish names: the gold concept of a query never has a Spanish name (it is on the
    # other side of the split), so nothing can be found; with the English fallback most are.
    same = res2["runs"]["hpo-labels-in-language/tfidf-same"]["per_language"]["es"]
    assert same["recall@64"] == 0.0 and held["per_language"]["es"]["recall@64"] > 0.5
    # The report tests each pipeline against the baseline, paired: identical rankings give delta 0 and p = 1;
    # losing every Spanish hit is significant, and every lost mention is counted.
    md = (out / "results.md").read_text()
    plain, held_part = md.split("## hpo-labels-in-language")
    assert "Paired against `tfidf`" in plain
    assert "| tfidf-same | es | 50 | +0.0000 | 1.000 | 0 / 0 | +0.0000 | 1.000 |" in plain
    lost = round(held["per_language"]["es"]["accuracy@1"] * 50)
    row = next(ln for ln in held_part.splitlines() if ln.startswith("| tfidf-same | es |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[3]) == pytest.approx(-lost / 50) and cells[4] == "< 0.001" and cells[5] == f"0 / {lost}"

    # Without --resume an existing results folder is not overwritten.
    with pytest.raises(ConfigError, match="--resume"):
        run_benchmark(cfg, out, factory=boom, show_progress=False)


def test_with_extra_names_adds_to_existing_concepts(hpo_folder):
    from xnorm.terminology import Terminology

    term = Terminology.load(hpo_folder)
    extra = ExtraNames(*(np.array(x, dtype=object) for x in (
        ["HP:0001250", "HP:9999999"], ["Krampfanfall", "nothing"], ["de", "de"], ["test", "test"])))
    out, unknown = with_extra_names(term, extra)
    assert unknown == 1 and out.n_names == term.n_names + 1 and term.n_names == len(term.name_texts)
    assert out.name_texts[-1] == "Krampfanfall" and out.concept_ids[out.name_concepts[-1]] == "HP:0001250"
    assert out.name_langs[-1] == "de" and len(out) == len(term)


def _write(tmp_path, raw) -> Path:
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(raw) if isinstance(raw, dict) else raw)
    return path


GOOD = {"datasets": [{"name": "d", "dataset": "hpo-labels"}],
        "pipelines": [{"name": "p", "linker": {"candidates": {"generators": [{"type": "sparse"}]}}}]}


@pytest.mark.parametrize("change, field, message", [
    ({"datasets": [{"name": "d", "dataset": "hpo-lables"}]}, "datasets[0].dataset", "unknown dataset"),
    ({"pipelines": [{"name": "p", "linker": {"topk": 3}}]}, "pipelines[0].linker.topk", "unknown key"),
    ({"pipelines": [{"name": "p"}, {"name": "p"}]}, "pipelines[1].name", "duplicate name"),
    ({"ks": [0, 5]}, "ks", "integers >= 1"),
    ({"pipelines": [{"name": "p", "linker": {"candidates": {"generators": [{"type": "sparse", "ngram": [2, 3]}]}}}]},
     "pipelines[0].linker.candidates.generators[0].ngram", "unknown key"),
    ({"pipelines": [{"name": "p", "linker": {"candidates": {"routing": "sometimes"}}}]},
     "pipelines[0].linker.candidates.routing", "routing"),
    ({"datset": []}, "datset", "unknown key"),
    ({"pipelines": []}, "pipelines", "non-empty list"),
    ({"baseline": "q"}, "baseline", "not one of the pipelines"),
])
def test_config_errors_name_file_and_key(tmp_path, change, field, message):
    path = _write(tmp_path, {**GOOD, **change})
    with pytest.raises(ConfigError, match=message) as e:
        load_config(path)
    assert e.value.file == str(path) and e.value.field == field


def test_config_yaml_syntax_error_names_line(tmp_path):
    path = _write(tmp_path, "name: x\ndatasets: [\n  - a: b\n")
    with pytest.raises(ConfigError, match="not valid YAML") as e:
        load_config(path)
    assert e.value.line is not None and e.value.file == str(path)


def test_missing_data_and_bad_options_point_at_config(tmp_path):
    raw = {**GOOD, "data_root": str(tmp_path / "nowhere")}
    path = _write(tmp_path, raw)
    with pytest.raises(InputError, match="nowhere/hpo-translations: data folder for dataset 'hpo-labels' not") as e:
        run_benchmark(path, tmp_path / "out", show_progress=False)
    assert e.value.file == str(path) and e.value.field == "datasets[0]"
    assert not (tmp_path / "out").exists()  # no half-made results folder to block the next attempt
    raw = {**GOOD, "data_root": str(SHARED_DATA),
           "datasets": [{"name": "d", "dataset": "hpo-labels", "options": {"max_per_lang": 3}}]}
    path = _write(tmp_path, raw)
    with pytest.raises(ConfigError, match="max_per_lang") as e:
        run_benchmark(path, tmp_path / "out2", show_progress=False)
    assert e.value.file == str(path) and e.value.field == "datasets[0].max_per_lang"


@needs_data
def test_dataset_without_terminology_is_a_config_error(tmp_path):
    raw = {**GOOD, "data_root": str(SHARED_DATA), "datasets": [{"name": "n", "dataset": "ncbi-disease"}]}
    path = _write(tmp_path, raw)
    with pytest.raises(ConfigError, match="no terminology") as e:
        run_benchmark(path, tmp_path / "out", show_progress=False)
    assert e.value.field == "datasets[0].terminology"


def test_shipped_configs_load():
    names = sorted(p.name for p in (REPO / "benchmarks" / "configs").glob("*.yaml"))
    assert names == ["bf16-e5.yaml", "bf16-query.yaml", "bf16.yaml", "gsc-plus.yaml", "hpo-labels.yaml",
                     "mantra-hpo.yaml", "openvino.yaml", "query-encoder.yaml", "smoke.yaml", "xl-bel-hpo.yaml"]
    for name in names:
        cfg = load_config(REPO / "benchmarks" / "configs" / name)
        assert cfg.pipelines and cfg.datasets
    hpo = load_config(REPO / "benchmarks" / "configs" / "hpo-labels.yaml")
    assert {p.linker["candidates"]["routing"] for p in hpo.pipelines} == {"fallback", "same"}
    query = load_config(REPO / "benchmarks" / "configs" / "query-encoder.yaml")
    assert [p.linker.get("query_model") for p in query.pipelines] == [None] + ["hpo-align-e5small-4l-query"] * 2
    assert (REPO / "adapters_zoo" / "hpo-align-e5small-4l-query" / "manifest.json").is_file()
    bf16 = load_config(REPO / "benchmarks" / "configs" / "bf16.yaml")
    assert bf16.pipelines[1].linker["candidates"]["generators"][1]["precision"] == "bf16"


def test_language_order():
    assert order_languages({"dtp", "ja", "en", "xx", "nna", "es"}) == ["en", "es", "ja", "xx", "nna", "dtp"]


def test_cli_benchmark_errors_exit_3(tmp_path):
    from click.testing import CliRunner

    from xnorm.cli.main import cli

    path = _write(tmp_path, {**GOOD, "datasets": [{"name": "d", "dataset": "nope"}]})
    result = CliRunner().invoke(cli, ["benchmark", str(path)])
    assert isinstance(result.exception, ConfigError) and "datasets[0].dataset" in str(result.exception)
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "xnorm.cli.main", "benchmark", str(path)], capture_output=True,
                          text=True)
    assert proc.returncode == 3 and "unknown dataset 'nope'" in proc.stderr and "Traceback" not in proc.stderr


@needs_data
def test_fusion_pipeline_with_a_dense_encoder(tmp_path, hpo_folder, tiny_model_dir):
    """tfidf vs fusion (TF-IDF + a tiny BERT encoder) over a reduced HPO: the dense path runs through the runner."""
    from xnorm.benchmark.datasets import build_dataset
    from xnorm.terminology import Terminology

    opts = {"languages": ["es", "de"], "max_per_language": 20}
    gold = {e["normalized"][0]["db_id"] for d in build_dataset("hpo-labels", opts, SHARED_DATA).documents
            for e in d["entities"]}
    term = Terminology.load(hpo_folder)
    keep = set(term.concept_ids[:600].tolist()) | gold  # every gold concept, plus distractors
    small = term.select_names(np.isin(term.concept_ids[term.name_concepts], list(keep)))
    small.save(tmp_path / "hpo-small")
    sparse = {"generators": [{"type": "sparse"}], "routing": "fallback"}
    fusion = {"generators": [{"type": "sparse"}, {"type": "dense", "model": str(tiny_model_dir)}],
              "routing": "fallback", "fusion": {"method": "rrf"}}
    raw = {"name": "fusion-test", "ks": [1, 10, 64], "data_root": str(SHARED_DATA),
           "datasets": [{"name": "labels", "dataset": "hpo-labels", "options": opts}],
           "pipelines": [{"name": n, "linker": {"terminology": str(tmp_path / "hpo-small"), "abbreviations": False,
                                                "candidates": c}} for n, c in (("tfidf", sparse), ("fusion", fusion))]}
    out = run_benchmark(_write(tmp_path, raw), tmp_path / "out", show_progress=False)
    res = json.loads((out / "results.json").read_text())
    tf, fu = res["runs"]["labels/tfidf"], res["runs"]["labels/fusion"]
    assert "dense" in fu["pipeline"] and "dense" not in tf["pipeline"]
    assert tf["terminology"]["names"] == fu["terminology"]["names"] == small.n_names
    assert set(fu["per_language"]) == {"es", "de"} and fu["n_mentions"] == 40
    assert fu["timing"]["index_build_s"] > tf["timing"]["index_build_s"]  # encoding names costs time
    assert set(fu["metrics"]) >= {"accuracy@1", "recall@1", "recall@10", "recall@64", "mrr", "strict"}
    md = (out / "results.md").read_text()
    assert "| language | n | tfidf acc@1 |" in md and "fusion R@64" in md


@needs_data
def test_cli_benchmark_end_to_end_with_the_real_linker(tmp_path, hpo_folder):
    """`xnorm benchmark` with the default pipeline factory (CandidateIndex + Linker.link)."""
    from click.testing import CliRunner

    from xnorm.cli.main import cli

    cfg = _smoke_config(tmp_path, hpo_folder, languages=("es", "tw"))
    result = CliRunner().invoke(cli, ["benchmark", str(cfg), "-o", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 0, result.output
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    es = res["runs"]["hpo-labels/tfidf"]["per_language"]["es"]
    assert es["n"] == 50 and es["recall@64"] > 0.5
    assert "results.md" in result.output


@needs_data
def test_same_index_names_reuse_the_built_pipeline(tmp_path, hpo_folder):
    """Two datasets over the same index names build each pipeline once; the second run says it reused it."""
    opts = {"languages": ["es"], "max_per_language": 10}
    raw = {"data_root": str(SHARED_DATA), "ks": [1, 64],
           "datasets": [{"name": "a", "dataset": "hpo-labels", "options": opts},
                        {"name": "b", "dataset": "hpo-labels", "options": {**opts, "seed": 1}},
                        {"name": "c", "dataset": "hpo-labels", "options": {**opts, "split": "held_out"}}],
           "pipelines": [{"name": "tfidf", "linker": {"terminology": str(hpo_folder), "abbreviations": False,
                                                       "candidates": {"generators": [{"type": "sparse"}]}}}]}
    built = []

    def factory(term, linker_cfg):
        built.append(term.n_names)
        return build_linker(term, linker_cfg)

    out = run_benchmark(_write(tmp_path, raw), tmp_path / "out", factory=factory, show_progress=False)
    res = json.loads((out / "results.json").read_text())
    base = _n_names(hpo_folder)
    assert built[0] == base and len(built) == 2 and built[1] > base  # a (built), b (reused), c (own names)
    assert res["runs"]["b/tfidf"]["timing"]["index_reused_from"] == "a/tfidf"
    assert res["runs"]["a/tfidf"]["timing"]["index_reused_from"] is None
    assert res["runs"]["c/tfidf"]["timing"]["index_reused_from"] is None
    assert "(reused from a/tfidf)" in (out / "results.md").read_text()


def _n_names(folder: Path) -> int:
    from xnorm.terminology import Terminology

    return Terminology.load(folder).n_names


def test_pipelines_share_name_embeddings(tiny_model_dir):
    """Two dense pipelines with the same encoder settings encode the index names once per process."""
    from xnorm import TerminologyBuilder
    from xnorm.benchmark import runner

    b = TerminologyBuilder()
    for i, name in enumerate(["seizure", "short stature", "microcephaly", "hypotonia"]):
        b.add_concept(f"X:{i}", name)
        b.add_name(f"X:{i}", name, "en", "preferred")
    term = b.build(name="tiny")
    runner._ENCODERS.clear()
    dense = {"type": "dense", "model": str(tiny_model_dir)}
    first = runner.build_linker(term, {"candidates": {"generators": [dense]}})
    (cache,) = runner._ENCODERS.values()
    calls = []
    real = cache.encoder.encode
    cache.encoder.encode = lambda texts, **kw: calls.append((len(texts), kw["kind"])) or real(texts, **kw)
    second = runner.build_linker(term, {"candidates": {"generators": [{"type": "sparse"}, dense]}})
    assert all(kind != "passage" for _, kind in calls)  # names came from the cache
    from xnorm.types import Mentions

    m = Mentions.from_texts(["microcephaly"])
    assert first.predict(m).concepts[0, 0] == second.index.generator_candidates(m, 1)["dense"].concepts[0, 0]
    assert calls == [(1, "query")]  # the query once: the second pipeline reused it
    runner._ENCODERS.clear()
