"""The docs' result tables, generated from the results files committed under ``benchmarks/results/``.

A table in ``README.md`` or ``docs/`` that reports a measurement sits between two markers and is rewritten
from its file, never typed::

    <!-- table: benchmarks/results/demo/results.json metric=acc label.inter="inter (late fusion)" -->
    | method | ... |
    <!-- /table -->

The first word is the file (from the repository root), the rest ``key=value`` options (shell quoting) for
the view, which is a function of this module (``VIEWS``); a view made from several files names the others
in options (``tuned=FILE``, ``groups=FILE``: ``FILE_OPTIONS``), each committed the same way. A table that
reports no measurement (an option list, a setting-by-setting comparison) is marked on the line before it with
``<!-- typed table: not a result: WHY -->``; a measured table whose run was never kept, with ``<!-- typed
table: no results file: WHY -->`` (tests/test_doc_tables.py holds that list and fails when it grows).

    python benchmarks/doc_tables.py --check    # list the tables that differ from their files (exit 1)
    python benchmarks/doc_tables.py --write    # rewrite them from their files
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i2m2.runs.results import markdown_table, spread

ROOT = Path(__file__).resolve().parents[1]
REGION = re.compile(r"(<!-- table: (?P<spec>.*?) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)
TYPED = re.compile(r"<!-- typed table: (?P<kind>not a result|no results file): (?P<why>.+?) -->")
SEPARATOR = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")
# Options whose value is a further results file (from the repository root), for views built from several.
FILE_OPTIONS = ("tuned", "groups")


def doc_paths(root: Path = ROOT) -> list[Path]:
    """README.md and every markdown file under docs/: where a reader meets the project's numbers."""
    readme = [root / "README.md"] if (root / "README.md").is_file() else []
    return [*readme, *sorted((root / "docs").rglob("*.md"))]


# ---------------------------------------------------------------------------------------------- views


def load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.suffix == ".json" else path.read_text()


def rows_for(data: Mapping[str, Any], options: Mapping[str, str]) -> list[dict[str, Any]]:
    """results.json's rows, restricted and ordered by ``methods=a,b`` and renamed by ``label.METHOD=TEXT``
    (the docs name a method in words where the run names it by its key)."""
    rows = list(data["rows"])
    if "methods" in options:
        order = options["methods"].split(",")
        rows = sorted((r for r in rows if r["method"] in order), key=lambda r: order.index(r["method"]))
    return [{**r, "method": options.get(f"label.{r['method']}", r["method"])} for r in rows]


def results_view(data: Mapping[str, Any], options: Mapping[str, str]) -> str:
    """A run's results.json as its results.md shows it: methods down, groups across, mean ± std (%)."""
    return markdown_table(rows_for(data, options), options.get("metric", "acc"))


def default_vs_tuned_view(data: Mapping[str, Any], options: Mapping[str, str]) -> str:
    """A run of the default recipe (the marker's file) against runs of the tuned recipe, as results.md shows
    a run (mean ± std, %, the best mean of a column in bold): per group of the default run, a default and a
    tuned column. ``tuned=FILE`` is the tuned run holding every group; ``tuned.GROUP=FILE`` the tuned run of
    one group (one tune per regime). A run without groups gives the columns ``default recipe`` and
    ``tuned``."""
    metric = options.get("metric", "acc")
    rows = rows_for(data, options)
    columns = []
    for group in dict.fromkeys(r["group"] for r in rows):
        tuned_file = options.get(f"tuned.{group}", options.get("tuned"))
        if tuned_file is None:
            raise ValueError(f"view=default-vs-tuned: no tuned=FILE or tuned.{group}=FILE")
        tuned = [r for r in rows_for(load(Path(tuned_file)), options) if r["group"] == group]
        default = [r for r in rows if r["group"] == group]
        names = (f"{group} default", f"{group} tuned") if group else ("default recipe", "tuned")
        columns += [{**r, "group": names[0]} for r in default] + [{**r, "group": names[1]} for r in tuned]
    return markdown_table(columns, metric)


