"""The four models by name, for the CLI, the benchmarks and the trainer."""

from __future__ import annotations

import dataclasses

from recperf.models.batch import FeatureSpec
from recperf.models.common import CTRModel, ModelConfig
from recperf.models.dhen import DHEN, DHENConfig
from recperf.models.dmt import DMT, DMTConfig
from recperf.models.interformer import InterFormer, InterFormerConfig
from recperf.models.wukong import Wukong, WukongConfig

MODELS: dict[str, tuple[type[CTRModel], type[ModelConfig]]] = {
    "wukong": (Wukong, WukongConfig),
    "dhen": (DHEN, DHENConfig),
    "interformer": (InterFormer, InterFormerConfig),
    "dmt": (DMT, DMTConfig),
}


def build_model(
    name: str, spec: FeatureSpec, config: ModelConfig | None = None, **overrides
) -> CTRModel:
    """``name``'s model for ``spec``: its default config (or ``config``) with ``overrides``
    (unknown fields are a ValueError naming the valid ones)."""
    if name not in MODELS:
        raise ValueError(f"model must be one of {tuple(MODELS)}, got {name!r}")
    cls, config_cls = MODELS[name]
    config = config if config is not None else config_cls()
    known = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"{config_cls.__name__} has no fields {unknown}; fields: {sorted(known)}")
    return cls(spec, dataclasses.replace(config, **overrides))
