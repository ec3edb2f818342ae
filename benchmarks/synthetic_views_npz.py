"""Write the synthetic generator's data as ``features`` npz files.

``python benchmarks/synthetic_views_npz.py DIR``: four views (M=4) in the demo's ``both`` regime
(intra 0.9, inter 2.6, noise 1), saved as float64 arrays
as numpy makes them (the data layer casts them to float32). Then::

    i2m2 run features --data-dir DIR --seeds 3 --out runs/views4
    i2m2 analyze runs/views4      # missing_withheld2.png: every pair of views withheld
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from i2m2.data.synthetic import SyntheticTask


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--intra", type=float, default=0.9)
    parser.add_argument("--inter", type=float, default=2.6)
    args = parser.parse_args()
    task = SyntheticTask(num_classes=4, num_modalities=args.views, dim=16, intra=args.intra, inter=args.inter)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("train", 800, 1), ("val", 500, 2), ("test", 2000, 3)):
        data = task.sample(n, seed)
        arrays = {m: x.numpy().astype(np.float64) for m, x in data.inputs.items()}
        np.savez(args.out / f"{name}.npz", labels=data.labels.numpy(), **arrays)  # type: ignore[arg-type]
    print(f"wrote {args.out}/train.npz, val.npz, test.npz ({args.views} views)")


if __name__ == "__main__":
    main()
