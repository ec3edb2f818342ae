"""The exported graphs: ONNX in onnxruntime and TorchScript match torch within 1e-5, with and without a
missing modality, with preprocessing inside and a dynamic batch size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from i2m2 import load_model
from i2m2.inference.export import export, input_names, run_onnx


@pytest.mark.parametrize("method", ["i2m2[late]", "i2m2[null-token]"])
@pytest.mark.parametrize("missing", [None, "a", "b"])
def test_onnx_matches_torch_in_onnxruntime(
    features_run: tuple[Path, Path], tmp_path: Path, method: str, missing: str | None
) -> None:
    run, data = features_run
    predictor = load_model(run, method=method, seed=0)
    path = export(predictor, tmp_path / "model.onnx", "onnx")
    raw = np.load(data / "test.npz")
    inputs = {m: raw[m][:37] for m in ("a", "b") if m != missing}  # a batch size the export never saw
    tensors, masks, _ = predictor.prepare(inputs)
    got = run_onnx(path, tensors, masks).numpy()
    np.testing.assert_allclose(got, predictor.predict(inputs), atol=1e-5, rtol=0)


def test_onnx_inputs_and_metadata_name_the_modalities(
    features_run: tuple[Path, Path], tmp_path: Path
) -> None:
    import onnx

    predictor = load_model(features_run[0], method="i2m2[late]", seed=0)
    model = onnx.load(export(predictor, tmp_path / "model.onnx"))
    assert (
        [i.name for i in model.graph.input] == input_names(predictor) == ["a", "b", "present_a", "present_b"]
    )
    assert {p.key for p in model.metadata_props} == {"modalities", "classes", "job"}


def test_torchscript_matches_torch(features_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = features_run
    predictor = load_model(run, method="i2m2[late]", seed=1)
    module = torch.jit.load(str(export(predictor, tmp_path / "model.pt", "torchscript")))
    raw = np.load(data / "test.npz")
    tensors, masks, _ = predictor.prepare({"a": raw["a"][:5]})
    with torch.no_grad():
        got = module(tensors["a"], tensors["b"], masks["a"], masks["b"]).numpy()
    np.testing.assert_allclose(got, predictor.predict({"a": raw["a"][:5]}), atol=1e-6)
