"""Model registry (names, aliases, resolution, errors) and the `xnorm models` CLI."""
from __future__ import annotations

import json

import pytest

from xnorm.cli.main import main
from xnorm.errors import ArtifactError
from xnorm.models import registry


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(["models", *args])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_lookup_by_name_alias_and_hub_id():
    assert registry.lookup("default").name == "multilingual-e5-small"
    assert registry.lookup("e5-small").kind == "embedded"
    sap = registry.lookup("cambridgeltl/SapBERT-UMLS-2020AB-all-lang-from-XLMR")
    assert sap.name == "sapbert-xlmr" and sap.pooling == "cls" and sap.query_prefix == "" and sap.needs_hub
    assert registry.lookup("intfloat/multilingual-e5-large").query_prefix == "query: "
    assert registry.lookup("nothing-like-this") is None
    assert registry.list_models()[0].name == registry.DEFAULT_MODEL


def test_resolve_model_folder_hub_id_and_errors(tiny_model_dir, tmp_path):
    assert registry.resolve_model(tiny_model_dir) == str(tiny_model_dir.resolve())
    assert registry.resolve_model(str(tiny_model_dir)) == str(tiny_model_dir.resolve())
    assert registry.resolve_model("sapbert-xlmr") == "cambridgeltl/SapBERT-UMLS-2020AB-all-lang-from-XLMR"
    assert registry.resolve_model("some-org/some-model") == "some-org/some-model"  # left to from_pretrained
    for bad in [tmp_path / "missing", "./missing", "/abs/missing", "a/b/c"]:
        with pytest.raises(ArtifactError, match="not found"):
            registry.resolve_model(bad)


def test_prepare_unknown_and_hub_models_offline():
    with pytest.raises(ArtifactError, match="unknown model name"):
        registry.prepare_model("nothing-like-this")
    with pytest.raises(ArtifactError, match="unreachable") as info:
        registry.prepare_model("sapbert-en")
    assert "huggingface-cli download cambridgeltl/SapBERT-from-PubMedBERT-fulltext" in str(info.value)


def test_cli_list_before_and_after_prepare(capsys, embedded_model_dir, monkeypatch):
    code, out, _ = run(capsys, "list")
    assert code == 0
    first = out.splitlines()[1]
    assert first.startswith("multilingual-e5-small (default, e5-small)") and "not prepared" in first
    assert "sapbert-xlmr" in out and "needs the hub" in out
    monkeypatch.setenv("XNORM_HOME", str(embedded_model_dir.parent.parent))
    code, out, _ = run(capsys, "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["multilingual-e5-small"]["status"] == "prepared"
    assert rows["multilingual-e5-small"]["path"] == str(embedded_model_dir)
    assert 450e6 < rows["multilingual-e5-small"]["size"] < 520e6


def test_cli_prepare_reuses_and_verifies(capsys, embedded_model_dir, monkeypatch):
    monkeypatch.setenv("XNORM_HOME", str(embedded_model_dir.parent.parent))
    code, out, _ = run(capsys, "prepare")
    path, seconds = out.strip().split("\t")
    assert code == 0 and path == str(embedded_model_dir) and float(seconds.split()[0]) < 0.5
    code, out, _ = run(capsys, "prepare", "default", "--verify")
    assert code == 0 and out.strip().endswith("checksums ok")


def test_cli_prepare_errors_are_one_line_with_exit_code_3(capsys):
    code, out, err = run(capsys, "prepare", "nothing-like-this")
    assert code == 3 and err.startswith("xnorm: error: unknown model name") and "Traceback" not in err
    code, _, err = run(capsys, "prepare", "sapbert-xlmr")
    assert code == 3 and "unreachable" in err and "--local-dir" in err
