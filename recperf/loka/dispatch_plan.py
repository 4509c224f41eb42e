"""``DispatchPlan``: each layer's recipe and backend, saved and loaded as JSON.

The file is keyed by layer name, each entry with the layer's kind and shape (in and out
features, groups: the rows M vary and are not part of it), the choice and why, and the
error and speedup behind it; beside the layers, the model it was made for, the budget,
where the timings came from (a device or a cost model) and the versions it was measured
with. Loading checks everything and refuses, with a message saying what is wrong, a file
that is not JSON, not a plan, of an unknown format version, or malformed.
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from recperf.dispatch import BACKENDS
from recperf.jsonfile import parse_json, read_json
from recperf.loka.sites import KINDS, Shape
from recperf.ops.recipes import RECIPES

FORMAT = "recperf.loka.plan"
VERSION = 1


@dataclass
class LayerChoice:
    name: str
    kind: str
    shape: Shape
    recipe: str
    backend: str
    reason: str
    speedup: float | None = None  # over the bf16 baseline, when timed
    errors: dict[str, float | None] = field(default_factory=dict)  # rel_fro per direction
    time_s: float | None = None

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "shape": self.shape.as_dict(),
            "recipe": self.recipe,
            "backend": self.backend,
            "reason": self.reason,
            "speedup": _finite_or_none(self.speedup),
            "errors": {d: _finite_or_none(e) for d, e in self.errors.items()},
            "time_s": _finite_or_none(self.time_s),
        }


@dataclass
class DispatchPlan:
    model: str
    layers: dict[str, LayerChoice]
    budget: float
    min_speedup: float
    target: str
    timing: str
    device: str
    versions: dict[str, str]
    metric: str = "rel_fro"
    created: str = field(
        default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat()
    )

    def counts(self) -> dict[str, int]:
        """How many layers got each recipe."""
        out: dict[str, int] = {}
        for choice in self.layers.values():
            out[choice.recipe] = out.get(choice.recipe, 0) + 1
        return out

    # ---- JSON --------------------------------------------------------------------------
    def as_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "model": self.model,
            "created": self.created,
            "versions": self.versions,
            "target": self.target,
            "timing": self.timing,
            "device": self.device,
            "budget": self.budget,
            "metric": self.metric,
            "min_speedup": self.min_speedup,
            "layers": {name: c.as_dict() for name, c in self.layers.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, allow_nan=False)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> DispatchPlan:
        return cls.from_dict(read_json(path, f"plan {path}"), str(path))

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "<string>") -> DispatchPlan:
        return cls.from_dict(parse_json(text, f"plan {source}"), source)

    @classmethod
    def from_dict(cls, payload: object, source: str = "<dict>") -> DispatchPlan:
        def bad(what: str) -> ValueError:
            return ValueError(f"plan {source}: {what}")

        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            got = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
            raise bad(f"not a LoKA plan: format must be {FORMAT!r}, got {got!r}")
        version = payload.get("version")
        if version != VERSION:
            raise bad(
                f"format version {version!r} is not supported: this recperf reads version "
                f"{VERSION}; make the plan again with `recperf probe`"
            )
        _require(
            payload,
            {
                "model": str,
                "versions": dict,
                "target": str,
                "timing": str,
                "device": str,
                "layers": dict,
            },
            bad,
        )
        _require_optional(payload, {"metric": str, "created": str}, bad)
        for key, value in payload["versions"].items():
            if not isinstance(value, str):
                raise bad(f"versions[{key!r}] must be a str, got {type(value).__name__}")
        budget, min_speedup = payload.get("budget"), payload.get("min_speedup")
        for name, value in (("budget", budget), ("min_speedup", min_speedup)):
            if not _is_number(value) or value < 0:
                raise bad(f"{name} must be a number >= 0, got {_short(value)}")
        layers = {}
        for name, entry in payload["layers"].items():
            layers[name] = _layer(name, entry, bad)
        return cls(
            model=payload["model"],
            layers=layers,
            budget=float(budget),
            min_speedup=float(min_speedup),
            target=payload["target"],
            timing=payload["timing"],
            device=payload["device"],
            versions=dict(payload["versions"]),
            metric=payload.get("metric", "rel_fro"),
            created=payload.get("created", ""),
        )


def _layer(name: str, entry: object, bad) -> LayerChoice:
    if not isinstance(entry, dict):
        raise bad(f"layer {name!r} must be an object, got {type(entry).__name__}")
    fields = {"kind": str, "shape": dict, "recipe": str, "backend": str, "reason": str}
    _require(entry, fields, bad, f"layer {name!r}: ")
    if entry["kind"] not in KINDS:
        raise bad(f"layer {name!r}: kind must be one of {KINDS}, got {entry['kind']!r}")
    if entry["recipe"] not in RECIPES:
        raise bad(
            f"layer {name!r}: recipe must be one of {tuple(RECIPES)}, got {entry['recipe']!r}"
        )
    if entry["backend"] not in (*BACKENDS, "auto"):
        raise bad(
            f"layer {name!r}: backend must be one of {(*BACKENDS, 'auto')}, got "
            f"{entry['backend']!r}"
        )
    shape = entry["shape"]
    values = [shape.get(k) for k in ("in_features", "out_features", "groups")]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values) or (
        min(values[:2]) < 1
    ):
        raise bad(
            f"layer {name!r}: shape must hold in_features, out_features >= 1 and "
            f"groups >= 0, got {_short(shape)}"
        )
    for key in ("speedup", "time_s"):
        if entry.get(key) is not None and not _is_number(entry[key]):
            raise bad(
                f"layer {name!r}: {key} must be a finite number or null, got {_short(entry[key])}"
            )
    errors = entry.get("errors") or {}
    if not isinstance(errors, dict) or not all(e is None or _is_number(e) for e in errors.values()):
        raise bad(
            f"layer {name!r}: errors must map each direction to a finite number or null, "
            f"got {_short(errors)}"
        )
    return LayerChoice(
        name=name,
        kind=entry["kind"],
        shape=Shape(*values),
        recipe=entry["recipe"],
        backend=entry["backend"],
        reason=entry["reason"],
        speedup=entry.get("speedup"),
        errors={d: (None if e is None else float(e)) for d, e in errors.items()},
        time_s=entry.get("time_s"),
    )


def _require(d: dict, fields: dict, bad, prefix: str = "") -> None:
    for key, kind in fields.items():
        if not isinstance(d.get(key), kind):
            raise bad(
                f"{prefix}field {key!r} must be a {kind.__name__}, got "
                f"{type(d.get(key)).__name__ if key in d else 'nothing'}"
            )


def _require_optional(d: dict, fields: dict, bad) -> None:
    for key, kind in fields.items():
        if key in d and not isinstance(d[key], kind):
            raise bad(f"field {key!r} must be a {kind.__name__}, got {type(d[key]).__name__}")


def _short(v: object) -> str:
    """repr for a message: at most 80 characters, whatever the file nests inside."""
    try:
        text = repr(v)
    except RecursionError:
        return f"a deeply nested {type(v).__name__}"
    return text if len(text) <= 80 else text[:77] + "..."


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _finite_or_none(v: float | None) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None
