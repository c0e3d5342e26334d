"""The adapter zoo: manifests with checksums, lookups by kind / language / base model, user adapters shadowing
shipped ones, and `xnorm adapters list`. Adapter folders here are written by hand (no training): fast."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from xnorm import zoo
from xnorm.errors import ArtifactError, ConfigError
from xnorm.models.registry import weights_fingerprint


def _adapter(root: Path, name: str, *, kind: str = "language-adapter", language: str | None = "es",
             base: str = "multilingual-e5-small", sha: str = "a" * 64, payload: bytes = b"weights") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "adapter.safetensors").write_bytes(payload)
    (folder / "adapter_config.json").write_text("{}", encoding="utf-8")
    fields = dict(kind=kind, name=name, base_model=base, base_model_sha256=sha, adapter_params=1000)
    if language is not None:
        fields["language"] = language
    zoo.write_manifest(folder, **fields)
    return folder


@pytest.fixture
def package_zoo(tmp_path, monkeypatch):
    """A stand-in for the shipped zoo folder (the real one's content changes as adapters are trained)."""
    root = tmp_path / "shipped"
    root.mkdir()
    monkeypatch.setattr(zoo, "package_zoo_dir", lambda: root)
    return root


def test_manifest_records_checksums_and_reads_back(tmp_path):
    folder = _adapter(tmp_path, "lang-es-x")
    m = zoo.read_manifest(folder)
    assert m["format"] == zoo.FORMAT and m["format_version"] == zoo.FORMAT_VERSION
    assert set(m["files"]) == {"adapter.safetensors", "adapter_config.json"}
    assert m["files"]["adapter.safetensors"]["size"] == len(b"weights")
    assert m["xnorm_version"] and m["created"].endswith("Z")


@pytest.mark.parametrize("tamper, message", [
    (lambda f: (f / "adapter.safetensors").write_bytes(b"weightz"), "checksum mismatch for adapter.safetensors"),
    (lambda f: (f / "adapter.safetensors").unlink(), "adapter.safetensors listed in the manifest is missing"),
    (lambda f: (f / "manifest.json").write_text("{not json", encoding="utf-8"), "not valid JSON"),
    (lambda f: (f / "manifest.json").unlink(), "no manifest.json"),
])
def test_tampering_is_caught_with_the_file_named(tmp_path, tamper, message):
    folder = _adapter(tmp_path, "lang-es-x")
    tamper(folder)
    with pytest.raises(ArtifactError, match=message) as e:
        zoo.read_manifest(folder)
    assert str(folder) in str(e.value) and "Fix:" in str(e.value)


def test_manifest_requires_its_fields(tmp_path):
    folder = tmp_path / "a"
    folder.mkdir()
    with pytest.raises(ArtifactError, match="lacks language"):
        zoo.write_manifest(folder, kind="language-adapter", name="a", base_model="m", base_model_sha256="x")
    with pytest.raises(ArtifactError, match="unknown adapter kind"):
        zoo.write_manifest(folder, kind="lora", name="a", base_model="m", base_model_sha256="x")
    with pytest.raises(ConfigError, match="written by write_manifest"):
        zoo.write_manifest(folder, kind="task-adapter", name="a", base_model="m", base_model_sha256="x", files={})
    m = json.loads(zoo.write_manifest(folder, kind="task-adapter", name="a", base_model="m",
                                      base_model_sha256="x").read_text())
    assert m["kind"] == "task-adapter" and m["files"] == {}


def test_find_adapter_by_kind_language_and_base(package_zoo):
    user = zoo.user_zoo_dir()
    _adapter(package_zoo, "lang-es-e5small", language="es")
    _adapter(package_zoo, "lang-ja-e5small", language="ja")
    _adapter(package_zoo, "lang-es-other", language="es", base="/models/other")
    _adapter(package_zoo, "rank-en", kind="task-adapter", language=None)
    _adapter(user, "enc-sapbert", kind="encoder-adapter", language=None)

    assert zoo.find_adapter("language-adapter", language="ja").name == "lang-ja-e5small"
    # Registry aliases name the same base model; the language compares case-insensitively.
    assert zoo.find_adapter("language-adapter", language="ES", base_model="e5-small").name == "lang-es-e5small"
    assert zoo.find_adapter("language-adapter", language="es", base_model="/models/other").name == "lang-es-other"
    assert zoo.find_adapter("language-adapter", language="zh") is None
    assert zoo.find_adapter("task-adapter").name == "rank-en"
    assert [i.name for i in zoo.list_adapters("encoder-adapter")] == ["enc-sapbert"]
    assert {i.origin for i in zoo.list_adapters()} == {"user", "package"}
    with pytest.raises(ConfigError, match="unknown adapter kind"):
        zoo.list_adapters("lora")


def test_user_adapter_shadows_shipped_one_and_resolve(package_zoo, tmp_path):
    shipped = _adapter(package_zoo, "lang-es-e5small", payload=b"old")
    mine = _adapter(zoo.user_zoo_dir(), "lang-es-e5small", payload=b"new")
    infos = zoo.list_adapters()
    assert len(infos) == 1 and infos[0].origin == "user" and infos[0].path == mine
    assert zoo.find_adapter("language-adapter", language="es").path == mine
    assert zoo.resolve("lang-es-e5small") == mine.resolve()
    assert zoo.resolve(shipped) == shipped.resolve()  # a folder path is taken as it is
    assert zoo.adapter_info(shipped).origin == "package"
    elsewhere = _adapter(tmp_path / "x", "lang-fr-mine", language="fr")
    assert zoo.adapter_info(str(elsewhere)).origin == "path"
    with pytest.raises(ArtifactError, match="no adapter named 'lang-xx'") as e:
        zoo.resolve("lang-xx")
    assert "lang-es-e5small" in str(e.value)  # the fix lists the known names


def test_broken_folder_is_skipped_in_listing_but_named_on_load(package_zoo, caplog):
    good = _adapter(package_zoo, "lang-es-e5small")
    bad = _adapter(package_zoo, "lang-ja-e5small", language="ja")
    (bad / "adapter.safetensors").write_bytes(b"corrupt")
    assert {i.name for i in zoo.list_adapters()} == {"lang-es-e5small", "lang-ja-e5small"}  # no hashing by default
    assert [i.name for i in zoo.list_adapters(verify=True)] == ["lang-es-e5small"]
    assert "checksum mismatch" in caplog.text
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        zoo.adapter_info("lang-ja-e5small")
    assert zoo.adapter_info("lang-es-e5small").path == good.resolve()


def test_model_sha256_and_base_model_check(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"base weights")
    sha = zoo.model_sha256(model)
    assert sha == zoo.sha256_file(model / "model.safetensors")
    # A materialized embedded model's recorded checksum is used when the size matches (no re-hash of 470 MB).
    (model / "xnorm_model.json").write_text(json.dumps(
        {"files": {"model.safetensors": {"sha256": "r" * 64, "size": len(b"base weights")}}}))
    assert zoo.model_sha256(model) == "r" * 64
    (model / "xnorm_model.json").write_text(json.dumps(
        {"files": {"model.safetensors": {"sha256": "r" * 64, "size": 1}}}))
    assert zoo.model_sha256(model) == sha
    folder = _adapter(tmp_path, "lang-es-x", sha=sha)
    zoo.check_base_model(zoo.adapter_info(folder), model)
    other = _adapter(tmp_path, "lang-es-y", sha="b" * 64)
    with pytest.raises(ArtifactError, match="was trained on base model 'multilingual-e5-small'"):
        zoo.check_base_model(zoo.adapter_info(other), model)
    with pytest.raises(ArtifactError, match="no model weights"):
        zoo.model_sha256(tmp_path / "lang-es-x")


def test_cli_adapters_list_and_show(package_zoo):
    from click.testing import CliRunner

    from xnorm.cli.main import cli

    runner = CliRunner()
    empty = runner.invoke(cli, ["adapters", "list"])
    assert empty.exit_code == 0 and "no adapters" in empty.output
    _adapter(package_zoo, "lang-ja-e5small", language="ja")
    _adapter(zoo.user_zoo_dir(), "rank-en", kind="task-adapter", language=None)
    res = runner.invoke(cli, ["adapters", "list"])
    assert res.exit_code == 0
    lines = res.output.strip().splitlines()
    assert lines[0].split()[:3] == ["NAME", "KIND", "LANG"]
    assert any(ln.split()[:3] == ["lang-ja-e5small", "language-adapter", "ja"] and ln.endswith("package")
               for ln in lines)
    only = runner.invoke(cli, ["adapters", "list", "--kind", "task-adapter", "--json"])
    assert [r["name"] for r in json.loads(only.output)] == ["rank-en"]
    shown = runner.invoke(cli, ["adapters", "show", "lang-ja-e5small"])
    assert shown.exit_code == 0 and '"language": "ja"' in shown.output


def test_shipped_zoo_manifests_are_valid():
    """Every adapter folder committed under adapters_zoo/ has a manifest whose checksums hold."""
    root = zoo.package_zoo_dir()
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))]
    for folder in folders:
        m = zoo.read_manifest(folder)
        assert m["name"] == folder.name
        if m["kind"] == "language-adapter":
            assert "HPO" in m["license"] and m["metrics"]["heldout_mlm_loss_after"] < \
                m["metrics"]["heldout_mlm_loss_before"]
        if m["kind"] == "distilled-encoder" and m.get("role") == "query":
            # a query encoder searches names its teacher encoded: pinned to the teacher shipped beside it
            settings = json.loads((folder / "xnorm_encoder.json").read_text())
            assert settings["index_model"] == m["teacher"] and (root / m["teacher"]).is_dir()
            assert settings["index_fingerprint"] == weights_fingerprint(m["teacher"])
        if m["kind"] == "reranker" and m.get("generators"):
            # a feature reranker loads only if this version computes the features it was trained on
            from xnorm.rerank.feature_ranker import features_match

            assert features_match(json.loads((zoo.reranker_folder(folder) / "manifest.json").read_text())), folder.name


def test_every_shipped_zoo_file_is_package_data():
    """A wheel carries only the package-data patterns: a zoo file outside them (the reranker's parquet tables were)
    would be missing from a non-editable install."""
    import tomllib

    root = zoo.package_zoo_dir()
    if not (root.parent / "pyproject.toml").is_file():
        pytest.skip("not an editable install: the zoo folder is not beside pyproject.toml")
    pyproject = tomllib.loads((root.parent / "pyproject.toml").read_text())
    suffixes = tuple(p.rsplit("*", 1)[-1] for p in pyproject["tool"]["setuptools"]["package-data"]["xnorm.adapters_zoo"])
    files = [p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".py"]
    assert files and [str(p.relative_to(root)) for p in files if not p.name.endswith(suffixes)] == []
