"""``xnorm evaluate`` on a handmade pair of BigBIO files whose every figure is computed by hand below."""
from __future__ import annotations

import json

import pytest

from xnorm.cli.main import main
from xnorm.eval.documents import align_documents, normalize_db_id


def ent(eid, offsets, ids, type_="Phenotype", db_name="HPO", scores=False):
    norm = [{"db_name": db_name, "db_id": i} | ({"score": 1.0 - 0.1 * r} if scores else {}) for r, i in enumerate(ids)]
    return {"id": eid, "type": type_, "text": ["x"] * len(offsets), "offsets": offsets, "normalized": norm}


def doc(did, lang, entities):
    return {"id": f"{did}-row", "document_id": did, "lang": lang, "passages": [], "entities": entities}


GOLD = [
    doc("d1", "en", [
        ent("e1", [[0, 7]], ["HP:0001250"], db_name="HP"),  # compared as "0001250" (prefix HP: stripped)
        ent("e2", [[12, 17], [22, 28]], ["HP:0004322", "HP:0000002"]),  # discontinuous, two gold ids
        ent("e3", [[30, 35]], []),  # NIL
    ]),
    doc("d2", "de", [
        ent("e4", [[0, 10]], ["HP:0000707"], type_="Disease"),
        ent("e5", [[20, 30]], ["HP:0001263"]),
    ]),
]

PRED = [
    doc("d1", "en", [
        ent("e1", [[0, 5]], ["0001250", "HP:0000001"], db_name="HP", scores=True),  # rank 1; span shorter
        ent("e2", [[12, 17], [22, 28]], ["HP:0000003", "HP:0000002"], scores=True),  # rank 2 (second gold id)
        ent("e3", [[30, 35]], ["HP:0000100"], scores=True),  # a prediction for a NIL entity
    ]),
    doc("d2", "de", [
        ent("e4", [[0, 10]], [], type_="Disease"),  # no prediction; e5 is missing altogether
        ent("e6", [[40, 45]], ["HP:0001263"], scores=True),  # e5's id, elsewhere in the document
    ]),
]


def write(path, docs):
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return str(path)


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", *args])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture
def files(tmp_path):
    return write(tmp_path / "pred.jsonl", PRED), write(tmp_path / "gold.jsonl", GOLD)


def test_json_keys_and_hand_computed_values(files, capsys):
    code, out, err = run(capsys, *files, "--json", "--k", "1,5,10,64", "--per", "lang")
    assert code == 0, err
    r = json.loads(out)
    # Mention level: e1 rank 1, e2 rank 2, e4 empty, e5 missing -> ranks [1, 2, 0, 0]; e3 is NIL.
    assert r["n_mentions"] == 4 and r["n_nil_gold"] == 1 and r["n_documents"] == 2
    assert r["accuracy@1"] == pytest.approx(0.25)
    assert [r[f"recall@{k}"] for k in (1, 5, 10, 64)] == pytest.approx([0.25, 0.5, 0.5, 0.5])
    assert "recall@2" not in r
    assert r["mrr"] == pytest.approx((1 + 0.5) / 4)
    assert r["per"]["lang"]["en"]["mrr"] == pytest.approx(0.75)
    assert r["per"]["lang"]["de"]["n_mentions"] == 2 and r["per"]["lang"]["de"]["recall@64"] == 0.0
    for mode in ("strict", "partial", "loose"):
        for avg in ("micro", "macro"):
            assert set(r[mode][avg]) == {"precision", "recall", "f1"}
    # Gold items: e1, e2, e4, e5. Predictions with an id: e1, e2, e3, e6.
    # strict: e1's span differs -> nothing matches.
    assert r["strict"]["micro"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    # partial: e1 overlaps with the right id. d1: P 1/3, R 1/2, F 0.4; d2: 0.
    assert r["partial"]["micro"]["precision"] == pytest.approx(0.25)
    assert r["partial"]["micro"]["recall"] == pytest.approx(0.25)
    assert r["partial"]["macro"]["precision"] == pytest.approx(1 / 6)
    assert r["partial"]["macro"]["recall"] == pytest.approx(0.25)
    assert r["partial"]["macro"]["f1"] == pytest.approx(0.2)
    # loose: d1 gold {0001250, HP:0004322} vs pred {0001250, HP:0000003, HP:0000100};
    #        d2 gold {HP:0000707, HP:0001263} vs pred {HP:0001263}.
    assert r["loose"]["micro"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})
    assert r["loose"]["macro"]["precision"] == pytest.approx((1 / 3 + 1) / 2)
    assert r["loose"]["macro"]["f1"] == pytest.approx((0.4 + 2 / 3) / 2)


def test_table_output_ci_and_output_file(files, capsys, tmp_path):
    out_file = tmp_path / "scores.json"
    code, out, err = run(capsys, *files, "--ci", "--resamples", "200", "--seed", "3", "-o", str(out_file))
    assert code == 0, err
    assert "accuracy@1" in out and "partial macro" in out and "95% CI" in out
    saved = json.loads(out_file.read_text())
    low, high = saved["ci"]["mrr"]
    assert low <= saved["mrr"] <= high
    code, _, _ = run(capsys, *files, "--ci", "--resamples", "200", "--seed", "3", "--json", "-o", str(out_file))
    assert json.loads(out_file.read_text())["ci"] == saved["ci"]  # same seed, same interval


