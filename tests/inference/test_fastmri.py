"""fastMRI predicts on raw k-space: a tiny real ``i2m2 run fastmri-knee`` on the phantom, then
``load_model(...).predict`` on the ``.h5`` volumes (and on k-space arrays) must give what the model gives on
the loader's own tensors, with and without a modality; ``i2m2 predict`` reads the volumes; export refuses
with one message (the FFT pipeline cannot go into a graph)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from i2m2 import load_model
from i2m2.cli.main import main
from i2m2.data.fastmri import FASTMRI_FINDINGS, FastMRISlices, load_fastmri
from i2m2.data.fastmri_phantom import phantom_max_width, write_phantom_dataset
from i2m2.errors import DataError, UserError
from i2m2.inference.export import export
from i2m2.inference.predictor import Predictor

SIZE = 32
ATOL = 1e-6


@pytest.fixture(scope="module")
def fastmri_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run folder, phantom folder): one seed, one epoch of I2M2 on a 6-volume phantom."""
    root = tmp_path_factory.mktemp("fastmri")
    data = write_phantom_dataset(root / "data", volumes=6, slices=3, size=SIZE, seed=5)
    argv = [
        "run", "fastmri-knee", "--data-dir", str(data), "--crop", str(SIZE),
        "--max-width", str(phantom_max_width(SIZE)), "--width", "4", "--preset", "cpu",
        "--max-epochs", "1", "--threads", "1", "--seeds", "1", "--methods", "i2m2",
        "--out", str(root / "run"),
    ]  # fmt: skip
    assert main(argv) == 0
    return root / "run", data


MODALITIES = ("magnitude", "phase")


def held_out(data: Path) -> FastMRISlices:
    """The run's test split (volume split seed 0, the experiment's default), read by the loader."""
    _, _, test = load_fastmri(data, 0, crop=SIZE, max_width=phantom_max_width(SIZE), modalities=MODALITIES)
    return test


def loader_tensors(split: FastMRISlices) -> dict[str, torch.Tensor]:
    """Every example of a split as the loader gives it, stacked per modality."""
    examples = [split[i][0] for i in range(len(split))]
    return {m: torch.stack([e[m] for e in examples]) for m in MODALITIES}


def model_output(predictor: Predictor, inputs: dict[str, torch.Tensor]) -> np.ndarray:
    with torch.no_grad():
        return predictor.graph.model(inputs, allow_missing=True).exp().numpy()


def test_fastmri_saves_its_pipeline_settings_as_plain_json(fastmri_run: tuple[Path, Path]) -> None:
    run, _ = fastmri_run
    saved = json.loads(next((run / "checkpoints").glob("*i2m2*.inputs.json")).read_text())
    assert "unsupported" not in saved
    assert saved["inputs"]["phase"]["pipeline"] == {
        "name": "fastmri-kspace",
        "image": "phase",
        "crop": SIZE,
        "max_width": phantom_max_width(SIZE),
        "zero_fill": True,
    }
    assert saved["tasks"] == list(FASTMRI_FINDINGS)


def test_fastmri_predicts_on_h5_volumes_and_kspace_arrays(fastmri_run: tuple[Path, Path]) -> None:
    run, data = fastmri_run
    predictor = load_model(run, method="i2m2")
    test = held_out(data)
    files = np.array([str(v.path) for v in test.volumes], dtype=object)
    tensors = loader_tensors(test)
    got = predictor.predict({"magnitude": files, "phase": files})
    assert got.shape == (len(test), len(FASTMRI_FINDINGS), 2)
    np.testing.assert_allclose(got, model_output(predictor, tensors), atol=ATOL, rtol=0)
    alone = predictor.predict({"magnitude": files})
    expected = model_output(predictor, {"magnitude": tensors["magnitude"]})
    np.testing.assert_allclose(alone, expected, atol=ATOL, rtol=0)
    assert not np.allclose(alone, got, atol=1e-4)  # the phase experts did contribute
    first = test.volumes[0]
    with h5py.File(first.path, "r") as f:
        kspace = np.asarray(f["kspace"])  # complex64 (slices, 2 * SIZE, W)
    from_arrays = predictor.predict({"magnitude": kspace, "phase": kspace})
    np.testing.assert_allclose(from_arrays, got[: first.num_slices], atol=ATOL, rtol=0)
    ready = predictor.predict(
        {m: t.numpy() for m, t in tensors.items()}
    )  # model-ready images pass as they are
    np.testing.assert_allclose(ready, got, atol=ATOL, rtol=0)


