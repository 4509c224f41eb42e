"""Malformed batches are clear errors naming the feature, raised before any kernel runs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from recperf.models import build_model
from recperf.models.batch import from_named
from recperf.models.counting import example_batch


@pytest.fixture
def model_and_batch(tiny_spec):
    torch.manual_seed(0)
    return build_model("wukong", tiny_spec, dim=8), example_batch(tiny_spec, 4)


def _with(batch, **changes):
    return dataclasses.replace(batch, **changes)


def _replace_at(seq, i, value):
    out = list(seq)
    out[i] = value
    return tuple(out)


def test_ids_out_of_range(model_and_batch):
    model, batch = model_and_batch
    ids = batch.ids[2].clone()
    ids[1] = 13  # cardinality of s2 is 13
    with pytest.raises(ValueError, match=r"sparse feature 's2': ids must lie in \[0, 13\)"):
        model(_with(batch, ids=_replace_at(batch.ids, 2, ids)))
    ids[1] = -1
    with pytest.raises(ValueError, match=r"'s2'.*got \[-1"):
        model(_with(batch, ids=_replace_at(batch.ids, 2, ids)))


def test_sequence_ids_out_of_vocab_and_empty(model_and_batch):
    model, batch = model_and_batch
    seq = batch.seq_ids[0].clone()
    seq[0, 0] = 17
    with pytest.raises(ValueError, match=r"sequence 'history': ids must lie in \[0, 17\)"):
        model(_with(batch, seq_ids=(seq,)))
    lengths = batch.seq_lengths[0].clone()
    lengths[2] = 0
    with pytest.raises(ValueError, match="sequence 'history' is empty in 1 row"):
        model(_with(batch, seq_lengths=(lengths,)))


def test_nan_dense_and_bad_labels(model_and_batch):
    model, batch = model_and_batch
    dense = batch.dense.clone()
    dense[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"dense has 1 non-finite values \(NaN/inf\)"):
        model(_with(batch, dense=dense))
    labels = batch.labels.clone()
    labels[3] = 2.0
    with pytest.raises(ValueError, match=r"labels must be 0 or 1, got 2\.0"):
        model.loss(_with(batch, labels=labels))
    with pytest.raises(ValueError, match="loss needs a batch with labels"):
        model.loss(_with(batch, labels=None))


def test_wrong_types_and_shapes(model_and_batch):
    model, batch = model_and_batch
    with pytest.raises(TypeError, match=r"takes a recperf\.models\.Batch, got dict"):
        model(batch.as_tensors())
    with pytest.raises(TypeError, match="ids of sparse feature 's0' must be an int64 tensor"):
        model(_with(batch, ids=_replace_at(batch.ids, 0, batch.ids[0].float())))
    with pytest.raises(ValueError, match=r"dense must be \[B, 3\]"):
        model(_with(batch, dense=batch.dense[:, :2]))
    with pytest.raises(ValueError, match="one tensor per sparse feature"):
        model(_with(batch, ids=batch.ids[:4]))
    offsets = batch.offsets[1].clone()
    offsets[0] = 1
    with pytest.raises(ValueError, match="offsets of 's1' must start at 0"):
        model(_with(batch, offsets=_replace_at(batch.offsets, 1, offsets)))


def test_from_named_names_unknown_and_missing(tiny_spec):
    dense = {n: np.zeros(2) for n in tiny_spec.dense}
    sparse = {n: np.zeros(2, dtype=np.int64) for n in tiny_spec.sparse}
    seqs = {"history": (np.ones((2, 3), dtype=np.int64), np.array([1, 3]))}
    batch = from_named(tiny_spec, dense, sparse, np.array([0, 1]), seqs)
    assert batch.size == 2
    with pytest.raises(ValueError, match=r"unknown sparse feature names \['s9'\]"):
        from_named(tiny_spec, dense, {**sparse, "s9": np.zeros(2)}, None, seqs)
    del sparse["s3"]
    with pytest.raises(ValueError, match=r"missing sparse features \['s3'\]"):
        from_named(tiny_spec, dense, sparse, None, seqs)


def test_multi_hot_bags_and_empty_bags_run(tiny_spec):
    """Multi-hot features (several ids per row, some rows with none) are valid input."""
    torch.manual_seed(0)
    model = build_model("dhen", tiny_spec, dim=8)
    batch = example_batch(tiny_spec, 3)
    ids = torch.tensor([1, 2, 3, 4])
    offsets = torch.tensor([0, 0, 3])  # row 0 empty, row 1 three ids, row 2 one id
    out = model(
        _with(
            batch,
            ids=_replace_at(batch.ids, 1, ids),
            offsets=_replace_at(batch.offsets, 1, offsets),
        )
    )
    assert out.shape == (3,) and torch.isfinite(out).all()


# Issue 20, class 5: what fails later inside a kernel is checked at the boundary.
MODELS = ["wukong", "dhen", "dmt", "interformer"]


@pytest.mark.parametrize("name", MODELS)
def test_dense_in_another_dtype_than_the_model(tiny_spec, name):
    torch.manual_seed(0)
    model, batch = build_model(name, tiny_spec, dim=8), example_batch(tiny_spec, 4)
    for dtype in (torch.float64, torch.bfloat16):
        with pytest.raises(TypeError, match=rf"dense must have the model's dtype torch.float32, got {dtype}"):  # fmt: skip
            model(_with(batch, dense=batch.dense.to(dtype)))
    # A float64 model takes float64 dense features (the float64 twin's way).
    model.double()
    assert model(_with(batch, dense=batch.dense.double())).dtype == torch.float64


@pytest.mark.parametrize("name", MODELS)
def test_meta_batch_is_refused(tiny_spec, name):
    model, batch = build_model(name, tiny_spec, dim=8), example_batch(tiny_spec, 4)
    with pytest.raises(ValueError, match=r"batch\.dense is on the meta device"):
        model(batch.to("meta"))


def test_fields_of_the_wrong_type_or_device(model_and_batch):
    model, batch = model_and_batch
    with pytest.raises(TypeError, match=r"^batch\.dense must be a torch\.Tensor, got NoneType"):
        model(_with(batch, dense=None))
    with pytest.raises(TypeError, match=r"^batch\.labels must be a torch\.Tensor, got list"):
        model(_with(batch, labels=[0, 1, 0, 1]))
    offsets = _replace_at(batch.offsets, 3, batch.offsets[3].to("meta"))
    with pytest.raises(ValueError, match=r"batch\.offsets\[3\] must be on batch\.dense's device"):
        model(_with(batch, offsets=offsets))
    with pytest.raises(ValueError, match=r"batch\.labels must be on batch\.dense's device"):
        model(_with(batch, labels=batch.labels.to("meta")))
