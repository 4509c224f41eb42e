"""KJT input: every model gives the same logits and gradients on a torchrec Batch as on the
recperf Batch of the same rows; empty bags, weighted ids and [B+1] offsets are embedded as
a float64 reference says; malformed KJTs are a ValueError naming what is wrong; the
training loop trains from KJT batches to the losses of Batch input."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("torchrec")

from torchrec.datasets.utils import Batch as TorchRecBatch
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from recperf.data import SyntheticConfig, generate
from recperf.models import MODELS, FeatureSpec, SequenceSpec, build_model
from recperf.torchrec import batch_from_torchrec, to_torchrec
from recperf.train.loop import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")

SPEC = FeatureSpec(("d0", "d1"), ("a", "b", "c"), (7, 13, 1), (SequenceSpec("hist", 11, 5),))


def tiny(name, **kw):
    torch.manual_seed(0)
    return build_model(name, SPEC, **{"dim": 8, **kw})


def kjt_batch(B=5, weighted=False, seed=0):
    """A torchrec Batch over SPEC with empty bags, multi-hot bags and empty sequences."""
    g = torch.Generator().manual_seed(seed)
    values, lengths = [], []
    for card in (*SPEC.cardinalities, SPEC.sequences[0].vocab):
        n = torch.randint(0, 4, (B,), generator=g)
        n[0] = 0  # an empty bag / an empty history
        if card == SPEC.sequences[0].vocab:
            n[1] = SPEC.sequences[0].max_len
        values.append(torch.randint(0, card, (int(n.sum()),), generator=g))
        lengths.append(n)
    v = torch.cat(values)
    kjt = KeyedJaggedTensor(
        keys=["a", "b", "c", "hist"],
        values=v,
        lengths=torch.cat(lengths),
        weights=torch.rand(v.numel(), generator=g) if weighted else None,
    )
    labels = torch.randint(0, 2, (B,), generator=g).float()
    return TorchRecBatch(torch.randn(B, 2, generator=g), kjt, labels)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_model_gives_the_same_logits_and_grads_on_kjt_as_on_batch(name):
    model = tiny(name)
    tb = kjt_batch(B=6)
    batch = batch_from_torchrec(tb, SPEC)
    loss_kjt = model.loss(tb)
    grads_kjt = torch.autograd.grad(loss_kjt, list(model.parameters()), allow_unused=True)
    loss = model.loss(batch)
    grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    assert torch.equal(model(tb), model(batch))
    assert torch.equal(loss_kjt, loss) and torch.isfinite(loss)
    for a, b in zip(grads_kjt, grads, strict=True):
        assert (a is None and b is None) or torch.equal(a, b)


def test_round_trip_of_a_batch_through_a_kjt():
    data = generate(SyntheticConfig(rows=40, sequence_length=4))
    batch = data.batch(slice(0, 17))
    back = batch_from_torchrec(to_torchrec(batch, data.spec), data.spec)
    for name in ("ids", "offsets", "seq_ids", "seq_lengths"):
        for x, y in zip(getattr(batch, name), getattr(back, name), strict=True):
            assert torch.equal(x, y), name
    assert torch.equal(batch.dense, back.dense) and torch.equal(batch.labels, back.labels)


@pytest.mark.parametrize("weighted", [False, True])
def test_empty_weighted_bags_and_b_plus_1_offsets_match_a_float64_reference(weighted):
    model = tiny("wukong")
    tb = kjt_batch(B=7, weighted=weighted, seed=3)
    tokens = model.embedding(batch_from_torchrec(tb, SPEC))
    per_key = tb.sparse_features.to_dict()
    for f, name in enumerate(SPEC.sparse):
        jt = per_key[name]
        table = model.embedding.tables[f].weight.double()
        offsets = jt.offsets()  # [B + 1]
        w = jt.weights() if weighted else torch.ones(jt.values().numel())
        for b in range(7):
            lo, hi = int(offsets[b]), int(offsets[b + 1])
            want = (table[jt.values()[lo:hi]] * w[lo:hi].double().unsqueeze(1)).sum(0)
            torch.testing.assert_close(tokens[b, 1 + f].double(), want, rtol=1e-6, atol=1e-6)
        assert not tokens[0, 1 + f].any()  # row 0's bags are empty
    # the empty history of row 0 is the "no history" id 0
    seq = per_key["hist"]
    want = model.embedding.seq_tables[0].weight[0]
    torch.testing.assert_close(tokens[0, 1 + SPEC.num_sparse], want)
    assert int(seq.lengths()[0]) == 0


def test_weighted_features_need_sum_pooling():
    with pytest.raises(ValueError, match="needs pooling='sum'"):
        tiny("wukong", pooling="mean")(kjt_batch(weighted=True))


def replace_kjt(tb, **kw):
    k = tb.sparse_features
    args = {"keys": k.keys(), "values": k.values(), "lengths": k.lengths(), **kw}
    return TorchRecBatch(tb.dense_features, KeyedJaggedTensor(**args), tb.labels)


def test_malformed_kjts_are_value_errors_naming_what_is_wrong():
    model, tb = tiny("dhen"), kjt_batch(B=5)
    k = tb.sparse_features
    with pytest.raises(ValueError, match=r"keys .*unknown \['z'\], missing \['hist'\]"):
        model(replace_kjt(tb, keys=["a", "b", "c", "z"]))
    with pytest.raises(ValueError, match=r"lengths must be >= 0 and sum to the"):
        lengths = k.lengths().clone()
        lengths[-1] += 1
        model(replace_kjt(tb, lengths=lengths))
    with pytest.raises(ValueError, match=r"sparse feature 'b': ids must lie in \[0, 13\)"):
        values = k.values().clone()
        values[k.offsets()[5 + 1] :][:1] = 13  # the first id of key "b"
        model(replace_kjt(tb, values=values))
    with pytest.raises(ValueError, match=r"stride \(batch size\) 5, dense_features \(4, 2\)"):
        model(TorchRecBatch(tb.dense_features[:4], k, tb.labels[:4]))
    with pytest.raises(ValueError, match=r"sequence 'hist': a row holds 6 items, max_len is 5"):
        lengths, values = k.lengths().clone(), torch.cat((k.values(), torch.zeros(1).long()))
        lengths[-4] += 1  # row 1 of "hist" already holds max_len items
        model(replace_kjt(tb, lengths=lengths, values=values))
    with pytest.raises(TypeError, match="KeyedJaggedTensor"):
        model(TorchRecBatch(tb.dense_features, {"a": 1}, tb.labels))


def test_batch_is_pipelineable():
    batch = batch_from_torchrec(kjt_batch(weighted=True), SPEC)
    moved = batch.to("cpu", non_blocking=False)
    assert torch.equal(moved.weights[0], batch.weights[0])
    batch.record_stream  # noqa: B018  (CUDA only; the method exists)
    assert callable(batch.pin_memory)


@pytest.mark.parametrize("name", ["wukong", "dmt"])
def test_the_training_loop_trains_from_kjt_batches_as_from_batches(name):
    data = generate(SyntheticConfig(rows=300, sequence_length=4))
    losses = {}
    for kind in ("batch", "kjt"):
        torch.manual_seed(0)
        model = build_model(name, data.spec, dim=8)
        c = TrainConfig(batch_size=64, progress=False, input=kind)
        losses[kind] = train(model, data, 4, config=c).losses
    assert len(losses["kjt"]) == 4
    torch.testing.assert_close(losses["kjt"], losses["batch"], rtol=1e-6, atol=0)


def test_an_unknown_input_kind_is_refused():
    data = generate(SyntheticConfig(rows=100, sequence_length=0))
    with pytest.raises(ValueError, match="input must be 'batch' or 'kjt', got 'x'"):
        train(tiny_model(data), data, 1, config=TrainConfig(progress=False, input="x"))


def tiny_model(data):
    return build_model("wukong", data.spec, dim=8)
