"""Built-in experiments predict on their own raw form: a tiny real ``i2m2 run`` of each, then
``load_model(...).predict`` on the raw files must give what the model gives on the loader's own tensors
(with and without a modality), ``i2m2 predict`` must read the experiment's files, and the ONNX export
must carry the preprocessing."""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import easy_vqa
import numpy as np
import pytest
import torch

from i2m2 import load_model
from i2m2.cli.main import main
from i2m2.data.avmnist import load_avmnist
from i2m2.data.mimic import load_mimic
from i2m2.errors import UserError
from i2m2.experiments.mimic import SPLIT_SEED
from i2m2.inference.export import export, run_onnx
from i2m2.inference.predictor import Predictor
from tests.helpers.avmnist import write_avmnist
from tests.helpers.mimic import make_arrays, write_pickle

ATOL = 1e-6


@pytest.fixture(scope="module")
def avmnist_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run folder, data folder): one seed, one epoch of I2M2 with late fusion on MultiBench's files
    (uint8 spectrograms, flat float images)."""
    root = tmp_path_factory.mktemp("avmnist")
    write_avmnist(root / "data", n_train=24, n_test=8, audio_dtype="uint8")
    argv = ["run", "avmnist", "--data-dir", str(root / "data"), "--seeds", "1", "--max-epochs", "1"]
    assert main([*argv, "--methods", "i2m2[lf]", "--out", str(root / "run")]) == 0
    return root / "run", root / "data"


@pytest.fixture(scope="module")
def mimic_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run folder, im.pk): one epoch of I2M2 on the mortality task, with NaN and inf in the records
    (imputed to 0 before z-scoring, as at training time)."""
    root = tmp_path_factory.mktemp("mimic")
    arrays = make_arrays(n=60, seed=1)
    arrays["ep_tdata"][::7, 3, 2:5] = np.nan
    arrays["adm_features_all"][::5, 1] = np.inf
    file = write_pickle(root / "im.pk", arrays)
    argv = ["run", "mimic", "--tasks", "mortality", "--data-dir", str(file), "--seeds", "1"]
    assert main([*argv, "--max-epochs", "1", "--methods", "i2m2", "--out", str(root / "run")]) == 0
    return root / "run", file


def model_output(predictor: Predictor, inputs: dict[str, torch.Tensor]) -> np.ndarray:
    with torch.no_grad():
        return predictor.graph.model(inputs, allow_missing=True).exp().numpy()


def read_csv(path: Path, classes: list[str]) -> tuple[np.ndarray, list[dict[str, str]]]:
    rows = list(csv.DictReader(path.read_text().splitlines()))
    return np.array([[float(r[f"p_{c}"]) for c in classes] for r in rows]), rows


def test_avmnist_saves_its_scaling_as_plain_json_and_predicts_on_raw_arrays(
    avmnist_run: tuple[Path, Path],
) -> None:
    run, data = avmnist_run
    saved = json.loads(next((run / "checkpoints").glob("*i2m2*.inputs.json")).read_text())
    assert "unsupported" not in saved
    assert saved["inputs"]["image"]["standardize"] == {"scale": [255.0], "mean": [0.0], "std": [1.0]}
    assert saved["inputs"]["audio"]["model_shape"] == [1, 112, 112]
    predictor = load_model(run, method="i2m2[lf]")
    image, audio = np.load(data / "image" / "test_data.npy"), np.load(data / "audio" / "test_data.npy")
    assert audio.dtype == np.uint8
    test = load_avmnist(data).test.inputs
    got = predictor.predict({"image": image, "audio": audio})
    np.testing.assert_allclose(got, model_output(predictor, dict(test)), atol=ATOL, rtol=0)
    without_audio = predictor.predict({"image": image})
    np.testing.assert_allclose(
        without_audio, model_output(predictor, {"image": test["image"]}), atol=ATOL, rtol=0
    )
    assert not np.allclose(without_audio, got, atol=1e-4)  # the audio expert did contribute
    square = predictor.predict({"image": image.reshape(-1, 28, 28), "audio": audio.astype(np.float64)})
    np.testing.assert_allclose(square, got, atol=ATOL, rtol=0)


def test_avmnist_refuses_values_off_its_0_255_scale(avmnist_run: tuple[Path, Path]) -> None:
    predictor = load_model(avmnist_run[0], method="i2m2[lf]")
    with pytest.raises(
        UserError, match=r"modality 'image' row 0: values .* outside .* raw range -2.55..257.55"
    ):
        predictor.predict({"image": np.full((2, 784), 300.0)})
    with pytest.raises(UserError, match=r"modality 'audio': expected shape \(N, 112, 112\) or \(N, 12544\)"):
        predictor.predict({"audio": np.zeros((2, 112))})


