"""Lightning ``Trainer`` arguments passed through whole: devices, strategy, nodes, precision, loggers, ...

``i2m2 run --trainer.X`` and ``RunOptions(trainer={...})`` take any argument of ``lightning.pytorch.Trainer``
(jsonargparse checks them against its signature). The recipe owns the settings it states (epochs, gradient
clipping) and a job owns its callbacks, so those three are refused here with a pointer to the recipe. A
logger given as ``class_path``/``init_args`` (``--trainer.logger TensorBoardLogger``) is built once per job,
so every job logs into its own version; the CSV learning curve is written beside it either way.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from typing import Any

from i2m2.errors import UserError

# Settings the recipe or the job decides, with where to set them instead.
RECIPE_OWNED = {
    "max_epochs": "the recipe's max_epochs (--pretrain.max_epochs, --finetune.max_epochs) or --max_epochs",
    "gradient_clip_val": "the recipe's gradient_clip_val (--pretrain.gradient_clip_val, ...)",
    "callbacks": "the job's callbacks (checkpointing, early stopping via the recipe's patience)",
}
# One device unless asked: spreading a small job over every GPU (Lightning's "auto") would not speed it up.
DEFAULTS: dict[str, Any] = {"accelerator": "auto", "devices": 1}


def trainer_parameters() -> set[str]:
    """The arguments ``lightning.pytorch.Trainer`` takes."""
    import lightning.pytorch as pl

    return set(inspect.signature(pl.Trainer.__init__).parameters) - {"self"}


def check_trainer_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options with device counts as numbers; refuses unknown or recipe-owned arguments, and an
    accelerator or device count this machine lacks (one line, not a traceback from inside Lightning).
    ``auto`` is left to Lightning, which picks what exists."""
    if not isinstance(options, Mapping):
        raise UserError(f"trainer: expected a mapping of Trainer arguments, got {type(options).__name__}")
    for name in options:
        if name in RECIPE_OWNED:
            raise UserError(f"--trainer.{name}: set by {RECIPE_OWNED[name]}, not by a Trainer option")
    unknown = sorted(set(options) - trainer_parameters())
    if unknown:
        raise UserError(f"trainer: unknown Trainer argument(s) {unknown}; see lightning.pytorch.Trainer")
    checked = dict(options)
    if "devices" in checked:
        checked["devices"] = _devices(checked["devices"])
    nodes = checked.get("num_nodes", 1)
    if not _positive_int(nodes):
        raise UserError(f"--trainer.num_nodes: expected an integer >= 1, got {nodes!r}")
    settings = DEFAULTS | checked
    _check_available(str(settings.get("accelerator")), settings.get("devices"))
    return checked


def _devices(devices: Any) -> Any:
    """An int, a list of device indices, ``-1`` (all) or ``auto``; numbers given as text become numbers
    (the command line reads ``--trainer.devices 2`` as the text "2", which Lightning would accept)."""
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if devices == "auto" or devices == -1 or _positive_int(devices):
        return devices
    if isinstance(devices, list) and devices and all(_positive_int(d + 1) for d in devices):
        return devices
    if isinstance(devices, str) and all(p.strip().isdigit() for p in devices.split(",") if p.strip()):
        return devices  # "0,1": these device indices
    raise UserError(
        f"--trainer.devices: expected an integer >= 1, a list of indices or 'auto', got {devices!r}"
    )


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_available(accelerator: str, devices: Any) -> None:
    import torch
    from lightning.pytorch.accelerators import AcceleratorRegistry

    known = {"auto", "gpu", *AcceleratorRegistry.available_accelerators()}
    if accelerator not in known:
        raise UserError(f"--trainer.accelerator {accelerator!r}: unknown; expected one of {sorted(known)}")
    other = accelerator in AcceleratorRegistry and accelerator not in ("cpu", "cuda", "mps")
    if other and not AcceleratorRegistry[accelerator]["accelerator"].is_available():
        raise UserError(
            f"--trainer.accelerator {accelerator!r}: not available on this machine; use 'cpu' or 'auto'"
        )

    if accelerator == "auto" and not torch.cuda.is_available() and not torch.backends.mps.is_available():
        accelerator = "cpu"
    if accelerator in ("gpu", "cuda"):
        found = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if found == 0:
            raise UserError(f"--trainer.accelerator {accelerator!r}: no CUDA GPU found; use 'cpu' or 'auto'")
        if isinstance(devices, int) and devices > found:
            raise UserError(f"--trainer.devices: expected at most the {found} GPU(s) found, got {devices}")
    elif accelerator == "mps" and not torch.backends.mps.is_available():
        raise UserError("--trainer.accelerator 'mps': not available on this machine; use 'cpu' or 'auto'")
    elif accelerator == "cpu" and isinstance(devices, int):
        cores = os.cpu_count() or 1
        if devices > cores:
            raise UserError(f"--trainer.devices: expected at most the {cores} CPU cores found, got {devices}")


