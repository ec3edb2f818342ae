"""``i2m2 export``: a predictor as one ONNX or TorchScript graph, preprocessing and masks inside.

Inputs, in order: each modality's raw batch ``<m>`` ``(batch, *shape)`` then each modality's presence mask
``present_<m>`` bool ``(batch,)``; output ``probabilities`` ``(batch, C)``. The batch size is dynamic. An
absent modality is fed as any values (zeros) with its mask all False. ONNX needs the optional extra
``[export]`` (onnx, onnxscript; onnxruntime to check or run it); the modality names, classes and the job are
written into the file's metadata.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from i2m2.atomic import atomic_write
from i2m2.errors import UserError
from i2m2.inference.graph import ExportGraph
from i2m2.inference.predictor import Predictor
from i2m2.models.fusion.null_token import NullTokenFusion

Format = Literal["onnx", "torchscript"]
OPSET = 17


def example_inputs(predictor: Predictor, batch: int = 2) -> tuple[Tensor, ...]:
    """Zeros of the graph's input shapes and dtypes, every modality present (what tracing runs on)."""
    spec = predictor.preprocessing.inputs
    tensors, masks, _ = predictor.prepare(
        {
            m: torch.zeros((batch, *spec[m].shape), dtype=_raw_dtype(predictor, m))
            for m in predictor.modalities
        }
    )
    return (*(tensors[m] for m in predictor.modalities), *(masks[m] for m in predictor.modalities))


def input_names(predictor: Predictor) -> list[str]:
    return [*predictor.modalities, *(f"present_{m}" for m in predictor.modalities)]


def export(predictor: Predictor, out: Path | str, format: Format = "onnx") -> Path:
    """Write the predictor's graph to ``out`` (atomically); returns the path."""
    out = Path(out)
    if predictor.preprocessing.unsupported:
        raise UserError(predictor.preprocessing.unsupported)
    piped = [m for m in predictor.modalities if predictor.preprocessing.inputs[m].pipeline is not None]
    if piped:
        # fastMRI's pipeline needs complex tensors (ONNX has none) and a per-slice quantile; a pretrained
        # tower's tokenizer and image processor are Python. A graph of model-ready inputs would not be the
        # preprocessing-inside export the other experiments give.
        kinds = {str((predictor.preprocessing.inputs[m].pipeline or {}).get("name")) for m in piped}
        steps = (
            "zero-fill, complex inverse FFT, centre crop, per-slice 99th-percentile scaling"
            if kinds == {"fastmri-kspace"}
            else "a pretrained tower's tokenizer or image processor"
        )
        raise UserError(
            f"export: the raw-input pipeline of {piped} ({steps}) cannot go into an ONNX or TorchScript "
            "graph; predict in Python (i2m2.load_model(RUN).predict) or with 'i2m2 predict'"
        )
    branching = [
        name
        for name, e in predictor.graph.model.named_experts().items()
        if getattr(e, "handles_missing", False) and not isinstance(e, NullTokenFusion)
    ]
    if branching:
        raise UserError(
            f"export: expert(s) {branching} handle missing modalities with data-dependent branches a graph "
            "cannot hold; export a method without them (e.g. late or null-token fusion), or predict in Python"
        )
    graph = ExportGraph(predictor.graph).eval()
    inputs = example_inputs(predictor)
    if format == "torchscript":
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer notes on Python-side shape checks, constant in the graph
            traced = torch.jit.trace(graph, inputs, check_trace=False)
        atomic_write(out, lambda f: torch.jit.save(traced, f))
    elif format == "onnx":
        _onnx(predictor, graph, inputs, out)
    else:
        raise UserError(f"--format: expected onnx or torchscript, got {format!r}")
    return out


