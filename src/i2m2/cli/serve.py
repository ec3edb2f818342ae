"""``i2m2 serve RUN --method i2m2 --port 8000``: a trained job behind HTTP (LitServe, batched requests).

``curl -X POST 127.0.0.1:8000/predict -d '{"left": [...], "right": [...]}'`` returns the predicted class and
each class's probability; leave a modality out to predict without it. Bad requests get HTTP 400.
"""

from __future__ import annotations

import sys

from i2m2.cli.dashes import underscored
from i2m2.cli.predict import load_predictor, model_parser
from i2m2.errors import UserError

OPTIONS = ["max_batch_size", "batch_timeout", "max_body_bytes"]


def serve_command(argv: list[str]) -> int:
    parser = model_parser("i2m2 serve", "Serve a trained job over HTTP with LitServe (POST /predict).")
    parser.add_argument("--host", type=str, default="127.0.0.1", help="0.0.0.0 to accept other machines")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max_batch_size", type=int, default=32, help="requests batched into one forward")
    parser.add_argument("--batch_timeout", type=float, default=0.005, help="seconds a batch waits to fill")
    parser.add_argument("--max_body_bytes", type=int, default=1 << 20, help="larger bodies get HTTP 400")
    parser.add_argument("--workers", type=int, default=1, help="model worker processes")
    values = parser.parse_args(underscored(argv, OPTIONS))
    for name in (*OPTIONS, "workers"):
        value = getattr(values, name)
        if value < 0 or (value == 0 and name != "batch_timeout"):
            raise UserError(f"--{name}: expected a positive number, got {value}")
    try:
        import litserve  # noqa: F401
    except ImportError as err:
        raise UserError("i2m2 serve needs the optional extra: pip install 'i2m2[serve]'") from err
    predictor = load_predictor(values)
    if predictor.preprocessing.unsupported:
        raise UserError(predictor.preprocessing.unsupported)
    piped = [m for m in predictor.modalities if predictor.preprocessing.inputs[m].pipeline is not None]
    if piped:  # complex k-space and .h5 volumes do not travel as JSON arrays; one answer per finding either
        raise UserError(
            f"i2m2 serve: the raw inputs of {piped} are k-space volumes read through a pipeline (complex "
            "values, .h5 files) that JSON requests cannot carry; use 'i2m2 predict RUN --input VOLUME.h5'"
        )
    from i2m2.inference.serve import serve

    print(f"serving on http://{values.host}:{values.port}/predict", file=sys.stderr)
    serve(
        predictor,
        values.run_dir,
        values.port,
        values.host,
        values.max_batch_size,
        values.batch_timeout,
        values.max_body_bytes,
        values.workers,
    )
    return 0
