"""Paper Figure 5: test examples every expert alone gets wrong and I2M2 gets right, as one HTML page.

For runs on a folder in the NLVR2 or the VQA-VS layout: the run's experiment says which by declaring
``examples_nlvr2`` or ``examples_vqa_vs`` among its analyses (:mod:`i2m2.analysis.report`). The
predictions files hold only numbers, so the page re-reads the test split's questions (statements) and
images from the run's ``data_dir`` (results.json ``config``): nothing larger than the predictions is stored
in the run. "Experts alone" are the stage-1 models (rows ``unimodal:<m>`` and ``inter``) when the run has
them, else I2M2's fine-tuned experts; "right" is the top answer equal to the label (for VQA, the
annotators' most common answer). The page is self-contained: images are embedded as base64 PNG
thumbnails. The first seed's predictions are shown.
"""

from __future__ import annotations

import base64
import html
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from i2m2.analysis.artifacts import Artifact
from i2m2.analysis.run_data import RunData
from i2m2.errors import DataError
from i2m2.models.methods import UNIMODAL_PREFIX, inter_row_of

MAX_EXAMPLES = 24
THUMBNAIL = 160  # longest side in pixels


@dataclass
class TestExamples:
    """What the page shows of the test split, in the order of the predictions."""

    texts: list[str]
    images: list[tuple[Path, ...]]
    labels: np.ndarray
    class_names: list[str]
    notes: list[str]  # e.g. the human answers of a VQA question


# (the run's data folder, its number of classes) -> the test split as the page shows it
TestReader = Callable[[Path, int], TestExamples]


def nlvr2_examples_analysis(run: RunData) -> list[Artifact]:
    """examples.html of a run on an NLVR2-layout folder (nlvr2, nlvr2-shapes)."""
    return vl_examples_analysis(run, read_nlvr2_test)


def vqa_vs_examples_analysis(run: RunData) -> list[Artifact]:
    """examples.html of a run on a VQA-VS folder (answers matched as the run matched them)."""
    normalize = bool((run.config.get("experiment_options") or {}).get("normalize_answers", False))
    return vl_examples_analysis(run, partial(read_vqa_vs_test, normalize=normalize))


def vl_examples_analysis(run: RunData, read_test: TestReader) -> list[Artifact]:
    """examples.html for a run with an I2M2 row, its test split read by ``read_test``; nothing otherwise."""
    if not run.groups:
        return []
    group = run.groups[0]
    methods = run.i2m2_methods(group)
    if not methods:
        return []
    data_dir = run.config.get("data_dir")
    if not data_dir or not Path(data_dir).is_dir():
        warnings.warn(
            f"{run.path}: data_dir {data_dir!r} not found; examples.html needs its images", stacklevel=2
        )
        return []
    method, seed = methods[0], run.seeds[0]
    product = run.predictions[(group, method, seed)]
    standalone = [UNIMODAL_PREFIX + m for m in run.modalities] + [inter_row_of(method)]
    if all((group, m, seed) in run.predictions for m in standalone):
        experts = {m: run.predictions[(group, m, seed)].log_probs for m in standalone}
        reading = "stage-1 models trained alone"
    else:
        experts = {f"{method} expert {n}": p for n, p in product.experts.items()}
        reading = f"{method}'s fine-tuned experts"
    examples = read_test(Path(data_dir), product.log_probs.shape[1])
    if len(examples.labels) != len(product.labels) or not np.array_equal(examples.labels, product.labels):
        raise DataError(
            f"{data_dir}: its test split differs from the run's predictions (was the folder changed?)"
        )
    right = product.log_probs.argmax(axis=1) == product.labels
    any_expert_right = np.stack([e.argmax(axis=1) == product.labels for e in experts.values()]).any(axis=0)
    rescued = np.flatnonzero(right & ~any_expert_right)
    shown = np.sort(np.random.default_rng(0).permutation(rescued)[:MAX_EXAMPLES])
    page = _page(run, method, seed, reading, examples, product.log_probs, experts, shown, len(rescued))
    return [Artifact("examples.html", page.encode())]


def read_nlvr2_test(root: Path, num_classes: int) -> TestExamples:
    """The test statements and image pairs of an NLVR2-layout folder (two classes: False, True)."""
    from i2m2.data.nlvr2 import read_nlvr2_split

    split = read_nlvr2_split(root, "test")
    names = ["False", "True"]
    return TestExamples(
        split.sentences, list(split.image_paths), split.labels.numpy(), names, [""] * len(split)
    )


