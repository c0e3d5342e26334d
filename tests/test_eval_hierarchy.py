"""Hierarchy-aware scoring (``lenient@1``) on a hand-made ontology, the real hp.obo, and ``xnorm evaluate``.

The toy hierarchy (child -> parent):

    X:1 root
    ├── X:2 organ abnormality          (alt_id X:20)
    │   ├── X:4 heart abnormality
    │   │   └── X:6 septal defect   (also is_a X:2)
    │   └── X:5 lung abnormality
    └── X:3 growth abnormality
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from xnorm.cli.main import main
from xnorm.eval.hierarchy import concept_rows, hierarchy_metrics, lineage
from xnorm.terminology.hierarchy import ancestor_matrix, subtree_mask
from xnorm.terminology.core import Terminology, TerminologyBuilder

EDGES = {"X:2": "X:1", "X:3": "X:1", "X:4": "X:2", "X:5": "X:2", "X:6": "X:4"}


@pytest.fixture(scope="module")
def term() -> Terminology:
    b = TerminologyBuilder()
    for cid in ["X:1", "X:2", "X:3", "X:4", "X:5", "X:6"]:
        b.add_concept(cid, f"name {cid}")
        b.add_name(cid, f"name {cid}", "en")
    b.add_alias("X:20", "X:2")
    for child, parent in EDGES.items():
        b.add_is_a(child, parent)
    b.add_is_a("X:6", "X:20")  # named through an alias: a second parent, X:2
    b.add_is_a("X:4", "X:2")  # duplicate: kept once
    b.add_is_a("X:5", "Y:404")  # unknown parent: dropped and counted
    return b.build()


def test_builder_resolves_dedupes_and_counts_edges(term, tmp_path):
    ids = term.concept_ids
    edges = {(ids[c], ids[p]) for c, p in term.is_a}
    assert edges == set(EDGES.items()) | {("X:6", "X:2")}
    assert len(term.is_a) == 6 and term.metadata["dropped_is_a_edges"] == 1
    assert sorted(term.parents_of("X:6")) == ["X:2", "X:4"]
    assert sorted(term.children_of("X:20")) == ["X:4", "X:5", "X:6"]
    assert term.info()["is_a_edges"] == 6
    # Saved and loaded unchanged; a folder saved before is_a was kept (no is_a.parquet) loads with no edges.
    back = Terminology.load(term.save(tmp_path / "t"))
    assert np.array_equal(back.is_a, term.is_a)
    (tmp_path / "t" / "is_a.parquet").unlink()
    assert len(Terminology.load(tmp_path / "t", verify=False).is_a) == 0
    # Name filtering keeps the hierarchy.
    assert np.array_equal(term.select_names(term.name_langs == "en").is_a, term.is_a)


def test_ancestor_matrix_levels(term):
    row = {c: i for i, c in enumerate(term.concept_ids)}

    def up(m, cid):
        return {term.concept_ids[j] for j in m[row[cid]].indices}

    assert up(ancestor_matrix(term, 1), "X:6") == {"X:4", "X:2"}
    assert up(ancestor_matrix(term, 2), "X:6") == {"X:4", "X:2", "X:1"}
    assert up(ancestor_matrix(term, None), "X:6") == {"X:4", "X:2", "X:1"}
    assert up(ancestor_matrix(term, None), "X:1") == set()
    for levels in (1, 2, None):  # walking up from some rows only gives those rows of the whole matrix
        some = np.array([5, 3, 0])
        assert (ancestor_matrix(term, levels, some).toarray() == ancestor_matrix(term, levels).toarray()[some]).all()
    under = subtree_mask(term, ["X:20", "X:3"])  # an alias names a root too
    assert sorted(term.concept_ids[under]) == ["X:2", "X:3", "X:4", "X:5", "X:6"]


def test_ancestor_matrix_stops_on_a_cycle():
    b = TerminologyBuilder()
    for cid in "ABCD":
        b.add_concept(cid, cid)
        b.add_name(cid, cid, "en")
    for child, parent in [("A", "B"), ("B", "C"), ("C", "A"), ("D", "A")]:  # A -> B -> C -> A
        b.add_is_a(child, parent)
    cyclic = b.build()
    reach = ancestor_matrix(cyclic, None).toarray()
    assert reach[3].tolist() == [True, True, True, False] and reach[:3, :3].all()
    assert subtree_mask(cyclic, ["B"]).tolist() == [True, True, True, True]


def test_lineage_exact_finer_coarser_and_what_never_counts(term):
    gold = [["X:4"], ["X:4"], ["X:4"], ["X:4"], ["X:4"], ["X:4"], ["X:2", "X:3"], ["Q:1"], ["X:4"]]
    top1 = ["X:4", "X:6", "X:2", "X:5", "X:1", None, "X:3", "Q:1", "X:404"]
    f = lineage(top1, gold, term)
    assert f["exact"].tolist() == [1, 0, 0, 0, 0, 0, 1, 1, 0]  # Q:1: equal ids count even outside the terminology
    assert f["finer"].tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 0]  # a child of the gold
    assert f["coarser"].tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0]  # the parent; X:1 (grandparent) is 2 levels up
    assert not f["lenient"][3]  # a sibling is never a near-miss
    assert f["gold_known"].tolist() == [1, 1, 1, 1, 1, 1, 1, 0, 1]
    two = lineage(top1, gold, term, max_levels=2)
    assert two["coarser"][4] and not two["coarser"][3]
    m = hierarchy_metrics(top1, gold, term)
    assert m == {"lenient@1": 5 / 9, "accuracy@1": 3 / 9, "finer": 1, "coarser": 1, "n_mentions": 9,
                 "n_gold_in_hierarchy": 8, "max_levels": 1}


def test_ids_through_aliases_and_without_prefix(term):
    # X:20 is X:2's alt_id; "4" is X:4 written without its prefix (BigBIO ids are compared without db_name:).
    assert concept_rows(["X:20", "4", "X:99", None], term).tolist() == [1, 3, -1, -1]
    f = lineage(["X:6", "X:2"], [["4"], ["X:20"]], term)
    assert f["finer"][0] and f["exact"][1]
    # Evaluation aliases apply before the terminology's.
    assert lineage(["OLD"], [["X:4"]], term, aliases={"OLD": "X:6"})["finer"][0]


def test_real_hpo_hierarchy_matches_the_obo_file():
    import re

    from xnorm.benchmark.hpo_obo import default_hp_obo
    from xnorm.terminology.recipe import load_terminology

    hpo = load_terminology("hpo-en", cache=False)
    # Every is_a line of a live [Term] stanza, read here with a regex instead of the loader.
    stanzas = re.split(r"\n(?=\[)", default_hp_obo().read_text(encoding="utf-8"))
    expected = {(re.search(r"^id: (\S+)", s, re.M).group(1), hpo.resolve(p))
                for s in stanzas if s.startswith("[Term]") and "\nis_obsolete: true" not in s
                for p in re.findall(r"^is_a: (\S+)", s, re.M)}
    ids = hpo.concept_ids
    assert {(ids[c], ids[p]) for c, p in hpo.is_a} == expected and len(expected) > len(hpo)
    # Atypical absence seizure is_a Absence seizure is_a ... Seizure; Phenotypic abnormality is far above.
    assert hpo.parents_of("HP:0007270") == ["HP:0002121"]
    f = lineage(["HP:0002121", "HP:0007270", "HP:0000118"], [["HP:0007270"], ["HP:0002121"], ["HP:0001250"]], hpo)
    assert (f["coarser"].tolist(), f["finer"].tolist()) == ([True, False, False], [False, True, False])
    assert lineage(["HP:0000118"], [["HP:0001250"]], hpo, max_levels=None)["coarser"][0]


def _ent(eid, ids):
    return {"id": eid, "type": "Phenotype", "text": ["x"], "offsets": [[0, 1]],
            "normalized": [{"db_name": "X", "db_id": i} for i in ids]}


def _doc(entities):
    return {"id": "d1", "document_id": "d1", "passages": [], "entities": entities}


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", *args])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_evaluate_cli_hierarchy(term, tmp_path, capsys):
    folder = str(term.save(tmp_path / "toy"))
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps(_doc([_ent("a", ["X:4"]), _ent("b", ["X:4"]), _ent("c", ["X:4"]),
                                     _ent("d", ["X:4"])])) + "\n")
    pred = tmp_path / "pred.jsonl"
    pred.write_text(json.dumps(_doc([_ent("a", ["X:4"]), _ent("b", ["X:6"]), _ent("c", ["X:20"]),
                                     _ent("d", ["X:1"])])) + "\n")
    code, out, err = run(capsys, str(pred), str(gold), "--hierarchy", folder, "--json")
    assert code == 0, err
    h = json.loads(out)["hierarchy"]
    assert (h["lenient@1"], h["finer"], h["coarser"], h["max_levels"]) == (0.75, 1, 1, 1)
    code, out, err = run(capsys, str(pred), str(gold), "--hierarchy", folder, "--is-a-levels", "0")
    assert code == 0 and "lenient@1 (any of these)" in out and "1.0000" in out.split("lenient@1 (any")[1]
    # Against a baseline that answers a sibling (never a near-miss) everywhere: lenient@1 is compared too.
    base = tmp_path / "base.jsonl"
    base.write_text(json.dumps(_doc([_ent(e, ["X:5"]) for e in "abcd"])) + "\n")
    code, out, err = run(capsys, str(pred), str(gold), "--hierarchy", folder, "--baseline", str(base), "--json")
    c = json.loads(out)["comparison"]["lenient@1"]
    assert (c["baseline"], c["run"], c["won"], c["lost"]) == (0.0, 0.75, 3, 0) and c["delta"] == 0.75
    # Per group: lenient@1 beside the exact figures (entities c, d carry lang "de").
    g = [json.loads(line) for line in gold.read_text().splitlines()]
    for e in g[0]["entities"][2:]:
        e["lang"] = "de"
    gold.write_text(json.dumps(g[0]) + "\n")
    code, out, err = run(capsys, str(pred), str(gold), "--hierarchy", folder, "--per", "lang", "--json")
    per = json.loads(out)["per"]["lang"]
    assert (per["de"]["accuracy@1"], per["de"]["lenient@1"], per[""]["lenient@1"]) == (0.0, 0.5, 1.0)
    code, out, err = run(capsys, str(pred), str(gold), "--hierarchy", folder, "--per", "lang", "--k", "1")
    assert "lenient@1" in out.split("per lang")[1]
    # A terminology without a hierarchy, or one that does not hold the gold ids: clear errors, exit 3.
    flat = TerminologyBuilder()
    flat.add_concept("X:4", "x")
    flat.add_name("X:4", "x", "en")
    flat_dir = str(flat.build().save(tmp_path / "flat"))
    code, _, err = run(capsys, str(pred), str(gold), "--hierarchy", flat_dir)
    assert code == 3 and "no is_a hierarchy" in err and "flat" in err
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps(_doc([_ent("a", ["Z:1"])])) + "\n")
    code, _, err = run(capsys, str(other), str(other), "--hierarchy", folder)
    assert code == 3 and "none of the gold ids" in err and "other.jsonl" in err
