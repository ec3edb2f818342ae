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

# Measured tables whose runs were never kept (issue 14's investigations, an older recipe): the list may only
# shrink. Each is marked in its doc with ``<!-- typed table: no results file: WHY -->``.
NO_RESULTS_FILE = {
    "docs/avmnist.md": 4,
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
    """A README.md beside each file the table is made from names it (with the command), or a benchmark
    script of the same stem (listed in benchmarks/README.md) wrote it."""
    for file in spec.files():
        path = ROOT / file
        assert path.is_relative_to(ROOT / "benchmarks" / "results"), f"{doc}: {file} is not committed there"
        assert path.stat().st_size < 2_000_000
        readme = path.parent / "README.md"
        script = ROOT / "benchmarks" / f"{path.stem.removesuffix('_gpu')}.py"
        if readme.is_file() and path.name in readme.read_text():
            assert "i2m2 " in readme.read_text() or "python " in readme.read_text()
        else:
            assert script.is_file(), f"{file}: no README.md beside it names it, and no {script.name}"
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


def test_default_vs_tuned_takes_a_tuned_run_per_group(tmp_path):
    def run(name: str, cells: dict[tuple[str, str], float]) -> str:
        rows = [
            {
                "method": m,
                "group": g,
                "metrics": {"acc": {"mean": v, "std": 0.01, "per_seed": [v - 0.01, v + 0.01]}},
            }
            for (g, m), v in cells.items()
        ]
        path = tmp_path / "benchmarks" / "results" / name / "results.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"rows": rows}))
        return f"benchmarks/results/{name}/results.json"

    default = run(
        "default", {("a", "intra"): 0.6, ("a", "i2m2"): 0.7, ("b", "intra"): 0.5, ("b", "i2m2"): 0.4}
    )
    tuned_a = run("tuned-a", {("a", "intra"): 0.65, ("a", "i2m2"): 0.75})
    tuned_b = run("tuned-b", {("b", "intra"): 0.55, ("b", "i2m2"): 0.6})
    spec = Spec.parse(f"{default} view=default-vs-tuned tuned.a={tuned_a} tuned.b={tuned_b} label.i2m2=I2M2")
    assert spec.files() == [default, tuned_a, tuned_b]
    assert spec.render(tmp_path) == (
        "| method | a default | a tuned | b default | b tuned |\n"
        "|---|---|---|---|---|\n"
        "| intra | 60.00 ± 1.00 | 65.00 ± 1.00 | **50.00 ± 1.00** | 55.00 ± 1.00 |\n"
        "| I2M2 | **70.00 ± 1.00** | **75.00 ± 1.00** | 40.00 ± 1.00 | **60.00 ± 1.00** |\n"
    )

    one = run("one", {("", "i2m2"): 0.9})
    assert (
        Spec.parse(f"{one} view=default-vs-tuned tuned={one}")
        .render(tmp_path)
        .startswith("| method | default recipe | tuned |\n")
    )
    (tmp_path / "docs").mkdir()
    gone = "benchmarks/results/gone.json"
    (tmp_path / "docs" / "a.md").write_text(
        f"<!-- table: {default} view=default-vs-tuned tuned={gone} -->\n<!-- /table -->\n"
    )
    assert problems(tmp_path) == ["docs/a.md:1: benchmarks/results/gone.json does not exist"]


def test_results_with_per_example_groups_and_job_times(tmp_path):
    def stats(*values: float) -> dict:
        mean = sum(values) / len(values)
        std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
        return {"mean": mean, "std": std, "per_seed": list(values)}

    rows = [
        {
            "method": m,
            "group": "",
            "metrics": {"acc": stats(*acc)},
            "wall_time_s": stats(*seconds),
            "epochs": stats(*epochs),
        }
        for m, acc, seconds, epochs in (
            ("inter", (0.9, 0.92), (100.4, 80.0), (10, 8)),
            ("i2m2", (0.95, 0.95), (30.0, 50.0), (3, 5)),
        )
    ]
    results = tmp_path / "benchmarks" / "results" / "r" / "results.json"
    results.parent.mkdir(parents=True)
    results.write_text(json.dumps({"rows": rows, "config": {"seeds": [0, 1]}}))
    (results.parent / "groups.md").write_text(
        "# r\n\n## per-example groups\n\n| method | all | yes/no | shape |\n|---|---|---|---|\n"
        "| inter | 91.00 ± 1.00 | 99.00 ± 0.50 | 60.00 ± 2.00 |\n"
        "| i2m2 | 94.99 ± 0.00 | 98.00 ± 0.10 | n/a |\n"
    )
    spec = Spec.parse(
        "benchmarks/results/r/results.json view=results-groups groups=benchmarks/results/r/groups.md "
        "methods=i2m2,inter label.i2m2=I2M2"
    )
    assert spec.files() == ["benchmarks/results/r/results.json", "benchmarks/results/r/groups.md"]
    assert spec.render(tmp_path) == (
        "| method | all | yes/no | shape |\n"
        "|---|---|---|---|\n"
        "| I2M2 | **95.00 ± 0.00** | 98.00 ± 0.10 | n/a |\n"
        "| inter | 91.00 ± 1.00 | **99.00 ± 0.50** | **60.00 ± 2.00** |\n"
    )
    assert Spec.parse("benchmarks/results/r/results.json view=job-times").render(tmp_path) == (
        "| method | seconds, seeds 0 / 1 | epochs, seeds 0 / 1 | seconds per epoch |\n"
        "|---|---|---|---|\n"
        "| inter | 100 / 80 | 10 / 8 | 10.0 |\n"
        "| i2m2 | 30 / 50 | 3 / 5 | 10.0 |\n"
    )


def test_a_typed_table_must_be_generated_or_say_why(tmp_path):
    (tmp_path / "docs").mkdir()
    table = "| option | default |\n|---|---|\n| --crop | 320 |\n"
    (tmp_path / "docs" / "a.md").write_text(f"# A\n\n{table}")
    assert problems(tmp_path) == ["docs/a.md:3: a typed table: generate it, or mark why it is typed"]

    (tmp_path / "docs" / "a.md").write_text(f"# A\n\n<!-- typed table: not a result: options -->\n{table}")
    assert problems(tmp_path) == []
    assert [t for _, _, t in markdown_tables(table)] == [table]
