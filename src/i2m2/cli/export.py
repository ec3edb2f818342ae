"""``i2m2 export RUN --method i2m2 --format onnx|torchscript --out model.onnx``: one graph to deploy.

The ONNX file is checked in onnxruntime against torch right away, with every modality present and with
each one missing in turn, and the largest probability difference is printed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from i2m2.cli.predict import load_predictor, model_parser


def export_command(argv: list[str]) -> int:
    parser = model_parser("i2m2 export", "Export a trained job as an ONNX or TorchScript graph.")
    parser.add_argument("--format", type=Literal["onnx", "torchscript"], default="onnx")
    parser.add_argument("--out", type=Path, required=True, help="the file to write (model.onnx, model.pt)")
    values = parser.parse_args(argv)
    predictor = load_predictor(values)
    from i2m2.inference.export import export, parity

    path = export(predictor, values.out, values.format)
    print(f"wrote {path}", file=sys.stderr)
    if values.format == "onnx":
        worst = parity(predictor, path)
        if worst is not None:
            print(
                f"onnxruntime matches torch: max |difference| {worst:.2e} (any modality missing)",
                file=sys.stderr,
            )
    return 0
