"""Checkpoints: written atomically (a temporary file in the same directory, fsync, then
``os.replace``), so a crash mid-write leaves the previous checkpoint intact; loaded only
into a model of the same description (model, feature spec, config)."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

import torch
from torch import nn

FORMAT = 1


def save(path: str | os.PathLike, model: nn.Module, optimizer, step: int, extra=None) -> Path:
    """Write model, optimizer, step and RNG state to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "describe": model.describe(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "torch_rng": torch.get_rng_state(),
        "extra": extra or {},
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _differences(mine, theirs, prefix: str = "") -> list[str]:
    if isinstance(mine, dict) and isinstance(theirs, dict):
        out = []
        for key in sorted(set(mine) | set(theirs)):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in mine or key not in theirs:
                out.append(f"{name} only in {'checkpoint' if key in theirs else 'model'}")
            else:
                out += _differences(mine[key], theirs[key], name)
        return out
    return [] if mine == theirs else [f"{prefix}: model {mine!r}, checkpoint {theirs!r}"]


def load(path: str | os.PathLike, model: nn.Module, optimizer=None) -> int:
    """Restore ``path`` into ``model`` (and ``optimizer``); returns the step. A checkpoint
    of another model, spec or config is a ValueError listing what differs."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, EOFError, RuntimeError) as exc:
        raise ValueError(f"{path} is not a readable recperf checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a recperf checkpoint (format {FORMAT})")
    mine, theirs = model.describe(), payload.get("describe", {})
    if mine.get("model") != theirs.get("model"):
        raise ValueError(
            f"checkpoint {path} was written by another model: "
            f"{theirs.get('model')!r}, not {mine.get('model')!r}"
        )
    diff = _differences(mine, theirs)
    if diff:
        shown = "; ".join(diff[:8]) + (f"; and {len(diff) - 8} more" if len(diff) > 8 else "")
        raise ValueError(f"checkpoint {path} was written by another model or config: {shown}")
    model.load_state_dict(payload["model"])
    if optimizer is not None:
        optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["torch_rng"])
    return int(payload["step"])
