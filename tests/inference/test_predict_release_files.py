"""``i2m2 predict`` on NLVR2's and VQA-VS's own files: a tiny real run of each, then the CLI on the release
folder (``--split``) or on one statements / questions file must write, per example, its id and the
probabilities ``load_model(...).predict`` gives on the same raw examples; a wrong layout is one line."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from i2m2 import load_model
from i2m2.cli.main import main
from i2m2.data.nlvr2 import NLVR2Split, read_nlvr2_split
from i2m2.data.vqa_vs import image_path, read_vqa_vs
from tests.helpers.nlvr2 import write_nlvr2
from tests.helpers.vqa_vs import write_vqa_vs

ATOL = 1e-7  # the CSV holds 8 significant digits


def read_csv(path: Path, classes: list[str]) -> tuple[np.ndarray, list[dict[str, str]]]:
    rows = list(csv.DictReader(path.read_text().splitlines()))
    return np.array([[float(r[f"p_{c}"]) for c in classes] for r in rows]), rows


def predict(run: Path, given: Path, out: Path, *extra: str) -> int:
    return main(["predict", str(run), "--input", str(given), "--out", str(out), *extra])


def one_line_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    """The error line of a failed command (the lines before it name the loaded model)."""
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("i2m2 predict: error: --input "), errors
    return errors[0]


def nlvr2_raw(statements: NLVR2Split) -> dict[str, np.ndarray]:
    pairs = np.array([[str(a), str(b)] for a, b in statements.image_paths], dtype=object)
    return {"images": pairs, "statement": np.array(statements.sentences, dtype=object)}


def test_nlvr2_cli_reads_the_release_folder_and_statement_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_nlvr2(tmp_path / "nlvr2")
    argv = ["run", "nlvr2", "--data-dir", str(data), "--seeds", "1", "--max-epochs", "1"]
    assert main([*argv, "--methods", "i2m2", "--image-size", "16", "--out", str(tmp_path / "run")]) == 0
    run = tmp_path / "run"
    predictor = load_model(run, method="i2m2")
    out = tmp_path / "p.csv"
    for split, given, extra in (
        ("test", data, []),
        ("val", data, ["--split", "val"]),
        ("val", data / "dev.json", []),
        ("train", data, ["--split", "train"]),  # the train file's `directory` subfolders
    ):
        assert predict(run, given, out, *extra) == 0
        got, rows = read_csv(out, predictor.classes)
        statements = read_nlvr2_split(data, split)
        expected = predictor.predict(nlvr2_raw(statements))
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
        assert [r["identifier"] for r in rows] == statements.identifiers
        assert [r["label"] for r in rows] == [predictor.classes[int(y)] for y in statements.labels]
        assert [r["predicted"] for r in rows] == [predictor.classes[int(i)] for i in expected.argmax(1)]
    assert predict(run, data, out, "--missing", "statement") == 0
    got, _ = read_csv(out, predictor.classes)
    test = read_nlvr2_split(data, "test")
    pairs = np.array([[str(a), str(b)] for a, b in test.image_paths], dtype=object)
    np.testing.assert_allclose(got, predictor.predict({"images": pairs}), atol=ATOL, rtol=0)

    unlabeled = tmp_path / "new"  # new statements without labels, in a file of its own name
    shutil.copytree(data / "images" / "test1", unlabeled / "images" / "fresh")
    lines = [json.loads(line) for line in (data / "test1.json").read_text().splitlines()]
    (unlabeled / "fresh.json").write_text(
        "".join(json.dumps({k: v for k, v in x.items() if k != "label"}) + "\n" for x in lines)
    )
    assert predict(run, unlabeled, out, "--split", "fresh") == 0
    got, rows = read_csv(out, predictor.classes)
    folder = unlabeled / "images" / "fresh"
    names = [i.rsplit("-", 1)[0] for i in test.identifiers]
    moved = np.array([[str(folder / f"{n}-img{k}.png") for k in (0, 1)] for n in names], dtype=object)
    expected = predictor.predict({"images": moved, "statement": np.array(test.sentences, dtype=object)})
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    assert "label" not in rows[0] and [r["identifier"] for r in rows] == test.identifiers

    for record in (run / "checkpoints").glob("*.inputs.json"):  # as saved before records held a reader
        saved = json.loads(record.read_text())
        assert saved.pop("reader")["kind"] == "nlvr2-statements"
        record.write_text(json.dumps(saved))
    assert predict(run, data, out) == 0
    got, rows = read_csv(out, predictor.classes)
    np.testing.assert_allclose(got, predictor.predict(nlvr2_raw(test)), atol=ATOL, rtol=0)
    assert [r["identifier"] for r in rows] == test.identifiers

    capsys.readouterr()
    message = one_line_error(capsys, predict(run, tmp_path / "run", out))
    assert "no test1.json for --split test; expected an NLVR2 folder" in message
    (tmp_path / "list.json").write_text(json.dumps([["is it red?", "yes", 0]]))
    message = one_line_error(capsys, predict(run, tmp_path / "list.json", out))
    assert "list.json:1: not an NLVR2 line" in message
    message = one_line_error(capsys, predict(run, tmp_path / "p.csv", out))
    assert "expected an NLVR2 folder" in message


def test_vqa_vs_cli_reads_the_release_folder_and_question_files(
    tiny_towers: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_vqa_vs(tmp_path / "vqa-vs")
    backbones = ["--vision-backbone", str(tiny_towers["vision"]), "--text-backbone", str(tiny_towers["text"])]
    quick = ["--min-count", "2", "--seeds", "1", "--max-epochs", "1", "--methods", "i2m2"]
    run = tmp_path / "run"
    assert main(["run", "vqa-vs", "--data-dir", str(data), *backbones, *quick, "--out", str(run)]) == 0
    predictor = load_model(run, method="i2m2")
    splits, _ = read_vqa_vs(data, 2)
    out = tmp_path / "p.csv"
    for split, given, extra in (
        ("test", data, []),
        ("val", data, ["--split", "val"]),
        ("val", data / "Val" / "Val-Ques.json", []),
        ("test", data, ["--split", "IID-Test"]),
    ):
        assert predict(run, given, out, *extra) == 0
        got, rows = read_csv(out, predictor.classes)
        questions = splits[split]
        raw = {
            "image": np.array(
                [str(image_path(data / "images", int(i))) for i in questions.image_ids], object
            ),
            "question": np.array(questions.questions, dtype=object),
        }
        expected = predictor.predict(raw)
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
        assert [int(r["question_id"]) for r in rows] == questions.question_ids.tolist()
        assert [int(r["image_id"]) for r in rows] == questions.image_ids.tolist()
        assert [r["predicted"] for r in rows] == [predictor.classes[int(i)] for i in expected.argmax(1)]
    assert predict(run, data, out, "--missing", "image") == 0
    got, _ = read_csv(out, predictor.classes)
    test = splits["test"]
    expected = predictor.predict({"question": np.array(test.questions, dtype=object)})
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)

    capsys.readouterr()
    message = one_line_error(capsys, predict(run, data, out, "--split", "QT"))
    assert "no QT/QT-Ques.json for --split QT; expected a VQA-VS folder" in message
    nlvr2 = write_nlvr2(tmp_path / "nlvr2")
    message = one_line_error(capsys, predict(run, nlvr2 / "test1.json", out))
    assert "test1.json: not a readable JSON file" in message
    (tmp_path / "bare.json").write_text(json.dumps([{"question_id": 1, "question": "what?"}]))
    message = one_line_error(capsys, predict(run, tmp_path / "bare.json", out))
    assert "bare.json: entry without the VQA v2 field 'image_id'" in message