def _onnx(predictor: Predictor, graph: ExportGraph, inputs: tuple[Tensor, ...], out: Path) -> None:
    try:
        import onnx
    except ImportError as err:
        raise UserError("--format onnx needs the optional extra: pip install 'i2m2[export]'") from err
    import tempfile

    names = input_names(predictor)
    with (
        tempfile.TemporaryDirectory(prefix="i2m2-export-") as temp,
        warnings.catch_warnings(),
        torch.no_grad(),
    ):
        warnings.simplefilter("ignore")  # tracer notes on Python-side shape checks, constant in the graph
        try:
            torch.onnx.export(
                graph,
                inputs,
                Path(temp) / "model.onnx",
                input_names=names,
                output_names=["probabilities"],
                dynamic_axes={n: {0: "batch"} for n in [*names, "probabilities"]},
                opset_version=OPSET,
                dynamo=False,
            )
        except RuntimeError as err:  # e.g. a packed-sequence GRU (easy-VQA's question encoder)
            raise UserError(
                f"--format onnx: the ONNX exporter cannot hold this model ({str(err).splitlines()[0]}); "
                "use --format torchscript, or predict in Python"
            ) from err
        model = onnx.load(Path(temp) / "model.onnx")
    about = {k: v for k, v in predictor.about.items() if isinstance(v, str | int)}
    metadata = {
        "modalities": json.dumps(list(predictor.modalities)),
        "classes": json.dumps(predictor.classes),
        "job": json.dumps(about),
    }
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    atomic_write(out, lambda f: f.write(model.SerializeToString()))


def _raw_dtype(predictor: Predictor, modality: str) -> torch.dtype:
    """The raw dtype raw examples come in (uint8 pixels; prepare() casts them for the graph)."""
    return getattr(torch, predictor.preprocessing.inputs[modality].dtype)


def run_onnx(path: Path | str, inputs: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
    """Probabilities from an exported ONNX file in onnxruntime (what the export's check and tests run)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {m: x.numpy() for m, x in inputs.items()} | {f"present_{m}": k.numpy() for m, k in present.items()}
    wanted = {i.name for i in session.get_inputs()}
    (probabilities,) = session.run(["probabilities"], {k: v for k, v in feed.items() if k in wanted})
    return torch.from_numpy(probabilities)


def random_inputs(predictor: Predictor, batch: int, seed: int = 0) -> dict[str, Tensor]:
    """Raw inputs on each modality's training scale (standardized ones around their training means)."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for m in predictor.modalities:
        spec = predictor.preprocessing.inputs[m]
        shape = (batch, *spec.shape)
        if spec.standardize is not None:
            scale, mean, std = (torch.from_numpy(v) for v in spec.standardize.expanded(spec.shape))
            center, spread = mean * scale, std * scale
            noise = torch.randn(batch, spec.size, generator=generator, dtype=torch.float64)
            out[m] = (center + noise * spread).float().reshape(shape)
        elif spec.dtype.startswith(("float", "bfloat")):
            out[m] = torch.randn(shape, generator=generator).to(getattr(torch, spec.dtype))
        else:
            out[m] = torch.zeros(shape, dtype=getattr(torch, spec.dtype))
        if spec.bounds is not None:
            out[m] = out[m].clamp(*spec.bounds)
        if not spec.dtype.startswith("float"):
            out[m] = out[m].round().to(getattr(torch, spec.dtype))
    return out


def parity(predictor: Predictor, path: Path | str, batch: int = 64) -> float | None:
    """The largest difference between onnxruntime and torch probabilities, every modality present and each
    one missing in turn (``None`` without onnxruntime)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    raw = random_inputs(predictor, batch)
    worst = 0.0
    for missing in (None, *predictor.modalities):
        inputs = {m: x for m, x in raw.items() if m != missing}
        expected = torch.from_numpy(predictor.predict(inputs))
        tensors, masks, _ = predictor.prepare(inputs)
        got = run_onnx(path, tensors, masks)
        worst = max(worst, float((got - expected).abs().max()))
    return worst
