"""NLVR2 and VQA-VS predict on their raw form: image files (NLVR2: pairs of paths) and text strings, from
scratch (resized images, the training vocabulary) and with pretrained towers (their local folders,
recorded in the plain JSON and loaded again at prediction time). A tiny real ``i2m2 run`` of each, then
``load_model(...).predict`` on raw inputs must give what the model gives on the loader's own tensors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from i2m2 import load_model
from i2m2.cli.main import main
from i2m2.data.nlvr2 import load_nlvr2, read_nlvr2_split
from i2m2.data.vqa_vs import read_vqa_vs
from i2m2.errors import UserError
from i2m2.inference.predictor import Predictor
from i2m2.models.backbones import text_backbone, vision_backbone
from tests.helpers.nlvr2 import write_nlvr2
from tests.helpers.vqa_vs import write_vqa_vs

ATOL = 1e-6
IMAGE_SIZE = 16


def model_output(predictor: Predictor, inputs: dict[str, torch.Tensor]) -> np.ndarray:
    with torch.no_grad():
        return predictor.graph.model(inputs, allow_missing=True).exp().numpy()


def loader_test(split: object) -> dict[str, torch.Tensor]:
    tensors, _ = split.__getitems__(list(range(len(split))))  # type: ignore[attr-defined]
    return tensors


def nlvr2_raw(data: Path) -> dict[str, np.ndarray]:
    """The test statements as the release stores them: strings and (left, right) PNG paths."""
    test = read_nlvr2_split(data, "test")
    pairs = np.array([[str(a), str(b)] for a, b in test.image_paths], dtype=object)
    return {"images": pairs, "statement": np.array(test.sentences, dtype=object)}


def test_nlvr2_from_scratch_predicts_on_png_pairs_and_statements(tmp_path: Path) -> None:
    data = write_nlvr2(tmp_path / "nlvr2")
    argv = ["run", "nlvr2", "--data-dir", str(data), "--seeds", "1", "--max-epochs", "1"]
    extra = ["--methods", "i2m2", "--image-size", str(IMAGE_SIZE), "--out", str(tmp_path / "run")]
    assert main([*argv, *extra]) == 0
    saved = json.loads(next((tmp_path / "run" / "checkpoints").glob("*i2m2*.inputs.json")).read_text())
    assert "unsupported" not in saved
    assert saved["inputs"]["images"]["image_file"] == {"size": [IMAGE_SIZE, IMAGE_SIZE], "resize": True}
    assert saved["inputs"]["statement"]["text"]["words"][:2] == ["<pad>", "<unk>"]
    predictor = load_model(tmp_path / "run", method="i2m2")
    raw = nlvr2_raw(data)
    tensors = loader_test(load_nlvr2(data, image_size=IMAGE_SIZE).test)
    got = predictor.predict(raw)
    np.testing.assert_allclose(got, model_output(predictor, tensors), atol=ATOL, rtol=0)
    alone = predictor.predict({"images": raw["images"]})
    expected = model_output(predictor, {"images": tensors["images"]})
    np.testing.assert_allclose(alone, expected, atol=ATOL, rtol=0)
    with pytest.raises(UserError, match=r"modality 'images' row 0: .*nowhere.png: image file not found"):
        predictor.predict({"images": np.array([["nowhere.png", "nowhere.png"]], dtype=object)})


@pytest.fixture
def towers(tiny_towers: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    """Copies of the shared tiny BERT and ViT folders, so a test may take them away."""
    return {k: Path(shutil.copytree(v, tmp_path / "towers" / k)) for k, v in tiny_towers.items()}


def test_nlvr2_frozen_towers_load_their_recorded_folders(towers: dict[str, Path], tmp_path: Path) -> None:
    data = write_nlvr2(tmp_path / "nlvr2")
    backbones = ["--vision-backbone", str(towers["vision"]), "--text-backbone", str(towers["text"])]
    argv = ["run", "nlvr2", "--data-dir", str(data), *backbones, "--seeds", "1", "--max-epochs", "1"]
    assert main([*argv, "--methods", "i2m2", "--out", str(tmp_path / "run")]) == 0
    saved = json.loads(next((tmp_path / "run" / "checkpoints").glob("*i2m2*.inputs.json")).read_text())
    assert saved["inputs"]["images"]["pipeline"]["folder"] == str(towers["vision"].resolve())
    assert saved["inputs"]["statement"]["pipeline"]["features"] is True
    predictor = load_model(tmp_path / "run", method="i2m2")
    vision, text = vision_backbone(towers["vision"]), text_backbone(towers["text"])
    tensors = loader_test(load_nlvr2(data, vision, text).test)  # the cached features of the run
    raw = nlvr2_raw(data)
    np.testing.assert_allclose(predictor.predict(raw), model_output(predictor, tensors), atol=1e-5, rtol=0)
    alone = predictor.predict({"statement": raw["statement"]})
    expected = model_output(predictor, {"statement": tensors["statement"]})
    np.testing.assert_allclose(alone, expected, atol=1e-5, rtol=0)
    shutil.rmtree(towers["vision"])
    fresh = load_model(tmp_path / "run", method="i2m2")  # the statement tower still loads; the images' not
    with pytest.raises(
        UserError, match=rf"the vision backbone folder {towers['vision'].resolve()} .* not there"
    ):
        fresh.predict({"images": raw["images"]})


def test_vqa_vs_frozen_towers_predict_on_coco_paths_and_questions(
    towers: dict[str, Path], tmp_path: Path
) -> None:
    data = write_vqa_vs(tmp_path / "vqa-vs")
    backbones = ["--vision-backbone", str(towers["vision"]), "--text-backbone", str(towers["text"])]
    quick = ["--min-count", "2", "--seeds", "1", "--max-epochs", "1", "--methods", "i2m2"]
    argv = ["run", "vqa-vs", "--data-dir", str(data), *backbones, *quick, "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    predictor = load_model(tmp_path / "run", method="i2m2")
    from i2m2.data.vqa_vs import image_path, load_vqa_vs

    splits, answers = read_vqa_vs(data, 2)
    assert predictor.classes == answers
    test = splits["test"]
    raw = {
        "image": np.array([str(image_path(data / "images", int(i))) for i in test.image_ids], dtype=object),
        "question": np.array(test.questions, dtype=object),
    }
    vision, text = vision_backbone(towers["vision"]), text_backbone(towers["text"])
    loaded, _ = load_vqa_vs(data, 2, vision, text)
    tensors = {m: t for m, t in loader_test(loaded.test).items() if m in ("image", "question")}
    np.testing.assert_allclose(predictor.predict(raw), model_output(predictor, tensors), atol=1e-5, rtol=0)
