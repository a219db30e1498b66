"""Which device a `--device` value names, checked against this machine before any model loads.

One vocabulary for every command: `cpu`, `cuda`, `cuda:N`, and training's `auto` (cuda when torch
sees a GPU). `is_device` checks the form without torch (argument parsing); `check_device` and
`resolve_device` ask torch what this machine has.
"""
from __future__ import annotations

import re

from embed.constants import AUTO_DEVICE, CPU_DEVICE, CUDA_DEVICE, DEVICE_FORMS

_DEVICE = re.compile(rf"^(?:{CPU_DEVICE}|{CUDA_DEVICE}(?::(\d+))?)$")


def is_device(value: str) -> bool:
    """`value` has the form cpu, cuda or cuda:N (whether this machine has it is not asked)."""
    return _DEVICE.match(value) is not None


def available_devices() -> list[str]:
    """`cpu`, then `cuda:0` .. `cuda:N-1` for the GPUs torch sees."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [CPU_DEVICE, *(f"{CUDA_DEVICE}:{index}" for index in range(count))]


def resolve_device(device: str, check: bool = True) -> str:
    """`device`, with `auto` made `cuda` when torch sees a GPU, else `cpu`; checked (`check_device`) when `check`."""
    if device == AUTO_DEVICE:
        import torch

        device = CUDA_DEVICE if torch.cuda.is_available() else CPU_DEVICE
    if check:
        check_device(device)
    return device


def check_device(device: str) -> None:
    """Raise one line naming `device` and the devices this machine has, when it has not that one.

    Raises:
        ValueError: not of the form cpu, cuda or cuda:N, or a GPU that is not here.
    """
    match = _DEVICE.match(device)
    if match is None:
        raise ValueError(f"--device {device!r}: expected {DEVICE_FORMS}")
    if device == CPU_DEVICE:
        return
    available = available_devices()
    wanted = f"{CUDA_DEVICE}:{match.group(1) or 0}"
    if wanted not in available:
        gpus = len(available) - 1
        here = f"{gpus} CUDA device{'s' if gpus != 1 else ''}" if gpus else "no CUDA device"
        raise ValueError(f"--device {device}: this machine has {here}; available: {', '.join(available)}")
