"""Every result table in the README and docs/ is generated from a results file committed under
benchmarks/results/ (benchmarks/doc_tables.py), so a doc cannot drift from the run it reports."""

from __future__ import annotations

import json

import pytest

from benchmarks.doc_tables import (
    REGION,
    ROOT,
    Spec,
    doc_paths,
    markdown_tables,
    problems,
    regenerate,
    typed_tables,
)

# Measured tables whose runs were never kept (issue 14's investigations, an older recipe, easy-VQA's 25-minute
# run, the phantom's Figure 2 before the phantom changes):
# the list may only shrink. Each is marked in its doc with ``<!-- typed table: no results file: WHY -->``.
NO_RESULTS_FILE = {
    "docs/avmnist.md": 5,
    "docs/easy-vqa.md": 3,
    "docs/fastmri.md": 2,
    "docs/notes/authors-code-recipes.md": 1,
}


def regions() -> list[tuple[str, Spec]]:
    return [
        (str(path.relative_to(ROOT)), Spec.parse(m.group("spec")))
        for path in doc_paths()
        for m in REGION.finditer(path.read_text())
    ]


def test_every_doc_table_agrees_with_its_results_file():
    found = problems()
    assert not found, "\n".join(found)


def test_measured_tables_without_a_results_file_do_not_grow():
    counts: dict[str, int] = {}
    for path in doc_paths():
        for _, marker in typed_tables(path.read_text()):
            if marker and marker.startswith("no results file"):
                name = str(path.relative_to(ROOT))
                counts[name] = counts.get(name, 0) + 1
    for name, count in counts.items():
        assert count <= NO_RESULTS_FILE.get(name, 0), f"{name}: a new measured table without a results file"


@pytest.mark.parametrize(("doc", "spec"), regions(), ids=lambda v: v if isinstance(v, str) else v.file)
def test_each_results_file_says_which_command_made_it(doc, spec):
    """A README.md beside the file names it (with the command), or a benchmark script of the same stem
    (listed in benchmarks/README.md) wrote it."""
    path = ROOT / spec.file
    assert path.is_relative_to(ROOT / "benchmarks" / "results"), f"{doc}: {spec.file} is not committed there"
    assert path.stat().st_size < 2_000_000
    readme = path.parent / "README.md"
    script = ROOT / "benchmarks" / f"{path.stem.removesuffix('_gpu')}.py"
    if readme.is_file() and path.name in readme.read_text():
        assert "i2m2 " in readme.read_text() or "python " in readme.read_text()
    else:
        assert script.is_file(), f"{spec.file}: no README.md beside it names it, and no {script.name}"
        assert f"benchmarks/{script.name}" in (ROOT / "benchmarks" / "README.md").read_text()


def test_a_doc_that_disagrees_is_caught(tmp_path):
    (tmp_path / "docs").mkdir()
    results = tmp_path / "benchmarks" / "results" / "r.json"
    results.parent.mkdir(parents=True)
    row = {"mean": 0.5, "std": 0.01, "per_seed": [0.49, 0.51]}
    results.write_text(json.dumps({"rows": [{"method": "i2m2", "group": "", "metrics": {"acc": row}}]}))
    table = "| method | acc |\n|---|---|\n| i2m2 | **50.00 ± 1.00** |\n"
    marker = "<!-- table: benchmarks/results/r.json -->\n"
    doc = tmp_path / "README.md"

    doc.write_text(f"Numbers:\n\n{marker}{table}<!-- /table -->\n")
    assert problems(tmp_path) == []

    doc.write_text(f"Numbers:\n\n{marker}{table.replace('50.00', '51.00')}<!-- /table -->\n")
    assert problems(tmp_path) == [
        "README.md:3: differs from benchmarks/results/r.json (run benchmarks/doc_tables.py --write)"
    ]
    assert regenerate(doc.read_text(), tmp_path) == f"Numbers:\n\n{marker}{table}<!-- /table -->\n"


def test_a_typed_table_must_be_generated_or_say_why(tmp_path):
    (tmp_path / "docs").mkdir()
    table = "| option | default |\n|---|---|\n| --crop | 320 |\n"
    (tmp_path / "docs" / "a.md").write_text(f"# A\n\n{table}")
    assert problems(tmp_path) == ["docs/a.md:3: a typed table: generate it, or mark why it is typed"]

    (tmp_path / "docs" / "a.md").write_text(f"# A\n\n<!-- typed table: not a result: options -->\n{table}")
    assert problems(tmp_path) == []
    assert [t for _, _, t in markdown_tables(table)] == [table]
