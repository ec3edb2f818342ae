"""nlvr2-shapes: a small *simulated* NLVR2, in exactly NLVR2's layout, built from easy-VQA's images.

Each easy-VQA image shows one shape (circle, rectangle, triangle) in one of eight colours; the labels
are read off the package's own questions and answers (:func:`image_attributes`). A statement is a
template about a pair of images ("both shapes are red", "the left shape is a circle and the right one
is not", "the two shapes have the same colour", ...).

Built the way NLVR2 was, so that neither modality alone says anything about the label: examples come in
groups of four, two pairs P, Q and two statements S, T with S true of P and false of Q, T false of P and
true of Q. Every statement occurrence has a True and a False partner, and every image pair one True and
one False statement: a model that sees only the statement, or only the images, is at chance by
construction; only the two together decide. Train and dev pairs use (disjoint halves of) easy-VQA's
training images, test1 its test images.

:func:`build_nlvr2_shapes` writes ``train.json``/``dev.json``/``test1.json`` (JSON lines) and
``images/<split>/[<directory>/]<pair>-img0.png``/``-img1.png`` (``directory`` only in train, as in
NLVR2), plus a README.txt that says the set is simulated; read it with :func:`i2m2.data.nlvr2.load_nlvr2`.
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i2m2.atomic import atomic_write_text
from i2m2.errors import UserError

SHAPES = ("circle", "rectangle", "triangle")
COLORS = ("black", "blue", "brown", "gray", "green", "red", "teal", "yellow")
GROUP_SIZE = 4  # statements per construction group: two pairs x two statements
Attributes = tuple[str, str]  # (shape, colour)
Pair = tuple[Attributes, Attributes]  # (left, right)

README = """nlvr2-shapes: a SIMULATED stand-in for NLVR2, built by i2m2.data.nlvr2_shapes (seed {seed}).

