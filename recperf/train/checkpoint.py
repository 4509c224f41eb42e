"""Checkpoints: written atomically (a temporary file in the same directory, fsync, then
``os.replace``), so a crash mid-write leaves the previous checkpoint intact; loaded only
into a model of the same description (model, feature spec, config).

A checkpoint holds only what ``torch.load(weights_only=True)`` accepts (tensors, dicts, lists,
tuples, str, int, float, bool, None; the model description as a JSON string), so loading one
never runs code. A sha256 over every tensor's name, dtype, shape and bytes and every other
value, written at save time and checked at load, catches a corrupted file (it is no
signature: who can write the file can write a matching hash; what makes a crafted file
harmless is ``weights_only``)."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from recperf.jsonfile import parse_json

FORMAT = 2
_LEAVES = (str, int, float, bool, type(None))
# what load needs, and the type it needs it in
_FIELDS = {
    "describe": (str, "a JSON string"),
    "model": (dict, "a dict"),
    "optimizer": ((list, dict), "a list or dict"),
    "step": (int, "an int"),
    "torch_rng": (torch.Tensor, "a tensor"),
    "sha256": (str, "a string"),
}


def _digest(payload: dict) -> str:
    """sha256 of everything in ``payload`` but the digest itself, walked in stored order. A
    type ``weights_only`` would not load back is a TypeError naming where it is."""
    h = hashlib.sha256()

    def walk(obj, name: str) -> None:
        if isinstance(obj, torch.Tensor):
            t = obj.detach().cpu().contiguous()
            h.update(f"{name}:tensor:{t.dtype}:{tuple(t.shape)}:".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().data)
        elif isinstance(obj, dict):
            h.update(f"{name}:dict:{len(obj)}:".encode())
            for key, value in obj.items():
                if not isinstance(key, _LEAVES):
                    raise TypeError(f"checkpoint entry {name} has a key of type {type(key)}")
                walk(value, f"{name}[{key!r}]")
        elif isinstance(obj, (list, tuple)):
            h.update(f"{name}:{type(obj).__name__}:{len(obj)}:".encode())
            for i, value in enumerate(obj):
                walk(value, f"{name}[{i}]")
        elif isinstance(obj, _LEAVES):
            h.update(f"{name}:{type(obj).__name__}:{obj!r}:".encode())
        else:
            raise TypeError(
                f"checkpoint entry {name} is of type {type(obj).__name__}: a checkpoint holds only "
                "tensors, dicts, lists, tuples, str, int, float, bool and None"
            )

    walk({k: v for k, v in payload.items() if k != "sha256"}, "")
    return h.hexdigest()


def _remove_stale_temporaries(path: Path) -> None:
    """Delete what an earlier save to ``path`` killed mid-write left behind (one writer per
    path: a concurrent save to the same file would lose its temporary)."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        stale.unlink(missing_ok=True)


def save(path: str | os.PathLike, model: nn.Module, optimizer, step: int, extra=None) -> Path:
    """Write model, optimizer, step and RNG state to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "describe": json.dumps(model.describe(), sort_keys=True),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": int(step),
        "torch_rng": torch.get_rng_state(),
        "extra": extra or {},
    }
    payload["sha256"] = _digest(payload)
    _remove_stale_temporaries(path)
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


def _tensor_differences(mine: dict, theirs: dict) -> list[str]:
    out = [
        f"{k} only in {'checkpoint' if k in theirs else 'model'}"
        for k in sorted(mine.keys() ^ theirs.keys())
    ]
    for key in mine.keys() & theirs.keys():
        a, b = mine[key], theirs[key]
        if not isinstance(b, torch.Tensor):
            out.append(f"{key}: checkpoint holds a {type(b).__name__}, not a tensor")
        elif (a.shape, a.dtype) != (b.shape, b.dtype):
            out.append(
                f"{key}: model {tuple(a.shape)} {a.dtype}, checkpoint {tuple(b.shape)} {b.dtype}"
            )
    return sorted(out)


def _refuse_if_different(path, what: str, diff: list[str]) -> None:
    if diff:
        shown = "; ".join(diff[:8]) + (f"; and {len(diff) - 8} more" if len(diff) > 8 else "")
        raise ValueError(f"checkpoint {path} was written by another {what}: {shown}")


def _reason(exc: Exception) -> str:
    """One line for why torch.load failed (its weights_only message is a paragraph)."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0]
        return f"it holds more than tensors and plain values, refused unread ({detail})"
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def read(path: str | os.PathLike) -> dict:
    """The verified payload of the checkpoint at ``path``: a ValueError naming the file for
    one that is truncated, corrupted, foreign or of another format."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as exc:  # whatever the unpickler or the zip reader says, one error
        raise ValueError(f"{path} is not a readable recperf checkpoint: {_reason(exc)}") from exc
    if not isinstance(payload, dict) or "format" not in payload:
        raise ValueError(f"{path} is not a recperf checkpoint (format {FORMAT})")
    if payload["format"] != FORMAT:
        raise ValueError(
            f"{path} is a recperf checkpoint of format {payload['format']!r}; "
            f"this version reads format {FORMAT} only"
        )
    for key, (kind, wanted) in _FIELDS.items():
        if not isinstance(payload.get(key), kind):
            raise ValueError(f"{path} is not a recperf checkpoint: {key!r} missing or not {wanted}")
    try:
        digest = _digest(payload)
    except TypeError as exc:
        raise ValueError(f"{path} is not a recperf checkpoint: {exc}") from None
    except RecursionError:  # the unpickler builds any depth; the walk cannot follow it
        raise ValueError(f"{path} is not a recperf checkpoint: nested too deeply") from None
    if digest != payload["sha256"]:
        raise ValueError(
            f"{path} is corrupted: its content hash is {digest}, the one written at save "
            f"time {payload['sha256']}"
        )
    payload["describe"] = parse_json(payload["describe"], f"{path}: its model description")
    return payload


def load(path: str | os.PathLike, model: nn.Module, optimizer=None) -> int:
    """Restore ``path`` into ``model`` (and ``optimizer``); returns the step. A checkpoint
    of another model, spec or config, or with other weights, is a ValueError listing what
    differs; a damaged or foreign file is a ValueError naming it (see ``read``)."""
    payload = read(path)
    mine = json.loads(json.dumps(model.describe(), sort_keys=True))  # tuples as lists
    theirs = payload["describe"]
    if not isinstance(theirs, dict) or mine.get("model") != theirs.get("model"):
        found = theirs.get("model") if isinstance(theirs, dict) else theirs
        raise ValueError(
            f"checkpoint {path} was written by another model: {found!r}, not {mine.get('model')!r}"
        )
    try:
        diff = _differences(mine, theirs)
    except RecursionError:
        diff = ["the checkpoint's description is nested too deeply to compare"]
    _refuse_if_different(path, "model or config", diff)
    _refuse_if_different(
        path, "model (weights)", _tensor_differences(model.state_dict(), payload["model"])
    )
    if optimizer is not None:  # first: torch checks the groups before it changes anything
        try:
            optimizer.load_state_dict(payload["optimizer"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"checkpoint {path}: the optimizer state does not fit: {exc}") from exc
    model.load_state_dict(payload["model"])  # keys, shapes and dtypes checked above
    torch.set_rng_state(payload["torch_rng"])
    return payload["step"]
