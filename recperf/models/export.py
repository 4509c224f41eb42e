"""``torch.export`` of the models with a dynamic batch dimension (and dynamic id counts):
``Batch`` registered as a pytree node, every input tensor's first dimension dynamic."""

from __future__ import annotations

import dataclasses

import torch
from torch.export import Dim, ExportedProgram
from torch.utils import _pytree as pytree

from recperf.models.batch import Batch
from recperf.models.common import CTRModel


def register_batch() -> None:
    """Make ``Batch`` a pytree node (once), so export can take it as an input."""
    if Batch not in pytree.SUPPORTED_NODES:
        torch.export.register_dataclass(Batch, serialized_type_name="recperf.models.Batch")


def batch_dynamic_shapes(batch: Batch) -> list:
    """dynamic_shapes for ``batch``: dim 0 of every tensor dynamic (rows, or a feature's id
    count), in the order export flattens a dataclass (its fields that are not None)."""
    dynamic = Dim.AUTO(min=1)
    values = (getattr(batch, f.name) for f in dataclasses.fields(batch))
    return [pytree.tree_map(lambda _: {0: dynamic}, v) for v in values if v is not None]


def export_model(model: CTRModel, batch: Batch) -> ExportedProgram:
    """``model`` exported for inference on batches shaped like ``batch`` (labels are
    dropped: they do not enter the logits) with any number of rows."""
    register_batch()
    # Inputs that alias one another (example_batch shares one offsets tensor between
    # features) are traced as one input: the program would then read that one for all.
    batch = pytree.tree_map(torch.clone, dataclasses.replace(batch, labels=None))
    return torch.export.export(model, (batch,), dynamic_shapes=[batch_dynamic_shapes(batch)])