def test_baseline_paired_test(files, capsys, tmp_path):
    # The baseline is the gold itself: it is perfect, so this run is worse by 0.75 at accuracy@1.
    code, out, err = run(capsys, *files, "--baseline", files[1], "--json", "--resamples", "200",
                         "--test", "randomization")
    assert code == 0, err
    comp = json.loads(out)["comparison"]
    assert comp["accuracy@1"]["baseline"] == 1.0
    assert comp["accuracy@1"]["delta"] == pytest.approx(-0.75)
    assert 0 < comp["accuracy@1"]["p_value"] <= 1
    assert comp["accuracy@1"]["method"] == "approximate-randomization"
    # Every mention the run got wrong was right in the (perfect) baseline: all lost, none won.
    assert comp["accuracy@1"]["won"] == 0 and comp["accuracy@1"]["lost"] == round(0.75 * comp["accuracy@1"]["n"])
    code, out, err = run(capsys, *files, "--baseline", files[1], "--resamples", "200")
    assert code == 0, err
    assert "won / lost" in out and f"0 / {comp['accuracy@1']['lost']}" in out


def test_mismatched_documents_are_input_errors(tmp_path, capsys):
    gold = write(tmp_path / "gold.jsonl", GOLD)
    extra = write(tmp_path / "extra.jsonl", PRED + [doc("d3", "en", [])])
    code, _, err = run(capsys, extra, gold, "--json")
    assert code == 3
    assert "extra.jsonl" in err and "'d3'" in err and "--allow-missing" in err
    missing = write(tmp_path / "missing.jsonl", PRED[:1])
    code, _, err = run(capsys, missing, gold, "--json")
    assert code == 3 and "gold.jsonl" in err and "'d2'" in err
    # With --allow-missing the absent document's mentions are misses; the extra one is ignored.
    code, out, err = run(capsys, missing, gold, "--json", "--allow-missing")
    assert code == 0, err
    r = json.loads(out)
    assert r["n_mentions"] == 4 and r["mrr"] == pytest.approx(0.375) and r["missing_documents"] == 1
    code, out, _ = run(capsys, extra, gold, "--json", "--allow-missing")
    assert json.loads(out)["ignored_documents"] == 1


def test_bad_input_lines_and_flags(tmp_path, capsys):
    gold = write(tmp_path / "gold.jsonl", GOLD)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(PRED[0]) + "\n{not json\n")
    code, _, err = run(capsys, str(bad), gold)
    assert code == 3 and "bad.jsonl" in err
    code, _, err = run(capsys, gold, gold, "--k", "1,x")
    assert code == 2
    broken = write(tmp_path / "broken.jsonl", [doc("d1", "en", [{"id": "e1", "offsets": [[0, 1]],
                                                                  "normalized": [{"db_name": "HPO"}]}])])
    code, _, err = run(capsys, broken, broken)
    assert code == 3 and "db_id" in err and "'d1'" in err


def test_db_prefix_rule():
    assert normalize_db_id("HP", "HP:0001250") == "0001250"
    assert normalize_db_id("HP", "0001250") == "0001250"
    assert normalize_db_id("HPO", "HP:0001250") == "HP:0001250"
    assert normalize_db_id("mesh", "MESH:D003920") == "D003920"
    assert normalize_db_id(None, "C0036572") == "C0036572"


def test_align_documents_rows_follow_gold():
    run_ = align_documents(PRED, GOLD)
    assert run_.entity_ids.tolist() == ["e1", "e2", "e4", "e5"]
    assert run_.predictions.shape == (4, 2)
    assert run_.predictions[3].tolist() == [None, None]
    assert run_.gold[1] == ("HP:0004322", "HP:0000002")
    assert run_.keys["type"].tolist() == ["Phenotype", "Phenotype", "Disease", "Phenotype"]


def test_aliases_fields_and_per_errors(tmp_path, capsys):
    gold = write(tmp_path / "gold.jsonl", [doc("d1", "en", [ent("e1", [[0, 3]], ["HP:0000001"])])])
    # Predictions kept beside the gold ids (`xnorm link --field pred`), using a retired id.
    both = doc("d1", "en", [ent("e1", [[0, 3]], ["HP:0000001"])])
    both["entities"][0]["pred"] = [{"db_name": "HPO", "db_id": "HP:0009999", "score": 0.8}]
    pred = write(tmp_path / "pred.jsonl", [both])
    code, out, err = run(capsys, pred, pred, "--pred-field", "pred", "--json")
    assert code == 0, err
    assert json.loads(out)["accuracy@1"] == 0.0
    aliases = tmp_path / "aliases.tsv"
    aliases.write_text("# old\tcurrent\nHP:0009999\tHP:0000001\n")
    code, out, err = run(capsys, pred, gold, "--pred-field", "pred", "--aliases", str(aliases), "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["accuracy@1"] == 1.0 and r["strict"]["micro"]["f1"] == 1.0
    aliases.write_text("HP:0009999 HP:0000001\n")
    code, _, err = run(capsys, pred, gold, "--aliases", str(aliases))
    assert code == 3 and "aliases.tsv:1" in err
    code, _, err = run(capsys, gold, gold, "--per", "provenance")
    assert code == 3 and "'provenance'" in err
    code, out, err = run(capsys, gold, gold, "--per", "type", "--json")
    assert json.loads(out)["per"]["type"]["Phenotype"]["n_mentions"] == 1


def test_aliases_from_a_saved_terminology(tmp_path):
    from xnorm.eval.documents import load_aliases
    from xnorm.terminology.core import TerminologyBuilder

    builder = TerminologyBuilder()
    builder.add_concept("HP:0000001", "All")
    builder.add_name("HP:0000001", "All", "en")
    builder.add_alias("HP:0009999", "HP:0000001")
    builder.build().save(tmp_path / "term")
    assert load_aliases(tmp_path / "term") == {"HP:0009999": "HP:0000001"}
