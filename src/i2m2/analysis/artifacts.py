"""What an analysis produces: named files (tables and plots) held in memory until all are ready."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from i2m2.runs.results import UNDEFINED, is_defined, summarize


@dataclass
class SeedStat:
    """One quantity of one (group, method), measured once per seed."""

    group: str
    method: str
    name: str
    per_seed: list[float]

    @property
    def mean(self) -> float:
        return mean_std(self.per_seed)[0]

    @property
    def std(self) -> float:
        return mean_std(self.per_seed)[1]

    def csv_row(self) -> list[Any]:
        return [self.group, self.method, self.name, self.mean, self.std, per_seed_text(self.per_seed)]


@dataclass
class Artifact:
    """One output file: its name inside the analysis folder and its bytes."""

    name: str
    content: bytes


def csv_artifact(name: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Artifact:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return Artifact(name, buffer.getvalue().encode())


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def mean_std(values: Sequence[float | None]) -> tuple[float, float]:
    """Mean and population std over seeds, exactly as results.json reports them; NaN where it reports
    the metric undefined (``null``: a seed without a value)."""
    stats = summarize(values)
    if stats["mean"] is None:
        return float("nan"), float("nan")
    return stats["mean"], stats["std"]


def pm(values: Sequence[float | None], scale: float = 1.0, digits: int = 2) -> str:
    """``mean ± std`` of per-seed values, times ``scale`` (100 for percentages); ``n/a`` when undefined."""
    mean, std = mean_std(values)
    if not (is_defined(mean) and is_defined(std)):
        return UNDEFINED
    if sum(is_defined(v) for v in values) < 2:
        return f"{scale * mean:.{digits}f} ± {UNDEFINED}"  # one seed has no spread
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def per_seed_text(values: Sequence[float | None]) -> str:
    return " ".join(f"{v:.6f}" if is_defined(v) else UNDEFINED for v in values)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not is_defined(value)):
        return UNDEFINED  # a metric results.json reports undefined (null) or NaN
    return f"{value:.6f}" if isinstance(value, float) else str(value)


def file_suffix(count: int, group: str, method: str = "") -> str:
    """No suffix when an analysis makes one chart; otherwise one naming its group (and method)."""
    if count == 1:
        return ""
    name = f"{group or 'all'}_{method}" if method else group or "all"
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
    return "_" + re.sub("-+", "-", cleaned).strip("-")  # i2m2[late] -> i2m2-late, no trailing hyphen
