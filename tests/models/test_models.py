"""The four models against their plain-torch twins (same weights), forward and backward on
every backend that runs here; torch.compile(fullgraph=True); registry and config errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import cpu_backends
from numerics import assert_close, rel_err

from recperf.models import MODELS, build_model, set_backend, set_recipe, torch_twin
from recperf.models.counting import example_batch


def _pair(name, spec, recipe, backend):
    torch.manual_seed(0)
    model = build_model(name, spec, dim=8)
    set_recipe(model, recipe)
    set_backend(model, backend)
    return model, torch_twin(model)


def _outputs(model, batch):
    """Logits and every parameter's gradient (of a non-trivial loss), by name."""
    model.zero_grad(set_to_none=True)
    out = model(batch)
    out.square().sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return out.detach(), grads


def _exact(model, batch):
    """The float64 twin's logits and gradients: the reference both sides are held to."""
    twin = torch_twin(model).double()
    set_recipe(twin, "fp32")
    batch = dataclasses.replace(batch, dense=batch.dense.double())
    out, grads = _outputs(twin, batch)
    return out, grads


@pytest.mark.parametrize("recipe", ["fp32", "bf16"])
@pytest.mark.parametrize("backend", cpu_backends())
@pytest.mark.parametrize("name", list(MODELS))
def test_model_matches_its_torch_twin(name, backend, recipe, tiny_spec):
    """fp32: recperf equals the twin to fp32 accumulation order. bf16: both round GEMM
    inputs in different places, so each is held to the float64 model, recperf's error
    at most twice the twin's (plus fp32-level slack)."""
    model, twin = _pair(name, tiny_spec, recipe, backend)
    batch = example_batch(tiny_spec, 5, seed=3)
    out, grads = _outputs(model, batch)
    ref, ref_grads = _outputs(twin, batch)
    assert set(grads) == set(ref_grads), f"{name}: gradients for different parameters"
    assert len(grads) > 10
    if recipe == "fp32":
        assert_close(out, ref, torch.float32, f"{name} logits", 2e-5)
        for pname, g in grads.items():
            assert_close(g, ref_grads[pname], torch.float32, f"{name} grad {pname}", 1e-4)
        return
    # Single small gradients (a norm bias's) can cancel to noise in bf16; the whole
    # gradient vector is what training sees.
    exact, exact_grads = _exact(model, batch)
    names = sorted(grads)
    flat = [torch.cat([g[n].flatten().double() for n in names]) for g in (grads, ref_grads)]
    truth = torch.cat([exact_grads[n].flatten() for n in names])
    for what, mine, twins, exact_value in (
        ("logits", out, ref, exact),
        ("gradient", flat[0], flat[1], truth),
    ):
        bound = 2 * rel_err(twins, exact_value) + 1e-3
        assert_close(mine, exact_value, torch.float32, f"{name} {what} (bf16)", bound)


@pytest.mark.parametrize("name", list(MODELS))
def test_model_outputs_depend_on_every_input(name, tiny_spec):
    """No feature is silently dropped: changing one feature's ids changes the logits."""
    torch.manual_seed(0)
    model = build_model(name, tiny_spec, dim=8)
    batch = example_batch(tiny_spec, 4, seed=1)
    base = model(batch).detach()
    for f, card in enumerate(tiny_spec.cardinalities):
        ids = list(batch.ids)
        ids[f] = (ids[f] + 1) % card
        changed = model(type(batch)(batch.dense, tuple(ids), *_rest(batch))).detach()
        assert not torch.equal(changed, base), f"{name}: sparse feature {f} has no effect"
    seq = (batch.seq_ids[0] + 1) % tiny_spec.sequences[0].vocab
    changed = model(
        type(batch)(batch.dense, batch.ids, batch.offsets, batch.labels, (seq,), batch.seq_lengths)
    ).detach()
    assert not torch.equal(changed, base), f"{name}: the sequence has no effect"


def _rest(batch):
    return batch.offsets, batch.labels, batch.seq_ids, batch.seq_lengths


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_compiled_training_step_fullgraph(name, tiny_spec):
    """torch.compile(fullgraph=True) of the model: same logits and gradients as eager."""
    torch.manual_seed(0)
    model = build_model(name, tiny_spec, dim=8)
    batch = example_batch(tiny_spec, 5, seed=2)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)
    out, grads = _outputs(compiled, batch)
    grads = {n.removeprefix("_orig_mod."): g.clone() for n, g in grads.items()}
    ref, ref_grads = _outputs(model, batch)
    assert_close(out, ref, torch.float32, f"compiled {name}", 1e-5)
    assert set(grads) == set(ref_grads)
    for pname, g in grads.items():
        assert_close(g, ref_grads[pname], torch.float32, f"compiled {name} grad {pname}", 1e-4)


def test_build_model_errors(tiny_spec):
    with pytest.raises(ValueError, match="model must be one of"):
        build_model("dlrm", tiny_spec)
    with pytest.raises(ValueError, match=r"has no fields \['widht'\]"):
        build_model("wukong", tiny_spec, widht=3)
    with pytest.raises(ValueError, match="layers must be >= 1"):
        build_model("wukong", tiny_spec, layers=0)
    with pytest.raises(ValueError, match="modules must be a non-empty tuple"):
        build_model("dhen", tiny_spec, modules=("dot", "moe"))
    with pytest.raises(ValueError, match="shortcut 'identity' needs the token count kept"):
        build_model("dhen", tiny_spec, shortcut="identity", tokens=3)
    with pytest.raises(ValueError, match="pooling must be"):
        build_model("dhen", tiny_spec, pooling="max")
    with pytest.raises(ValueError, match="interaction must be one of"):
        build_model("interformer", tiny_spec, interaction="mlp")