CLUSTER_VARIABLES = ("SLURM_NTASKS", "TORCHELASTIC_RUN_ID", "LSB_JOBID", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
NODE_TIMEOUT = "I2M2_NODE_TIMEOUT"  # seconds a node waits for the others to join (default 600)


def node_timeout() -> float:
    try:
        return float(os.environ.get(NODE_TIMEOUT, "600"))
    except ValueError:
        raise UserError(
            f"{NODE_TIMEOUT}: expected a number of seconds, got {os.environ[NODE_TIMEOUT]!r}"
        ) from None


def joining_nodes(options: Mapping[str, Any]) -> str | None:
    """For a multi-node run, the line that says where this node waits for the others (``None`` for one node).

    Without a cluster manager, every node needs ``MASTER_ADDR``, ``MASTER_PORT`` and its ``NODE_RANK``:
    without them each node would wait on a port of its own, forever, so they are required here.
    """
    nodes = int((DEFAULTS | dict(options)).get("num_nodes", 1))
    if nodes <= 1 or any(v in os.environ for v in CLUSTER_VARIABLES):
        return None
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing:
        raise UserError(
            f"--trainer.num_nodes {nodes}: set {' and '.join(missing)} (the first node's address and a free "
            f"port) and NODE_RANK (0..{nodes - 1}) on every node, then start the same command on each"
        )
    rank = os.environ.get("NODE_RANK", "0")
    where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    return (
        f"node {rank} of {nodes}: waiting for the other nodes to join at {where} "
        f"(gives up after {node_timeout():.0f} s; {NODE_TIMEOUT} to change)"
    )


def uses_gpu(options: Mapping[str, Any]) -> bool:
    """Whether a job with these options trains on a CUDA GPU (for pinned host memory)."""
    import torch

    accelerator = (DEFAULTS | dict(options)).get("accelerator")
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def job_trainer_kwargs(options: Mapping[str, Any], name: str) -> tuple[dict[str, Any], list[Any]]:
    """The Trainer arguments of one job and the user's loggers built for it (named ``name``).

    Returns ``(kwargs without "logger", loggers)``; the caller adds its own CSV logger to the list.
    """
    from lightning.pytorch.cli import instantiate_class

    kwargs = DEFAULTS | {k: v for k, v in options.items() if k != "logger"}
    if int(kwargs.get("num_nodes", 1)) > 1 and kwargs.get("strategy") == "ddp":
        from datetime import timedelta

        from lightning.pytorch.strategies import DDPStrategy

        kwargs["strategy"] = DDPStrategy(timeout=timedelta(seconds=node_timeout()))  # a node that never joins
    given = options.get("logger")
    items = given if isinstance(given, list | tuple) else [given]
    loggers = []
    for item in items:
        if item is None or isinstance(item, bool):  # True/False/None: the CSV curve alone
            continue
        if isinstance(item, Mapping) and "class_path" in item:
            init = dict(item.get("init_args") or {})
            if init.get("version") is None and "version" in _init_parameters(item["class_path"]):
                init["version"] = name  # every job its own folder
            item = instantiate_class((), {"class_path": item["class_path"], "init_args": init})
        loggers.append(item)
    return kwargs, loggers


def _init_parameters(class_path: str) -> set[str]:
    from importlib import import_module

    module, _, attribute = class_path.rpartition(".")
    try:
        cls = getattr(import_module(module), attribute)
    except (ImportError, AttributeError) as err:
        raise UserError(f"--trainer.logger: cannot import {class_path} ({err})") from err
    return set(inspect.signature(cls).parameters)
