"""Every model exports with a dynamic batch dimension (and dynamic bag lengths) and the
exported program gives eager's logits exactly at other sizes."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from recperf.models import MODELS, build_model
from recperf.models.counting import example_batch
from recperf.models.export import export_model


def _multi_hot(batch):
    """Feature 0 with two ids per row: a bag length the export never saw."""
    ids, offsets = list(batch.ids), list(batch.offsets)
    ids[0], offsets[0] = ids[0].repeat_interleave(2), offsets[0] * 2
    return dataclasses.replace(batch, ids=tuple(ids), offsets=tuple(offsets))


@pytest.mark.parametrize(
    "name", [n if n == "wukong" else pytest.param(n, marks=pytest.mark.slow) for n in MODELS]
)
def test_exported_model_matches_eager_at_every_batch_size(name, tiny_spec):
    torch.manual_seed(0)
    model = build_model(name, tiny_spec, dim=8).eval()
    program = export_model(model, example_batch(tiny_spec, 5, seed=1))
    exported = program.module()
    for rows in (1, 3, 11):
        batch = dataclasses.replace(example_batch(tiny_spec, rows, seed=rows), labels=None)
        for b in (batch, _multi_hot(batch)):
            with torch.no_grad():
                assert torch.equal(exported(b), model(b)), f"{name} at batch {rows}"