def test_fastmri_refuses_bad_raw_inputs_with_one_message(
    fastmri_run: tuple[Path, Path], tmp_path: Path
) -> None:
    predictor = load_model(fastmri_run[0], method="i2m2")
    wide = np.zeros((1, 2 * SIZE, phantom_max_width(SIZE) + 2), dtype=np.complex64)
    with pytest.raises(
        UserError, match=r"modality 'magnitude' row 0: k-space width 50 exceeds the maximum 48"
    ):
        predictor.predict({"magnitude": wide})
    with pytest.raises(UserError, match=r"modality 'phase': expected complex k-space slices"):
        predictor.predict({"phase": np.zeros((1, 2 * SIZE, SIZE), dtype=np.float32)})
    with pytest.raises(DataError, match=r"nowhere.h5: no such file"):
        predictor.predict({"magnitude": np.array([str(tmp_path / "nowhere.h5")], dtype=object)})
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match=r"bad.h5: cannot read as HDF5"):
        predictor.predict({"magnitude": np.array([str(tmp_path / "bad.h5")], dtype=object)})


def test_fastmri_cli_reads_h5_volumes(fastmri_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = fastmri_run
    predictor = load_model(run, method="i2m2")
    test = held_out(data)
    folder = tmp_path / "new"
    folder.mkdir()
    for volume in test.volumes:
        (folder / volume.path.name).write_bytes(volume.path.read_bytes())
    files = np.array([str(f) for f in sorted(folder.glob("*.h5"))], dtype=object)
    for given, extra in ((folder, []), (Path(files[0]), ["--missing", "phase"])):
        out = tmp_path / "p.csv"
        assert main(["predict", str(run), "--input", str(given), "--out", str(out), *extra]) == 0
        rows = list(csv.DictReader(out.read_text().splitlines()))
        got = np.array(
            [[[float(r[f"p_{t}_{c}"]) for c in predictor.classes] for t in FASTMRI_FINDINGS] for r in rows]
        )
        chosen = files if not extra else files[:1]
        expected = predictor.predict({"magnitude": chosen} | ({} if extra else {"phase": chosen}))
        np.testing.assert_allclose(got, expected, atol=ATOL)
        names = [Path(f).stem for f in chosen for _ in range(test.volumes[0].num_slices)]
        assert [r["volume"] for r in rows] == names
        assert [int(r["slice"]) for r in rows] == [
            s for _ in chosen for s in range(test.volumes[0].num_slices)
        ]
        assert rows[0]["predicted_acl"] in predictor.classes


def test_fastmri_export_refuses_the_fft_pipeline(fastmri_run: tuple[Path, Path], tmp_path: Path) -> None:
    predictor = load_model(fastmri_run[0], method="i2m2")
    for fmt in ("onnx", "torchscript"):
        with pytest.raises(
            UserError,
            match=r"pipeline of \['magnitude', 'phase'\] \(zero-fill, complex inverse FFT",
        ):
            export(predictor, tmp_path / "model", fmt)  # type: ignore[arg-type]


def test_fastmri_serve_refuses_kspace_over_json(
    fastmri_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", str(fastmri_run[0]), "--port", "0"]) == 2
    assert "JSON requests cannot carry; use 'i2m2 predict RUN --input VOLUME.h5'" in capsys.readouterr().err
