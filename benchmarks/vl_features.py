"""Feature extraction and head training throughput for the VQA-VS / NLVR2 experiments (run by hand).

    OMP_NUM_THREADS=1 python benchmarks/vl_features.py [--threads 1] [--images 64] [--texts 256]

Backbones are randomly initialized ``transformers`` models built from configs (no weights are downloaded;
speed and memory depend on the architecture, not on the weight values): a ViT-Tiny and a ViT-Base shaped
vision tower at 224 px, and a 4-layer and a RoBERTa-Base shaped (12-layer, 768) text tower at 32 tokens.
Each is saved to a temporary folder, loaded through :mod:`i2m2.models.backbones` as a run would, and run
in its own subprocess so that its peak memory (``ru_maxrss``) is its own. Then the heads: forward, backward
and an AdamW step of MLP heads on cached features (VQA-VS sizes: 768-d features, 3,129 answers; NLVR2: a
pair and a statement, 2 classes), examples per second. Results: ``benchmarks/results/vl_features.json``
and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).parent / "results"
VISION = {
    "vit-tiny (192-d, 12 layers)": {"hidden_size": 192, "num_hidden_layers": 12, "num_attention_heads": 3},
    "vit-base (768-d, 12 layers)": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12},
}
TEXT = {
    "bert-4L (256-d, 4 layers)": {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4},
    "roberta-base-shaped (768-d, 12 layers)": {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
    },
}


def save_tower(kind: str, name: str, folder: Path) -> None:
    import transformers

    torch.manual_seed(0)
    if kind == "vision":
        size = VISION[name]
        config = transformers.ViTConfig(
            image_size=224, patch_size=16, intermediate_size=4 * size["hidden_size"], **size
        )
        transformers.ViTModel(config).save_pretrained(folder)
        transformers.ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(folder)
        return
    size = TEXT[name]
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(995)]
    (folder.parent / "vocab.txt").write_text("\n".join(words))
    config = transformers.BertConfig(vocab_size=len(words), intermediate_size=4 * size["hidden_size"], **size)
    transformers.BertModel(config).save_pretrained(folder)
    transformers.BertTokenizer(str(folder.parent / "vocab.txt")).save_pretrained(folder)


def measure_one(kind: str, name: str, count: int, batch: int, threads: int) -> dict[str, Any]:
    """Load one tower as a run does and encode ``count`` inputs; in a subprocess of its own."""
    import numpy as np
    from PIL import Image

    from i2m2.data.feature_cache import encode_in_batches
    from i2m2.models.backbones import text_backbone, vision_backbone

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "tower"
        save_tower(kind, name, folder)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if kind == "vision":
            tower = vision_backbone(folder)
            rng = np.random.default_rng(0)
            images = [
                Image.fromarray(rng.integers(0, 255, (256, 320, 3), dtype=np.uint8)) for _ in range(count)
            ]
            start = time.perf_counter()
            features = encode_in_batches(
                lambda ims: tower(torch.stack([tower.image_transform(im) for im in ims])), images, batch
            )
        else:
            tower = text_backbone(folder, max_length=32)
            texts = [" ".join(f"w{(i * 7 + j) % 995}" for j in range(12)) for i in range(count)]
            start = time.perf_counter()
            features = encode_in_batches(lambda ts: tower(tower.tokenize(ts)), texts, batch)
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "kind": kind,
        "backbone": name,
        "inputs": count,
        "batch": batch,
        "feature_dim": int(features.shape[1]),
        "seconds": round(seconds, 2),
        "inputs_per_s": round(count / seconds, 1),
        "peak_rss_mib": round(peak / 1024, 1),
        "rss_before_loading_mib": round(before / 1024, 1),
    }


def head_throughput(name: str, sizes: dict[str, int], classes: int, n: int, batch: int) -> dict[str, Any]:
    """Stage-2 I2M2 step on cached features: every head forward, product, soft CE, backward, AdamW."""
    from i2m2.models.heads import feature_experts
    from i2m2.models.product_of_experts import product_of_experts

    torch.manual_seed(0)
    unimodal, inter = feature_experts(sizes, classes)
    experts = [*unimodal.values(), inter]
    params = [p for e in experts for p in e.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    features = {m: torch.randn(n, d) for m, d in sizes.items()}
    targets = torch.softmax(torch.randn(n, classes), dim=1)
    start = time.perf_counter()
    for i in range(0, n, batch):
        x = {m: f[i : i + batch] for m, f in features.items()}
        logits = [e(x) for e in experts]
        log_probs = product_of_experts(logits, [torch.ones(len(z), dtype=torch.bool) for z in logits])
        loss = -(targets[i : i + batch] * log_probs).sum(dim=1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    parameters = sum(p.numel() for p in params)
    return {
        "heads": name,
        "classes": classes,
        "examples": n,
        "batch": batch,
        "parameters": parameters,
        "seconds": round(seconds, 2),
        "examples_per_s": round(n / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--one", nargs=2, metavar=("KIND", "NAME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, name = args.one
        count = args.images if kind == "vision" else args.texts
        print(json.dumps(measure_one(kind, name, count, 32, args.threads)))
        return
    towers = []
    for kind, names in (("vision", VISION), ("text", TEXT)):
        for name in names:
            command = [sys.executable, __file__, "--one", kind, name, "--threads", str(args.threads)]
            command += ["--images", str(args.images), "--texts", str(args.texts)]
            line = (
                subprocess.run(command, check=True, capture_output=True, text=True)
                .stdout.strip()
                .splitlines()[-1]
            )
            towers.append(json.loads(line))
            print(towers[-1], flush=True)
    torch.set_num_threads(args.threads)
    heads = [
        head_throughput(
            "VQA-VS: image 768 + question 768 -> 3129", {"image": 768, "question": 768}, 3129, 4096, 512
        ),
        head_throughput(
            "NLVR2: pair 2x768 + statement 768 -> 2", {"images": 1536, "statement": 768}, 2, 4096, 256
        ),
    ]
    for h in heads:
        print(h, flush=True)
    result = {
        "device": f"CPU, {args.threads} torch thread(s) ({platform.processor() or platform.machine()})",
        "note": "random towers built from configs (no downloaded weights); shared 2-core machine",
        "torch": torch.__version__,
        "feature_extraction": towers,
        "head_training": heads,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "vl_features.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# VL feature extraction and head training (benchmarks/vl_features.py)\n",
        f"{result['device']}; {result['note']}; torch {torch.__version__}.\n",
        "| tower | inputs | batch | feature dim | inputs/s | peak RSS (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {t['kind']}: {t['backbone']} | {t['inputs']} | {t['batch']} | {t['feature_dim']} | "
        f"{t['inputs_per_s']} | {t['peak_rss_mib']} |"
        for t in towers
    ]
    lines += [
        "",
        "| heads (I2M2 step: 3 heads, product, soft CE, AdamW) | parameters | batch | examples/s |",
        "|---|---|---|---|",
    ]
    lines += [f"| {h['heads']} | {h['parameters']:,} | {h['batch']} | {h['examples_per_s']} |" for h in heads]
    (RESULTS / "vl_features.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
