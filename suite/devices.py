"""Which devices a run targets, and how many of a kind exist.

``--device`` takes torch device strings (``cpu``, ``cuda``, ``cuda:1``,
``xpu``, a PrivateUse1 name...), comma-separated or repeated.  The default is
CPU plus every accelerator torch reports.
"""
from __future__ import annotations

import torch


class DeviceError(ValueError):
    """A device string that does not parse or is not available in this build."""


def default_devices() -> list[str]:
    devices = ["cpu"]
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and accelerator.is_available():
        devices.append(accelerator.current_accelerator().type)
    elif torch.cuda.is_available():
        devices.append("cuda")
    return devices


def device_count(kind: str) -> int:
    if kind == "cpu":
        return 1
    module = getattr(torch, kind, None)
    if module is not None and hasattr(module, "device_count"):
        try:
            return int(module.device_count())
        except Exception:  # a backend module present but not initialisable
            return 0
    return 0


def parse_devices(values: list[str] | None) -> list[str]:
    """Validate device strings; raise DeviceError with a one-line message."""
    if not values:
        return default_devices()
    devices: list[str] = []
    for value in values:
        for text in (part.strip() for part in value.split(",")):
            if not text:
                continue
            try:
                dev = torch.device(text)
            except (RuntimeError, ValueError) as exc:
                raise DeviceError(f"unknown device {text!r}: {str(exc).splitlines()[0]}") from None
            if dev.type != "cpu":
                count = device_count(dev.type)
                if count == 0:
                    raise DeviceError(f"device {text!r} is not available in this torch build ({torch.__version__})")
                if dev.index is not None and dev.index >= count:
                    raise DeviceError(f"device {text!r} does not exist: torch sees {count} {dev.type} device(s)")
            if text not in devices:
                devices.append(text)
    return devices
