"""Prediction and serving speed of a trained job: ``python benchmarks/predict_serve.py RUN [--method i2m2]``.

1. ``predict`` on CPU (raw inputs checked, preprocessed, every expert, the masked product) against the bare
   model's forward on ready tensors, on the same rows; target <= 1.2x.
2. ``i2m2 serve`` on 127.0.0.1: requests/s and p50/p99 latency with 1, 8 and 32 concurrent clients, each
   phase bounded in time and count. Results go to benchmarks/results/predict_serve.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch

from i2m2 import load_model

RESULTS = Path(__file__).parent / "results"


def throughput(run: Path, method: str, rows: int, repeats: int) -> dict[str, float]:
    predictor = load_model(run, method=method)
    spec = predictor.preprocessing.inputs
    rng = np.random.default_rng(0)
    raw = {m: rng.random((rows, *spec[m].shape)).astype(np.float32) for m in predictor.modalities}
    tensors, masks, _ = predictor.prepare(raw)
    model = predictor.graph.model
    batch = {m: predictor.graph.transforms[m](tensors[m], masks[m]) for m in predictor.modalities}

    def best(call: object) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()  # type: ignore[operator]
            times.append(time.perf_counter() - start)
        return min(times)

    with torch.inference_mode():
        bare = best(lambda: model(batch))
    full = best(lambda: predictor.predict(raw, batch_size=rows))
    return {"rows": rows, "bare_s": bare, "predict_s": full, "ratio": full / bare, "rows_per_s": rows / full}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serving(run: Path, method: str, seconds: float, max_requests: int) -> list[dict[str, float]]:
    predictor = load_model(run, method=method)
    spec = predictor.preprocessing.inputs
    body = json.dumps({m: np.full(spec[m].shape, 0.5).tolist() for m in predictor.modalities}).encode()
    port = free_port()
    command = [sys.executable, "-m", "i2m2.cli.main", "serve", str(run), "--method", method]
    command += ["--seed", str(predictor.about["seed"]), "--port", str(port)]
    server = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}/predict"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        out = []
        for clients in (1, 8, 32):
            out.append(load(url, body, clients, seconds, max_requests))
        return out
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def load(url: str, body: bytes, clients: int, seconds: float, max_requests: int) -> dict[str, float]:
    """``clients`` threads posting ``body`` back to back until ``seconds`` pass or ``max_requests`` answer."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client() -> None:
        while time.perf_counter() < stop and len(latencies) < max_requests:
            request = urllib.request.Request(url, data=body, method="POST")
            request.add_header("content-type", "application/json")
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    response.read()
                with lock:
                    latencies.append(time.perf_counter() - start)
            except OSError:
                with lock:
                    errors[0] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    ms = np.array(latencies or [float("nan")]) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors[0],
        "requests_per_s": len(latencies) / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--method", default="i2m2")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0, help="per concurrency level")
    parser.add_argument("--max_requests", type=int, default=20000, help="per concurrency level")
    args = parser.parse_args()
    torch.set_num_threads(1)
    speed = throughput(args.run, args.method, args.rows, args.repeats)
    served = serving(args.run, args.method, args.seconds, args.max_requests)
    results = {
        "run": str(args.run),
        "method": args.method,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared), torch threads 1",
        "predict": speed,
        "serve": served,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "predict_serve.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Prediction and serving speed",
        "",
        f"`python benchmarks/predict_serve.py {args.run} --method {args.method}` on {results['machine']}.",
        "",
        f"predict on {speed['rows']} raw rows: {speed['predict_s'] * 1000:.1f} ms vs the bare model's "
        f"forward {speed['bare_s'] * 1000:.1f} ms: **{speed['ratio']:.2f}x** (target <= 1.2x), "
        f"{speed['rows_per_s']:.0f} rows/s.",
        "",
        "| clients | requests | errors | requests/s | p50 (ms) | p99 (ms) |",
        "|---|---|---|---|---|---|",
        *(
            f"| {s['clients']} | {s['requests']} | {s['errors']} | {s['requests_per_s']:.0f} | "
            f"{s['p50_ms']:.1f} | {s['p99_ms']:.1f} |"
            for s in served
        ),
    ]
    (RESULTS / "predict_serve.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
