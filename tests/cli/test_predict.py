"""``i2m2 predict`` and ``i2m2 export`` on a real run; LightningCLI's predict moved to ``predict-batches``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from i2m2 import load_model
from i2m2.cli.lightning import COMMANDS as LIGHTNING_COMMANDS
from i2m2.cli.main import COMMANDS, main
from tests.inference.conftest import features_run  # noqa: F401  (the shared trained run)


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.read_text().splitlines()))


def test_predict_writes_the_probabilities_python_gives(
    features_run: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run, data = features_run
    out = tmp_path / "predictions.csv"
    assert (
        main(
            [
                "predict",
                str(run),
                "--method",
                "i2m2[late]",
                "--input",
                str(data / "test.npz"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "best validation acc" in capsys.readouterr().err
    rows = read_csv(out)
    raw = np.load(data / "test.npz")
    expected = load_model(run, method="i2m2[late]").predict({"a": raw["a"], "b": raw["b"]})
    got = np.array([[float(r[f"p_{c}"]) for c in "012"] for r in rows])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert [r["label"] for r in rows] == [str(v) for v in raw["labels"]]
    assert [r["predicted"] for r in rows] == [str(v) for v in expected.argmax(1)]


def test_missing_drops_a_modality_and_a_folder_of_npy_files_works(
    features_run: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    run, data = features_run
    raw = np.load(data / "test.npz")
    folder = tmp_path / "inputs"
    folder.mkdir()
    np.save(folder / "a.npy", raw["a"])
    np.save(folder / "b.npy", raw["b"])
    out = tmp_path / "p.csv"
    argv = ["predict", str(run), "--method", "i2m2[late]", "--seed", "1", "--input", str(folder)]
    assert main([*argv, "--out", str(out), "--missing", "b"]) == 0
    expected = load_model(run, method="i2m2[late]", seed=1).predict({"a": raw["a"]})
    got = np.array([[float(r[f"p_{c}"]) for c in "012"] for r in read_csv(out)])
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_bad_input_is_one_line(
    features_run: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run, data = features_run
    np.savez(tmp_path / "bad.npz", a=np.zeros((3, 6)))
    argv = ["predict", str(run), "--method", "i2m2[late]", "--out", str(tmp_path / "p.csv"), "--input"]
    assert main([*argv, str(tmp_path / "bad.npz")]) == 2
    assert capsys.readouterr().err.strip().endswith("modality 'a': expected shape (N, 2, 3), got (3, 6)")
    assert main([*argv, str(data / "test.npz"), "--missing", "c"]) == 2
    assert "--missing: unknown modality 'c'" in capsys.readouterr().err


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
def test_export_writes_the_graph_and_checks_onnx(
    features_run: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    format: str,
) -> None:
    out = tmp_path / f"model.{format}"
    assert (
        main(
            ["export", str(features_run[0]), "--method", "i2m2[late]", "--format", format, "--out", str(out)]
        )
        == 0
    )
    assert out.stat().st_size > 0
    err = capsys.readouterr().err
    assert ("onnxruntime matches torch" in err) == (format == "onnx")


def test_lightnings_predict_moved_to_predict_batches() -> None:
    assert "predict-batches" in LIGHTNING_COMMANDS and "predict" not in LIGHTNING_COMMANDS
    assert COMMANDS["predict"][1].startswith("predict new examples")