def test_avmnist_cli_reads_the_datasets_folder_layout(avmnist_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = avmnist_run
    predictor = load_model(run, method="i2m2[lf]")
    image, audio = np.load(data / "image" / "test_data.npy"), np.load(data / "audio" / "test_data.npy")
    argv = ["predict", str(run), "--method", "i2m2[lf]", "--input", str(data)]
    assert main([*argv, "--out", str(tmp_path / "p.csv")]) == 0
    got, rows = read_csv(tmp_path / "p.csv", predictor.classes)
    np.testing.assert_allclose(got, predictor.predict({"image": image, "audio": audio}), atol=ATOL)
    assert [r["label"] for r in rows] == [str(v) for v in np.load(data / "test_labels.npy")]
    assert main([*argv, "--out", str(tmp_path / "q.csv"), "--missing", "audio", "--split", "train"]) == 0
    got, _ = read_csv(tmp_path / "q.csv", predictor.classes)
    train_image = np.load(data / "image" / "train_data.npy")
    np.testing.assert_allclose(got, predictor.predict({"image": train_image}), atol=ATOL)


@pytest.mark.parametrize("missing", [None, "audio"])
def test_avmnist_onnx_holds_the_scaling(
    avmnist_run: tuple[Path, Path], tmp_path: Path, missing: str | None
) -> None:
    run, data = avmnist_run
    predictor = load_model(run, method="i2m2[lf]")
    path = export(predictor, tmp_path / "model.onnx")
    raw = {
        "image": np.load(data / "image" / "test_data.npy"),
        "audio": np.load(data / "audio" / "test_data.npy"),
    }
    inputs = {m: x[:5] for m, x in raw.items() if m != missing}
    tensors, masks, _ = predictor.prepare(inputs)
    np.testing.assert_allclose(run_onnx(path, tensors, masks).numpy(), predictor.predict(inputs), atol=1e-5)


def test_mimic_saves_training_statistics_and_predicts_on_raw_records(mimic_run: tuple[Path, Path]) -> None:
    run, file = mimic_run
    saved = json.loads(next((run / "checkpoints").glob("*i2m2*.inputs.json")).read_text())
    series = saved["inputs"]["timeseries"]
    assert series["impute"] == 0.0 and len(series["standardize"]["mean"]) == 12
    predictor = load_model(run, method="i2m2")
    with file.open("rb") as f:
        arrays = pickle.load(f)  # the test's own fixture
    splits = load_mimic(file, "mortality", SPLIT_SEED)
    order = np.random.default_rng(SPLIT_SEED).permutation(60)
    test_rows = order[6:12]  # the loader's test split: the second tenth of its shuffle
    raw = {"static": arrays["adm_features_all"][test_rows], "timeseries": arrays["ep_tdata"][test_rows]}
    assert not np.isfinite(np.concatenate([raw["static"].ravel(), raw["timeseries"].ravel()])).all()
    test = splits.test.inputs
    np.testing.assert_allclose(predictor.predict(raw), model_output(predictor, dict(test)), atol=ATOL, rtol=0)
    np.testing.assert_allclose(
        predictor.predict({"timeseries": raw["timeseries"]}),
        model_output(predictor, {"timeseries": test["timeseries"]}),
        atol=ATOL,
        rtol=0,
    )
    absent = raw["static"].copy()
    absent[0] = np.nan  # an all-NaN row still marks the modality absent for that example
    alone = model_output(predictor, {"timeseries": test["timeseries"][:1]})
    np.testing.assert_allclose(predictor.predict(raw | {"static": absent})[:1], alone, atol=ATOL, rtol=0)


def test_mimic_cli_reads_im_pk(mimic_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, file = mimic_run
    predictor = load_model(run, method="i2m2")
    with file.open("rb") as f:
        arrays = pickle.load(f)  # the test's own fixture
    raw = {"static": arrays["adm_features_all"], "timeseries": arrays["ep_tdata"]}
    for given, extra in ((file, []), (file.parent, ["--missing", "static"])):
        out = tmp_path / "p.csv"
        assert (
            main(["predict", str(run), "--method", "i2m2", "--input", str(given), "--out", str(out), *extra])
            == 0
        )
        got, _ = read_csv(out, predictor.classes)
        expected = predictor.predict({m: x for m, x in raw.items() if m != "static" or not extra})
        np.testing.assert_allclose(got, expected, atol=ATOL)


def test_mimic_onnx_imputes_and_standardizes(mimic_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, file = mimic_run
    predictor = load_model(run, method="i2m2")
    with file.open("rb") as f:
        arrays = pickle.load(f)  # the test's own fixture
    inputs = {"static": arrays["adm_features_all"][:20], "timeseries": arrays["ep_tdata"][:20]}
    tensors, masks, _ = predictor.prepare(inputs)
    got = run_onnx(export(predictor, tmp_path / "model.onnx"), tensors, masks).numpy()
    np.testing.assert_allclose(got, predictor.predict(inputs), atol=1e-5)


@pytest.fixture(scope="module")
def easy_vqa_run(tmp_path_factory: pytest.TempPathFactory, easy_vqa_images: Path) -> Path:
    """One epoch of I2M2 on 200 training and test questions of the packaged data."""
    root = tmp_path_factory.mktemp("easy-vqa")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("i2m2.data.easy_vqa.cache_dir", lambda: easy_vqa_images)
        argv = ["run", "easy-vqa", "--limit", "200", "--seeds", "1", "--max-epochs", "1", "--methods", "i2m2"]
        assert main([*argv, "--out", str(root / "run")]) == 0
    return root / "run"


def easy_vqa_raw(cache: Path) -> tuple[dict[str, np.ndarray], dict[str, torch.Tensor], list[list]]:
    """The loader's test examples as the package stores them (question strings, PNG paths), the same
    examples as the loader's tensors, and the package's test rows ``[question, answer, image id]``."""
    from i2m2.data.easy_vqa import decoded_images, load_easy_vqa, vocabulary

    folder = Path(easy_vqa.__file__).parent / "data" / "test"
    rows = json.loads((folder / "questions.json").read_text())
    test = load_easy_vqa(0, limit=200, cache=cache).test
    tensors, _ = test.__getitems__(list(range(len(test))))
    image_ids = decoded_images(cache)["test"][0][test.image_index.numpy()]
    encoded = vocabulary().encode([r[0] for r in rows]).numpy()
    text_of = {(int(r[2]), tuple(encoded[k])): r[0] for k, r in enumerate(rows)}
    questions = [
        text_of[(int(i), tuple(t))] for i, t in zip(image_ids, tensors["question"].numpy(), strict=True)
    ]
    raw = {
        "image": np.array([str(folder / "images" / f"{i}.png") for i in image_ids], dtype=object),
        "question": np.array(questions, dtype=object),
    }
    return raw, tensors, rows


def test_easy_vqa_predicts_on_question_strings_and_png_paths(
    easy_vqa_run: Path, easy_vqa_images: Path
) -> None:
    predictor = load_model(easy_vqa_run, method="i2m2")
    saved = json.loads(next((easy_vqa_run / "checkpoints").glob("*i2m2*.inputs.json")).read_text())
    assert saved["inputs"]["question"]["text"]["words"][:2] == ["<pad>", "<unk>"]
    assert saved["classes"] == predictor.classes and len(predictor.classes) == 13
    raw, tensors, _ = easy_vqa_raw(easy_vqa_images)
    got = predictor.predict(raw)
    np.testing.assert_allclose(got, model_output(predictor, tensors), atol=ATOL, rtol=0)
    only_question = predictor.predict({"question": raw["question"]})
    expected = model_output(predictor, {"question": tensors["question"]})
    np.testing.assert_allclose(only_question, expected, atol=ATOL, rtol=0)
    pixels = (tensors["image"].numpy() * 255).round().astype(np.uint8)  # decoded arrays work as well
    np.testing.assert_allclose(predictor.predict(raw | {"image": pixels}), got, atol=ATOL, rtol=0)
    with pytest.raises(UserError, match=r"modality 'image' row 0: .*nowhere.png: image file not found"):
        predictor.predict({"image": np.array(["nowhere.png"], dtype=object)})


def test_easy_vqa_cli_reads_the_packages_layout(
    easy_vqa_run: Path, easy_vqa_images: Path, tmp_path: Path
) -> None:
    predictor = load_model(easy_vqa_run, method="i2m2")
    _, _, rows = easy_vqa_raw(easy_vqa_images)
    package = Path(easy_vqa.__file__).parent / "data" / "test"
    folder = tmp_path / "new"
    (folder / "images").mkdir(parents=True)
    chosen = rows[:15]
    (folder / "questions.json").write_text(json.dumps(chosen))
    for _, _, image_id in chosen:
        (folder / "images" / f"{image_id}.png").write_bytes(
            (package / "images" / f"{image_id}.png").read_bytes()
        )
    out = tmp_path / "p.csv"
    assert main(["predict", str(easy_vqa_run), "--input", str(folder), "--out", str(out)]) == 0
    got, lines = read_csv(out, predictor.classes)
    paths = np.array([str(folder / "images" / f"{r[2]}.png") for r in chosen], dtype=object)
    questions = np.array([r[0] for r in chosen], dtype=object)
    np.testing.assert_allclose(got, predictor.predict({"image": paths, "question": questions}), atol=ATOL)
    assert [line["label"] for line in lines] == [r[1] for r in chosen]


def test_easy_vqa_torchscript_takes_decoded_pixels_and_token_ids(
    easy_vqa_run: Path, easy_vqa_images: Path, tmp_path: Path
) -> None:
    """TorchScript holds the /255 scaling; ONNX cannot hold the question encoder's packed GRU (one error)."""
    predictor = load_model(easy_vqa_run, method="i2m2")
    raw, _, _ = easy_vqa_raw(easy_vqa_images)
    module = torch.jit.load(str(export(predictor, tmp_path / "model.pt", "torchscript")))
    for inputs in (raw, {"question": raw["question"]}):
        tensors, masks, _ = predictor.prepare(inputs)  # strings and paths become uint8 pixels and ids here
        assert tensors["image"].dtype == torch.float32 and tensors["question"].dtype == torch.int64
        with torch.no_grad():
            got = module(tensors["image"], tensors["question"], masks["image"], masks["question"]).numpy()
        np.testing.assert_allclose(got, predictor.predict(inputs), atol=1e-5)
    with pytest.raises(UserError, match="--format onnx: the ONNX exporter cannot hold this model"):
        export(predictor, tmp_path / "model.onnx")
