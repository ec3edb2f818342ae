"""``i2m2 serve`` on 127.0.0.1 with real HTTP: probabilities as in Python, 400 for bad requests, and the
server keeps serving after them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from i2m2 import load_model
from i2m2.inference.serve import RequestError, check_request

SPEC = {"a": ((2, 3), "float32"), "t": ((2,), "int64")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(port: int, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=body, method="POST")
    request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture(scope="module")
def server(features_run: tuple[Path, Path]) -> Iterator[int]:
    port = free_port()
    command = [sys.executable, "-m", "i2m2.cli.main", "serve", str(features_run[0]), "--method", "i2m2[late]"]
    process = subprocess.Popen(
        [*command, "--seed", "0", "--port", str(port), "--max_body_bytes", "20000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
                time.sleep(0.3)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_served_probabilities_match_python_with_and_without_a_modality(
    server: int, features_run: tuple[Path, Path]
) -> None:
    run, data = features_run
    raw = np.load(data / "test.npz")
    predictor = load_model(run, method="i2m2[late]", seed=0)
    for inputs in ({"a": raw["a"][:1], "b": raw["b"][:1]}, {"b": raw["b"][:1]}):
        status, body = post(server, json.dumps({m: x[0].tolist() for m, x in inputs.items()}).encode())
        expected = predictor.predict(inputs)[0]
        assert status == 200
        np.testing.assert_allclose(list(body["probabilities"].values()), expected, atol=1e-6)
        assert body["predicted"] == str(int(expected.argmax()))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"a": ', "not valid JSON"),
        (b'{"c": [1]}', "unknown modality 'c'"),
        (b'{"b": [1, 2]}', "modality 'b': expected shape [4], got [2]"),
        (b'{"b": [1, 2, NaN, 4]}', "NaN"),
        (b'{"b": ["1", "2", "3", "4"]}', "modality 'b': expected numbers"),
        (b"[1, 2]", "the body is a JSON list"),
        (b"{}", "no modality given"),
        (b'{"b": [' + b"1, " * 10000 + b"1]}", "expected at most 20000"),
    ],
)
def test_bad_requests_get_400_with_one_message_and_the_server_keeps_serving(
    server: int, body: bytes, message: str
) -> None:
    status, reply = post(server, body)
    assert status == 400 and message in reply["detail"]
    assert post(server, b'{"b": [0, 0, 0, 0]}')[0] == 200


def test_integer_modalities_refuse_fractions() -> None:
    with pytest.raises(RequestError, match=r"modality 't': expected integers \(int64\)"):
        check_request(b'{"t": [1.5, 2]}', SPEC, ("t",))
    assert check_request(b'{"t": [1, 2], "a": null}', SPEC, ("t",))["t"].tolist() == [1, 2]
