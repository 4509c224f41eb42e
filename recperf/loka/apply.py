"""``apply(model, plan)``: gives each layer its planned recipe and backend, once; nothing
is decided per step after that.

A LinearNorm or GroupedLinearNorm gets its ``recipe`` and ``backend`` attributes set. An
``nn.Linear`` has neither, so it is replaced in its parent by a LinearNorm with
norm="none" that holds the very same Parameter objects (an optimizer built before keeps
working, and the state_dict keys stay ``weight`` and ``bias``).

Refused, before anything changes: a plan made for another model class, a plan naming a
layer the model does not have, or a layer whose kind or shape differ from the plan's. A
layer of the model the plan does not name gets bf16, with one warning listing them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from torch import nn

from recperf.loka.dispatch_plan import DispatchPlan, LayerChoice
from recperf.loka.sites import Site, find_sites, model_name
from recperf.nn import LinearNorm


def linear_as_linear_norm(linear: nn.Linear, recipe: str, backend: str) -> LinearNorm:
    """A LinearNorm(norm="none") computing ``linear`` with its own Parameters."""
    module = LinearNorm(
        linear.in_features,
        linear.out_features,
        bias=linear.bias is not None,
        norm="none",
        recipe=recipe,
        backend=backend,
        device="meta",  # placeholders only: the real Parameters go in next
    )
    module.weight = linear.weight
    if linear.bias is not None:
        module.bias = linear.bias
    module._loka_from_linear = True
    if hasattr(linear, "_loka_pinned"):
        module._loka_pinned = linear._loka_pinned
    return module


def _kind_matches(site: Site, choice: LayerChoice) -> bool:
    if site.kind == choice.kind:
        return True
    # an nn.Linear that an earlier apply turned into a LinearNorm(norm="none")
    converted = getattr(site.module, "_loka_from_linear", False)
    return choice.kind == "linear" and site.kind == "linear_norm" and converted


def _set(model: nn.Module, site: Site, recipe: str, backend: str) -> None:
    if site.kind == "linear":
        parent_name, _, child = site.name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, linear_as_linear_norm(site.module, recipe, backend))
        return
    site.module.recipe = recipe
    site.module.backend = backend


def apply(
    model: nn.Module, plan: DispatchPlan | str | Path, use_backends: bool = True
) -> nn.Module:
    """Sets every planned layer's recipe and backend (see the module docstring); returns
    the model (changed in place). ``use_backends=False`` sets the recipes only, leaving
    each layer's backend to the dispatcher: a plan made for a GPU then runs, with the
    same numbers, on this machine (a recipe fixes the numbers, a backend the speed)."""
    if isinstance(plan, str | Path):
        plan = DispatchPlan.load(plan)
    if not isinstance(plan, DispatchPlan):
        raise TypeError(f"plan must be a DispatchPlan or a path, got {type(plan).__name__}")
    name = model_name(model)
    if plan.model != name:
        raise ValueError(f"plan was made for model {plan.model}, not for {name}")
    sites = {s.name: s for s in find_sites(model)}
    extra = sorted(set(plan.layers) - set(sites))
    if extra:
        raise ValueError(
            f"plan names layers that {type(model).__name__} does not have: {extra} "
            f"(a plan for another model or another configuration?)"
        )
    for layer, choice in plan.layers.items():
        site = sites[layer]
        if not _kind_matches(site, choice) or site.shape != choice.shape:
            raise ValueError(
                f"layer {layer!r} is {site.kind} {site.shape} in the model but "
                f"{choice.kind} {choice.shape} in the plan: the plan is for another shape"
            )
    missing = [n for n in sites if n not in plan.layers]
    if missing:
        warnings.warn(
            f"the plan has no entry for {len(missing)} layer(s), which get bf16: {missing}",
            stacklevel=2,
        )
    for layer, site in sites.items():
        choice = plan.layers.get(layer)
        recipe, backend = (choice.recipe, choice.backend) if choice else ("bf16", "auto")
        backend = backend if use_backends else "auto"
        pinned = site.pinned
        if pinned is not None and recipe != pinned:
            warnings.warn(
                f"layer {layer!r} is pinned to {pinned}; the plan's {recipe} is ignored",
                stacklevel=2,
            )
            recipe = pinned
        _set(model, site, recipe, backend)
    return model
