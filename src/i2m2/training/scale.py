"""Where training runs: the Trainer settings that scale it out, passed through unchanged to Lightning."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class ScaleConfig:
    """Accelerator, devices, strategy and nodes, as Lightning's ``Trainer`` takes them.

    Args:
        accelerator: ``cpu``, ``gpu``, ``auto``, ...
        devices: number of devices per node (or ``auto``).
        strategy: ``auto``, ``ddp``, ``ddp_spawn``, ``fsdp``, ...
        num_nodes: machines taking part (multi-node DDP).
        precision: ``32-true``, ``bf16-mixed``, ...
    """

    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"

    def trainer_kwargs(self) -> dict[str, Any]:
        return asdict(self)