Not the NLVR2 dataset. Images are easy-VQA shapes (one coloured shape each, downscaled to {size}x{size});
statements are templates about a pair of images. The layout is NLVR2's: train.json / dev.json /
test1.json (JSON lines with identifier split-set-pair-sentence, sentence, label "True"/"False",
directory in train) and images/<split>/[<directory>/]<split>-<set>-<pair>-img0.png / -img1.png.
Like NLVR2, every statement appears with True and False image pairs and every image pair with True and
False statements, so text-only and image-only models are at chance by construction.
Statements: train {train}, dev {dev}, test1 {test}.
"""


@dataclass(frozen=True)
class Template:
    """A statement pattern and the rule that decides it for a (left, right) pair."""

    text: str
    holds: Callable[[Pair, str], bool]
    slot: str = ""  # "shape", "colour" or "" (no word to fill in)


def _plural(shape: str) -> str:
    return shape + "s"


TEMPLATES = (
    Template("both shapes are {}", lambda p, c: p[0][1] == c == p[1][1], "colour"),
    Template("both images show {}", lambda p, s: p[0][0] == s == p[1][0], "shapes"),
    Template("exactly one shape is {}", lambda p, c: (p[0][1] == c) != (p[1][1] == c), "colour"),
    Template(
        "the left shape is a {} and the right one is not", lambda p, s: p[0][0] == s != p[1][0], "shape"
    ),
    Template("the right shape is {} and the left one is not", lambda p, c: p[1][1] == c != p[0][1], "colour"),
    Template("the two shapes have the same colour", lambda p, _: p[0][1] == p[1][1]),
    Template("the two shapes have different colours", lambda p, _: p[0][1] != p[1][1]),
    Template("the two images show the same kind of shape", lambda p, _: p[0][0] == p[1][0]),
    Template("there is no {} in either image", lambda p, s: s not in (p[0][0], p[1][0]), "shape"),
    Template("one of the images shows a {} shape", lambda p, c: c in (p[0][1], p[1][1]), "colour"),
)


def statements() -> list[tuple[str, Callable[[Pair], bool]]]:
    """Every filled-in statement and its truth rule."""
    filled: list[tuple[str, Callable[[Pair], bool]]] = []
    for t in TEMPLATES:
        words = {"colour": COLORS, "shape": SHAPES, "shapes": SHAPES, "": ("",)}[t.slot]
        for w in words:
            text = t.text.format(_plural(w) if t.slot == "shapes" else w)
            filled.append((text, _bind(t, w)))
    return filled


def _bind(template: Template, word: str) -> Callable[[Pair], bool]:
    return lambda pair: template.holds(pair, word)


def image_attributes(questions: Any) -> dict[int, Attributes]:
    """Image id -> (shape, colour), read off easy-VQA's questions and answers.

    An open question's answer names the shape or colour; a yes/no question names one and says whether
    it is there ("is there not a red shape?" -> no means red). Images with an unknown or contradictory
    shape or colour are left out (about 12% of them).
    """
    found: dict[int, set[str]] = defaultdict(set)
    for question, answer, image in zip(*questions, strict=True):
        words = re.findall(r"[a-z]+", question.lower())
        negated = "not" in words or "no" in words
        named = [w for w in words if w in SHAPES or w in COLORS]
        if answer in ("yes", "no"):
            if (answer == "yes") != negated:
                found[int(image)].update(named)
        else:
            found[int(image)].update([*named, answer])
    attributes = {}
    for image, named_words in found.items():
        shapes, colours = named_words & set(SHAPES), named_words & set(COLORS)
        if len(shapes) == 1 and len(colours) == 1:
            attributes[image] = (shapes.pop(), colours.pop())
    return attributes


MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 1024  # pixels a side: smaller shapes vanish, larger only cost


def build_nlvr2_shapes(
    out: Path, seed: int = 0, train: int = 4000, dev: int = 1000, test: int = 1000, image_size: int = 32
) -> Path:
    """Write nlvr2-shapes under ``out`` (see the module docstring) and return ``out``.

    Args:
        out: the folder to create (existing split files in it are replaced).
        seed: the random choice of statements, pairs and images.
        train, dev, test: statements per split, each a multiple of 4 (one construction group).
        image_size: side of the written PNGs (easy-VQA's are 64; 32 keeps training cheap).
    """
    for name, n in (("train", train), ("dev", dev), ("test", test)):
        if n < GROUP_SIZE or n % GROUP_SIZE:
            raise UserError(f"nlvr2-shapes: {name} must be a positive multiple of {GROUP_SIZE}, got {n}")
    if not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise UserError(
            f"nlvr2-shapes: --image_size must be {MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE} pixels, got {image_size}"
        )
    package = _easy_vqa()
    rng = random.Random(seed)
    train_pool = _pool(package.get_train_questions(), package.get_train_image_paths())
    test_pool = _pool(package.get_test_questions(), package.get_test_image_paths())
    train_half, dev_half = _halves(train_pool, rng)
    out = Path(out)
    for split, pool, n in (("train", train_half, train), ("dev", dev_half, dev), ("test1", test_pool, test)):
        _write_split(out, split, pool, n // GROUP_SIZE, rng, image_size)
    atomic_write_text(
        out / "README.txt", README.format(seed=seed, size=image_size, train=train, dev=dev, test=test)
    )
    return out


def _pool(questions: Any, paths: dict[int, str]) -> dict[Attributes, list[Path]]:
    """(shape, colour) -> image files with those attributes."""
    pool: dict[Attributes, list[Path]] = defaultdict(list)
    for image, attributes in sorted(image_attributes(questions).items()):
        if image in paths:
            pool[attributes].append(Path(paths[image]))
    return pool


def _halves(
    pool: dict[Attributes, list[Path]], rng: random.Random
) -> tuple[dict[Attributes, list[Path]], dict[Attributes, list[Path]]]:
    """Split each attribute's images in two, so train and dev share no image file."""
    first, second = {}, {}
    for attributes, files in pool.items():
        files = files[:]
        rng.shuffle(files)
        if len(files) >= 2:
            half = len(files) // 2
            first[attributes], second[attributes] = files[:half], files[half:]
    return first, second


def _write_split(
    out: Path, split: str, pool: dict[Attributes, list[Path]], groups: int, rng: random.Random, size: int
) -> None:
    filled = statements()
    kinds = sorted(pool)
    all_pairs = [(a, b) for a in kinds for b in kinds]
    lines = []
    for group in range(groups):
        while True:
            (s_text, s_rule), (t_text, t_rule) = rng.sample(filled, 2)
            p_options = [p for p in all_pairs if s_rule(p) and not t_rule(p)]
            q_options = [q for q in all_pairs if t_rule(q) and not s_rule(q)]
            if p_options and q_options:
                break
        directory = str(group % 100) if split == "train" else None
        for pair_index, pair in enumerate((rng.choice(p_options), rng.choice(q_options))):
            name = f"{split}-{group}-{pair_index}"
            folder = out / "images" / split / (directory or "")
            for side, attributes in enumerate(pair):
                _write_png(rng.choice(pool[attributes]), folder / f"{name}-img{side}.png", size)
            for sentence_index, (text, rule) in enumerate(((s_text, s_rule), (t_text, t_rule))):
                entry: dict[str, str] = {
                    "identifier": f"{name}-{sentence_index}",
                    "sentence": text,
                    "label": str(rule(pair)),
                }
                if directory is not None:
                    entry["directory"] = directory
                lines.append(json.dumps(entry))
    atomic_write_text(out / f"{split}.json", "\n".join(lines) + "\n")


def _write_png(source: Path, target: Path, size: int) -> None:
    from PIL import Image

    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR).save(target)


def _easy_vqa() -> Any:
    try:
        import easy_vqa
    except ModuleNotFoundError as err:
        raise UserError("nlvr2-shapes needs the 'easy-vqa' package: pip install easy-vqa") from err
    return easy_vqa