def read_vqa_vs_test(root: Path, num_classes: int, normalize: bool = False) -> TestExamples:
    """The IID test questions and images of a VQA-VS folder, with the human answers as notes."""
    from i2m2.data.vqa_vs import image_path, read_vqa_vs

    splits, answers = read_vqa_vs(root, _min_count_for(root, num_classes, normalize), normalize)
    test = splits["test"]
    notes = []
    for labels, counts in zip(test.answer_labels.tolist(), test.answer_counts.tolist(), strict=True):
        given = [f"{answers[a]} ×{int(c)}" for a, c in zip(labels, counts, strict=True) if a >= 0]
        notes.append("humans: " + ", ".join(given) if given else "no human answer in the vocabulary")
    images: list[tuple[Path, ...]] = [(image_path(root / "images", int(i)),) for i in test.image_ids]
    return TestExamples(test.questions, images, test.labels.numpy(), answers, notes)


def _min_count_for(root: Path, num_classes: int, normalize: bool = False) -> int:
    """The vocabulary threshold that gives ``num_classes`` answers (every such threshold gives the same
    answers: the ``num_classes`` most frequent), so the page needs no record of ``--min-count``."""
    from i2m2.data.vqa_vs import training_answer_counts

    path = root / "Training" / "Training-Ans.json"
    counts = sorted(training_answer_counts(root, normalize).values(), reverse=True)
    if len(counts) < num_classes or (
        len(counts) > num_classes and counts[num_classes] == counts[num_classes - 1]
    ):
        raise DataError(f"{path}: no answer-count threshold gives the run's {num_classes} answers")
    return counts[num_classes - 1]


def _thumbnail(path: Path) -> str:
    from PIL import Image

    from i2m2.data.image_files import open_image

    image: Any = open_image(path)
    image.thumbnail((THUMBNAIL, THUMBNAIL), Image.Resampling.BILINEAR)
    if max(image.size) < 64:  # tiny images (nlvr2-shapes) shown larger, pixels kept sharp
        image = image.resize((image.width * 3, image.height * 3), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _answer(log_probs: np.ndarray, i: int, names: list[str], label: int) -> str:
    top = int(log_probs[i].argmax())
    mark = "✓" if top == label else "✗"
    return f"{mark} {html.escape(names[top])} ({np.exp(log_probs[i, top]):.2f})"


def _page(
    run: RunData,
    method: str,
    seed: int,
    reading: str,
    examples: TestExamples,
    product: np.ndarray,
    experts: dict[str, np.ndarray],
    shown: np.ndarray,
    rescued: int,
) -> str:
    names = examples.class_names
    head = "".join(f"<th>{html.escape(n)}</th>" for n in experts)
    rows = []
    for i in shown:
        label = int(examples.labels[i])
        images = "".join(f'<img src="{_thumbnail(p)}" alt="test image">' for p in examples.images[i])
        cells = "".join(f"<td>{_answer(lp, i, names, label)}</td>" for lp in experts.values())
        note = f"<br><small>{html.escape(examples.notes[i])}</small>" if examples.notes[i] else ""
        rows.append(
            f"<tr><td>{images}</td><td>{html.escape(examples.texts[i])}</td>"
            f"<td>{html.escape(names[label])}{note}</td>{cells}"
            f"<td><b>{_answer(product, i, names, label)}</b></td></tr>"
        )
    total = len(examples.labels)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(run.experiment)}: examples I2M2 gets right</title>
<style>body{{font-family:sans-serif}} td,th{{border:1px solid #ccc;padding:4px;vertical-align:top}}
table{{border-collapse:collapse}} img{{margin:2px;image-rendering:pixelated}}</style></head><body>
<h1>{html.escape(run.experiment)}: test examples every expert alone gets wrong and {html.escape(method)}
gets right (paper Figure 5)</h1>
<p>Experts: the {html.escape(reading)}. Seed {seed}. {rescued} of {total} test examples are such cases;
{len(shown)} are shown (a fixed random choice). Each cell: the top answer and its probability
(✓ equals the label).</p>
<table><tr><th>image(s)</th><th>text</th><th>label</th>{head}<th>{html.escape(method)}</th></tr>
{"".join(rows)}
</table></body></html>
"""
