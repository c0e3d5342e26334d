"""The README's quick start and CI run the same commands, so what the README promises is what CI proves."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    blocks, inside, cur = [], False, []
    for line in text.splitlines():
        if line.strip() == "```bash":
            inside, cur = True, []
        elif line.strip() == "```" and inside:
            inside = False
            blocks.append("\n".join(cur).strip())
        elif inside:
            cur.append(line)
    return blocks


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1]
    test_command = _bash_blocks(quick)[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci.splitlines(), "the README's test command and .ci/run differ"


def test_quick_start_input_exists():
    readme = (ROOT / "README.md").read_text()
    first = _bash_blocks(readme.split("## Quick start", 1)[1])[0]
    assert "xnorm link examples/clinical_notes.bigbio.jsonl" in first
    assert (ROOT / "examples" / "clinical_notes.bigbio.jsonl").is_file()


def test_readme_linker_config_lists_every_key_with_its_default():
    import dataclasses

    import yaml

    from xnorm.linker import LinkerConfig

    readme = (ROOT / "README.md").read_text()
    block = readme.split("A linker config (YAML", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    listed = yaml.safe_load(block)
    fields = {f.name: f.default for f in dataclasses.fields(LinkerConfig)}
    assert set(listed) == set(fields) - {"index"}  # `index: DIR` is the alternative to terminology, in a comment
    for key, value in listed.items():
        if key not in ("candidates", "terminology"):  # candidates: the HPO default, spelled out
            assert value == fields[key], key
