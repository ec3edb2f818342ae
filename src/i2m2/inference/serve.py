"""``i2m2 serve``: a trained job behind HTTP on LitServe (Lightning's serving engine), requests batched.

``POST /predict`` with a JSON object of modality -> one example's array (any modality may be left out or
``null``: its experts drop out of the product) returns ``{"predicted": CLASS, "probabilities": {CLASS: p}}``.
Every request is checked in full before it joins a batch (by :class:`CheckRequests`, in the HTTP process):
invalid JSON, a body over the size limit, an unknown modality, a wrong shape or dtype, NaN or infinite values
get HTTP 400 with one message naming the problem, and never fail the other requests of a batch. Needs the
optional extra ``[serve]``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np

Spec = dict[str, tuple[tuple[int, ...], str]]  # modality -> (one example's shape, dtype)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]
MAX_BODY = 1 << 20  # bytes: a few thousand numbers per example fit many times over


class RequestError(ValueError):
    """A request the server refuses (HTTP 400); the message says what was expected."""


def _constant(name: str) -> Any:
    raise RequestError(
        f"the body holds {name}; expected finite numbers (leave a modality out to mark it absent)"
    )


def check_request(
    body: bytes, spec: Spec, reads: tuple[str, ...], max_bytes: int = MAX_BODY
) -> dict[str, Any]:
    """The request's arrays, checked against ``spec`` (modalities the model ``reads`` must include one)."""
    if len(body) > max_bytes:
        raise RequestError(f"the body has {len(body)} bytes; expected at most {max_bytes}")
    try:
        data = json.loads(body, parse_constant=_constant)
    except RequestError:
        raise
    except ValueError as err:
        raise RequestError(
            f"the body is not valid JSON ({err}); expected an object of modality -> array"
        ) from None
    if not isinstance(data, dict):
        raise RequestError(
            f"the body is a JSON {type(data).__name__}; expected an object of modality -> array"
        )
    unknown = sorted(set(data) - set(spec))
    if unknown:
        raise RequestError(f"unknown modality '{unknown[0]}'; expected some of {list(spec)}")
    given = {m: v for m, v in data.items() if v is not None}
    if not any(m in given for m in reads):
        raise RequestError(f"no modality given; expected some of {list(reads)}")
    arrays = {}
    for modality, value in given.items():
        shape, dtype = spec[modality]
        integer = dtype.startswith(("int", "uint", "bool"))
        try:
            array = np.asarray(value)
        except ValueError:
            array = np.asarray(None)
        if array.dtype.kind not in ("iu" if integer else "iuf") or array.dtype == np.bool_:
            what = "integers" if integer else "numbers"
            raise RequestError(f"modality '{modality}': expected {what} ({dtype}) of shape {list(shape)}")
        if array.shape != shape:
            raise RequestError(
                f"modality '{modality}': expected shape {list(shape)}, got {list(array.shape)}"
            )
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise RequestError(
                f"modality '{modality}': holds a number too large for float64; expected finite"
            )
        arrays[modality] = array
    return arrays


class CheckRequests:
    """ASGI middleware: a POST body is read and checked in full; a bad one gets 400 and goes no further."""

    def __init__(self, app: ASGIApp, spec: Spec, reads: tuple[str, ...], max_bytes: int = MAX_BODY) -> None:
        self.app, self.spec, self.reads, self.max_bytes = app, spec, reads, max_bytes

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= self.max_bytes:
                chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks) if size <= self.max_bytes else b"x" * (self.max_bytes + 1)
        try:
            check_request(body, self.spec, self.reads, self.max_bytes)
        except RequestError as err:
            text = json.dumps({"detail": str(err).replace(f"{self.max_bytes + 1} bytes", f"{size} bytes")})
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(text)).encode())]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": text.encode()})
            return
        # The body is JSON whatever it was sent as (curl -d says form-urlencoded), so LitServe reads it so.
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-type"]
        scope = dict(scope) | {"headers": [*headers, (b"content-type", b"application/json")]}
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def request_spec(predictor: Any) -> Spec:
    """Each modality's one-example shape and dtype, in plain values (what the HTTP process checks)."""
    return {m: (tuple(i.shape), i.dtype) for m, i in predictor.preprocessing.inputs.items()}


def serve(
    predictor: Any,
    run: Path,
    port: int = 8000,
    host: str = "127.0.0.1",
    max_batch_size: int = 32,
    batch_timeout: float = 0.005,
    max_bytes: int = MAX_BODY,
    workers: int = 1,
) -> None:
    """Serve ``predictor`` (loaded by the caller, so a bad run fails here, before the server starts)."""
    import litserve as ls

    from i2m2.inference.litapi import PredictorAPI

    about = predictor.about
    api = PredictorAPI(run, about["method"], about["seed"], about["group"], max_batch_size, batch_timeout)
    middleware = (
        CheckRequests,
        {"spec": request_spec(predictor), "reads": predictor.modalities, "max_bytes": max_bytes},
    )
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=workers, middlewares=[middleware])
    server.run(host=host, port=port, generate_client_file=False)
