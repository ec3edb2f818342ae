"""Where training runs: the Trainer settings that scale it out, passed through unchanged to Lightning."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal


@dataclass
class ScaleConfig:
    """Accelerator, devices, strategy and nodes, as Lightning's ``Trainer`` takes them.

    Args:
        accelerator: ``cpu``, ``gpu``, ``cuda``, ``mps`` or ``auto``.
        devices: devices per node, or ``auto``.
        strategy: ``auto``, ``ddp``, ``ddp_spawn``, ``fsdp``, ...
        num_nodes: machines taking part (multi-node DDP).
        precision: ``32-true``, ``bf16-mixed``, ``16-mixed``, ...
    """

    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: int | Literal["auto"] = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"

    def __post_init__(self) -> None:
        if self.devices != "auto" and (not isinstance(self.devices, int) or self.devices < 1):
            raise ValueError(f"devices: expected an integer >= 1 or 'auto', got {self.devices!r}")
        if self.num_nodes < 1:
            raise ValueError(f"num_nodes: expected an integer >= 1, got {self.num_nodes}")

    def check_available(self) -> None:
        """Refuse an accelerator this machine lacks, or more devices than it has (one line, not a traceback
        from deep inside Lightning). ``auto`` is not checked: Lightning picks what exists."""
        import os

        import torch

        accelerator = self.accelerator
        if accelerator == "auto" and not torch.cuda.is_available() and not torch.backends.mps.is_available():
            accelerator = "cpu"
        if accelerator in ("gpu", "cuda"):
            found = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if found == 0:
                raise ValueError(f"accelerator {self.accelerator!r}: no CUDA GPU found; use 'cpu' or 'auto'")
            if isinstance(self.devices, int) and self.devices > found:
                raise ValueError(f"devices: expected at most the {found} GPU(s) found, got {self.devices}")
        elif accelerator == "mps" and not torch.backends.mps.is_available():
            raise ValueError("accelerator 'mps': not available on this machine; use 'cpu' or 'auto'")
        elif accelerator == "cpu" and isinstance(self.devices, int):
            cores = os.cpu_count() or 1
            if self.devices > cores:
                raise ValueError(f"devices: expected at most the {cores} CPU cores found, got {self.devices}")

    def uses_gpu(self) -> bool:
        import torch

        return self.accelerator in ("gpu", "cuda") or (
            self.accelerator == "auto" and torch.cuda.is_available()
        )

    def trainer_kwargs(self) -> dict[str, Any]:
        return asdict(self)
