"""The README's Python examples run as written (lines that need a long build or files a user would bring are
left out and listed here): what the README shows is what the code does."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Lines a test cannot run quickly or has no file for: the embedded default builds a dense index over 41k names
# (minutes), and the dataset folder is the user's own.
SKIP_LINES = ("Linker.default()", "my_saved_dataset")


def _sections() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    parts = re.split(r"^## ", text, flags=re.M)
    return {p.split("\n", 1)[0]: p for p in parts[1:]}


def _python_blocks(section: str) -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    return ["\n".join(line for line in b.splitlines() if not any(s in line for s in SKIP_LINES)) for b in blocks]


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("heading", ["Linking", "Documents", "Candidate generation", "Evaluation"])
def test_readme_python_examples_run(heading, workdir, capsys):
    import warnings

    from xnorm.cli.main import main

    section = next(body for title, body in _sections().items() if title.startswith(heading))
    blocks = _python_blocks(section)
    assert blocks, f"no Python example under {heading!r}"
    if heading == "Linking":  # its spaCy example uses the TF-IDF index the README builds with `xnorm index`
        with pytest.raises(SystemExit) as e:
            main(["index", "--terminology", "hpo-en", "--config",
                  str(ROOT / "benchmarks/configs/candidates/sparse.yaml"), "-o", "hpo-sparse", "--no-progress"])
        assert e.value.code == 0
    for i, block in enumerate(blocks):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(block, f"README {heading} block {i}", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    # Spot-check what the README says these print.
    expected = {
        "Linking": ["['HP:0000252' 'HP:0004322']", "('ADHD', ('HP:0007018'"],
        "Documents": ["[{'db_name': 'HPO', 'db_id': 'HP:0001250', 'score': 0.92}]"],
        "Candidate generation": ["convulsiones HP:0001250", "microcefalia HP:0000252", "english-fallback"],
        "Evaluation": ["'accuracy@1': 0.333", "'mrr': 0.5", "'lenient@1': 0.666", "'finer': 1"],
    }[heading]
    for piece in expected:
        assert piece in out, (piece, out[-2000:])