def results_cost_view(data: Mapping[str, Any], options: Mapping[str, str]) -> str:
    """One metric (mean ± std, %), the epochs each seed ran and the wall time per job: a one-group run."""
    rows = rows_for(data, options)
    metric = options.get("metric", "acc")
    scores = markdown_table(rows, metric).splitlines()[2:]
    lines = [f"| method | {metric} | epochs (per seed) | wall time per job (s) |", "|---|---|---|---|"]
    for row, score in zip(rows, scores, strict=True):
        epochs = ", ".join(str(int(e)) for e in row["epochs"]["per_seed"])
        t = row["wall_time_s"]
        lines.append(f"{score} {epochs} | {t['mean']:.1f} ± {spread(t, 1, 1)} |")
    return "\n".join(lines) + "\n"


def results_groups_view(data: Mapping[str, Any], options: Mapping[str, str]) -> str:
    """results.json's metric (mean ± std, %) as the first column, then the per-example group columns of
    ``groups=FILE``, the groups.md that ``i2m2 analyze`` wrote for the run (its first table, without its
    ``all`` column, which is recomputed from the float16 predictions): methods as results.json orders and
    labels them, the best mean of each column in bold."""
    metric = options.get("metric", "acc")
    rows = rows_for(data, options)
    overall = {r["method"]: cell for r, cell in zip(rows, _cells(markdown_table(rows, metric)), strict=True)}
    header, _, *lines = next(markdown_tables(load(Path(options["groups"]))))[2].splitlines()
    columns = [c.strip() for c in header.strip("|").split("|")][1:]
    keep = [k for k, c in enumerate(columns) if c != "all"]
    groups = {}
    for line in lines:
        method, *cells = [c.strip() for c in line.strip("|").split("|")]
        label = options.get(f"label.{method}", method)
        groups[label] = [cells[k].strip("*") for k in keep]
    best = [max(_mean(groups[r["method"]][j]) for r in rows) for j in range(len(keep))]
    first = "all" if metric == "acc" else metric
    out = [f"| method | {first} | " + " | ".join(columns[k] for k in keep) + " |"]
    out.append("|---" * (len(keep) + 2) + "|")
    for r in rows:
        cells = [f"**{c}**" if _mean(c) == best[j] else c for j, c in enumerate(groups[r["method"]])]
        out.append(f"| {r['method']} | {overall[r['method']]} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _mean(cell: str) -> float:
    """The mean of a ``mean ± std`` cell (``n/a``: below every mean)."""
    head = cell.split(" ±")[0]
    return float(head) if head != "n/a" else float("-inf")


def _cells(table: str) -> list[str]:
    """The second cell of every data row of a one-column markdown table."""
    return [line.split(" | ", 1)[1].removesuffix(" |") for line in table.splitlines()[2:]]


def job_times_view(data: Mapping[str, Any], options: Mapping[str, str]) -> str:
    """Per method, the wall time of each seed's job (s), the epochs each ran and the seconds per epoch (all
    jobs' seconds over all their epochs, so test and predictions are counted in): a run's results.json."""
    seeds = " / ".join(str(s) for s in data.get("config", {}).get("seeds", [])) or "per seed"
    lines = [
        f"| method | seconds, seeds {seeds} | epochs, seeds {seeds} | seconds per epoch |",
        "|---|---|---|---|",
    ]
    for row in rows_for(data, options):
        seconds, epochs = row["wall_time_s"]["per_seed"], row["epochs"]["per_seed"]
        lines.append(
            f"| {row['method']} | {' / '.join(f'{t:.0f}' for t in seconds)} | "
            f"{' / '.join(str(int(e)) for e in epochs)} | {sum(seconds) / sum(epochs):.1f} |"
        )
    return "\n".join(lines) + "\n"


def markdown_view(text: str, options: Mapping[str, str]) -> str:
    """The ``table=N``-th table (from 0) of a committed markdown file that a benchmark or ``i2m2 analyze``
    wrote, as it is."""
    table = [table for _, _, table in markdown_tables(text)][int(options.get("table", "0"))]
    if "rows" not in options:
        return table
    keep = options["rows"].split(";")
    header, separator, *lines = table.splitlines(keepends=True)
    return "".join([header, separator, *(line for line in lines if line.split("|")[1].strip() in keep)])


def presets_view(data: Mapping[str, Any], options: Mapping[str, str]) -> str:
    """benchmarks/avmnist_presets.py's Table 1 under each preset: mean ± population std (%) over the seeds,
    the best mean of a preset in bold, and with ``seeds=yes`` each seed's value beside it."""
    presets = list(data["rows"][0]["per_seed"])
    with_seeds = options.get("seeds") == "yes"
    values = {
        (r["row"], p): [100 * v for _, v in sorted(r["per_seed"][p].items(), key=lambda kv: int(kv[0]))]
        for r in data["rows"]
        for p in presets
    }
    best = {p: max(sum(v) / len(v) for (_, q), v in values.items() if q == p) for p in presets}
    columns = [
        f"`{p}`" + (" | seeds " + " / ".join(data["rows"][0]["per_seed"][p]) if with_seeds else "")
        for p in presets
    ]
    lines = ["| row | " + " | ".join(columns) + " |", "|" + "---|" * (1 + len(presets) * (1 + with_seeds))]
    for r in data["rows"]:
        cells = []
        for p in presets:
            v = values[(r["row"], p)]
            mean = sum(v) / len(v)
            std = (sum((x - mean) ** 2 for x in v) / len(v)) ** 0.5
            text = f"{mean:.1f} ± {std:.1f}"
            cells.append(f"**{text}**" if mean == best[p] else text)
            if with_seeds:
                cells.append(" / ".join(f"{x:.1f}" for x in v))
        lines.append(f"| {r['row']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def executors_view(data: Mapping[str, Any], options: Mapping[str, str]) -> str:
    """benchmarks/executors.py's wall times: local, one worker, two workers and the two-worker speed-up."""
    names = dict(item.split("=", 1) for item in options.get("workloads", "").split(";") if item)
    lines = [
        "| workload | jobs | local | 1 worker | 2 workers | 2 vs 1 worker |",
        "|---|---|---|---|---|---|",
    ]
    for workload, w in data["workloads"].items():
        runs = w["runs"]
        walls = [
            runs[k]["wall_s"] for k in ("local, 1 thread", "processes, 1 worker", "processes, 2 workers")
        ]
        jobs = next(iter(runs.values()))["jobs"]
        cells = " | ".join(f"{s:.1f} s" for s in walls)
        lines.append(
            f"| {names.get(workload, workload)} | {jobs} | {cells} | {w['speedup_2_over_1_worker']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def reference_view(data: Sequence[Mapping[str, Any]], options: Mapping[str, str]) -> str:
    """benchmarks/avmnist_vs_reference.py: per job, i2m2's seconds against the bare loop's. ``layout=cpu``:
    one batch size, each phase and the two ratios; ``layout=gpu``: training seconds and images/s per batch
    size. ``label.JOB=TEXT`` names a job in words."""

    def job(name: str) -> str:
        return options.get(f"label.{name}", name)

    names = list(data[0]["summary"]["jobs"])
    if options.get("layout", "cpu") == "cpu":
        lines = [
            "| job | i2m2 train / val / test / whole | bare loop train / forward val+test "
            "| train ratio (target <= 1.10) | whole job ratio (target <= 1.25) |",
            "|---|---|---|---|---|",
        ]
        for name in names:
            j = data[0]["summary"]["jobs"][name]
            ours = " / ".join(f"{j['ours'][k]:.1f}" for k in ("train", "val", "test", "wall_s"))
            bare = f"{j['bare']['train']:.1f} / {j['bare']['forward_val_test']:.1f}"
            lines.append(f"| {job(name)} | {ours} | {bare} | {j['train_ratio']:.2f} | {j['job_ratio']:.2f} |")
        return "\n".join(lines) + "\n"
    header, rule = ["| job"], ["|---"]
    for entry in data:
        header.append(f" | batch {entry['batch']}: i2m2 / bare train (s) | images/s i2m2 (bare)")
        rule.append("|---|---")
    lines = ["".join(header) + " |", "".join(rule) + "|"]
    for name in names:
        cells = []
        for entry in data:
            rows = int(entry["rows"].split()[0])
            j = entry["summary"]["jobs"][name]
            ours, bare = j["ours"]["train"], j["bare"]["train"]
            cells.append(f"{ours:.1f} / {bare:.1f} | {rows / ours:,.0f} ({rows / bare:,.0f})")
        lines.append(f"| {job(name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


View = Callable[[Any, Mapping[str, str]], str]
VIEWS: dict[str, View] = {
    "results": results_view,
    "results-cost": results_cost_view,
    "results-groups": results_groups_view,
    "job-times": job_times_view,
    "default-vs-tuned": default_vs_tuned_view,
    "markdown": markdown_view,
    "executors": executors_view,
    "presets": presets_view,
    "reference": reference_view,
}


# ------------------------------------------------------------------------------------------- regions


@dataclass(frozen=True)
class Spec:
    """What a marker asks for: the results file, the view and its options."""

    file: str
    view: str
    options: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> Spec:
        file, *items = shlex.split(text)
        options = dict(item.split("=", 1) for item in items)
        return cls(file, options.pop("view", "results"), options)

    def file_options(self) -> dict[str, str]:
        """The options that name a further results file (``tuned=FILE``, ``tuned.GROUP=FILE``)."""
        return {k: v for k, v in self.options.items() if k.split(".", 1)[0] in FILE_OPTIONS}

    def files(self) -> list[str]:
        """Every results file the table is made from: the marker's file, then its file options'."""
        return [self.file, *self.file_options().values()]

    def render(self, root: Path = ROOT) -> str:
        if self.view not in VIEWS:
            raise ValueError(f"unknown view {self.view!r} (views: {', '.join(VIEWS)})")
        options = {**self.options, **{k: str(root / v) for k, v in self.file_options().items()}}
        return VIEWS[self.view](load(root / self.file), options)


def markdown_tables(text: str) -> Iterator[tuple[int, int, str]]:
    """Every markdown table in ``text``: (first line, line after the last, the table's text), lines from 0."""
    lines = text.splitlines(keepends=True)
    k = 0
    while k < len(lines):
        if lines[k].startswith("|") and k + 1 < len(lines) and SEPARATOR.match(lines[k + 1]):
            end = k + 2
            while end < len(lines) and lines[end].startswith("|"):
                end += 1
            yield k, end, "".join(lines[k:end])
            k = end
        else:
            k += 1


def regenerate(text: str, root: Path = ROOT) -> str:
    """``text`` with every marked region rewritten from its results file."""
    return REGION.sub(lambda m: m.group(1) + Spec.parse(m.group("spec")).render(root) + m.group(4), text)


def typed_tables(text: str) -> list[tuple[int, str | None]]:
    """The tables outside every marked region: (first line from 1, the typed-table marker's kind and reason
    on the line before, or ``None`` when unmarked)."""
    regions = [(text.count("\n", 0, m.start()), text.count("\n", 0, m.end())) for m in REGION.finditer(text)]
    lines = text.splitlines()
    found = []
    for start, _, _ in markdown_tables(text):
        if any(a <= start <= b for a, b in regions):
            continue
        marker = TYPED.search(lines[start - 1]) if start > 0 else None
        found.append((start + 1, f"{marker['kind']}: {marker['why']}" if marker else None))
    return found


def problems(root: Path = ROOT) -> list[str]:
    """Every doc table that differs from its results file, and every table that is neither generated nor
    marked typed; empty when the docs agree with benchmarks/results/."""
    found = []
    for path in doc_paths(root):
        text = path.read_text()
        name = path.relative_to(root)
        for m in REGION.finditer(text):
            spec = Spec.parse(m.group("spec"))
            line = text.count("\n", 0, m.start()) + 1
            missing = [file for file in spec.files() if not (root / file).is_file()]
            if missing:
                found.append(f"{name}:{line}: {', '.join(missing)} does not exist")
            elif spec.render(root) != m.group("body"):
                found.append(
                    f"{name}:{line}: differs from {spec.file} (run benchmarks/doc_tables.py --write)"
                )
        for line, marker in typed_tables(text):
            if marker is None:
                found.append(f"{name}:{line}: a typed table: generate it, or mark why it is typed")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the marked tables from their files")
    parser.add_argument("--check", action="store_true", help="report differences, exit 1 if any (default)")
    args = parser.parse_args(argv)
    if args.write:
        for path in doc_paths():
            text = path.read_text()
            new = regenerate(text)
            if new != text:
                path.write_text(new)
                print(f"rewrote {path.relative_to(ROOT)}")
    found = problems()
    print("\n".join(found) or "every doc table agrees with its results file")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
