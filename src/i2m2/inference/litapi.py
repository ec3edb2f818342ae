"""The LitServe API of ``i2m2 serve``: loads the job once per worker, predicts a batch of requests at once.

Requests arrive already checked (:class:`i2m2.inference.serve.CheckRequests`), so nothing here can fail one
request of a batch for another's fault. Its own module, importing litserve at the top, so that worker
processes (spawned) can unpickle the class by name. ``decode_request`` takes its ``request`` unannotated:
LitServe reads that annotation to decide how to parse the body (none: JSON).
"""

from pathlib import Path
from typing import Any

import litserve as ls
import numpy as np
import torch


class PredictorAPI(ls.LitAPI):
    """One trained job of ``run`` (method, seed and group as chosen when the server started)."""

    def __init__(
        self,
        run: Path,
        method: str,
        seed: int | None,
        group: str | None,
        max_batch_size: int = 32,
        batch_timeout: float = 0.005,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.job = (Path(run), method, seed, group)

    def setup(self, device: str) -> None:
        from i2m2.inference.loading import load_model

        torch.set_num_threads(1)  # one worker per core; batching, not threads, gives the throughput
        self.predictor = load_model(*self.job)

    def decode_request(self, request):  # unannotated: LitServe then parses the body as JSON
        return {m: v for m, v in request.items() if v is not None}

    def batch(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return inputs

    def predict(self, examples: list[dict[str, Any]]) -> list[np.ndarray]:
        """Stack the examples per modality; an example without a modality is masked absent for it."""
        predictor = self.predictor
        spec = predictor.preprocessing.inputs
        arrays, present = {}, {}
        for m in predictor.modalities:
            rows = np.array([m in e for e in examples])
            if rows.any():
                dtype = spec[m].input_dtype
                zero = np.zeros(spec[m].shape, dtype=dtype)
                arrays[m] = np.stack([np.asarray(e.get(m, zero), dtype=dtype) for e in examples])
                present[m] = rows
        return list(predictor.predict(arrays, present))

    def unbatch(self, output: list[np.ndarray]) -> list[np.ndarray]:
        return output

    def encode_response(self, probabilities: np.ndarray) -> dict[str, Any]:
        classes = self.predictor.classes
        return {
            "predicted": classes[int(probabilities.argmax())],
            "probabilities": {c: float(p) for c, p in zip(classes, probabilities.tolist(), strict=True)},
        }
