"""tables="torchrec": the models' sparse tables as one EmbeddingBagCollection give the
logits and gradients of the nn.EmbeddingBag tables with the same weights; tables of other
widths are projected to the model dim; what is not supported is refused by name."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("torchrec")

from torchrec.modules.embedding_modules import EmbeddingBagCollection

from recperf.models import MODELS, FeatureSpec, SequenceSpec, build_model
from recperf.torchrec import to_torchrec
from recperf.torchrec.embedding import table_name

pytestmark = pytest.mark.usefixtures("one_thread")

SPEC = FeatureSpec(("d0",), ("a", "b", "c"), (7, 13, 1), (SequenceSpec("hist", 11, 5),))


def batch(B=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    from recperf.models.batch import Batch

    ids, offsets = [], []
    for card in SPEC.cardinalities:
        n = torch.randint(0, 4, (B,), generator=g)
        n[0] = 0  # an empty bag
        ids.append(torch.randint(0, card, (int(n.sum()),), generator=g))
        offsets.append(torch.cumsum(n, 0) - n)
    lengths = torch.randint(1, 6, (B,), generator=g)
    return Batch(
        torch.randn(B, 1, generator=g),
        tuple(ids),
        tuple(offsets),
        torch.randint(0, 2, (B,), generator=g).float(),
        (torch.randint(0, 11, (B, 5), generator=g),),
        (lengths,),
    )


def pair(name, **kw):
    torch.manual_seed(0)
    nn_model = build_model(name, SPEC, dim=8, **kw)
    torch.manual_seed(0)
    tr_model = build_model(name, SPEC, dim=8, tables="torchrec", **kw)
    state = {
        k: v for k, v in nn_model.state_dict().items() if not k.startswith("embedding.tables.")
    }
    for f, feature in enumerate(SPEC.sparse):
        key = f"embedding.tables.ebc.embedding_bags.{table_name(feature)}.weight"
        state[key] = nn_model.embedding.tables[f].weight.detach().clone()
    tr_model.load_state_dict(state)
    return nn_model, tr_model


@pytest.mark.parametrize("name", sorted(MODELS))
def test_ebc_tables_give_the_logits_and_grads_of_nn_tables(name):
    nn_model, tr_model = pair(name)
    assert any(isinstance(m, EmbeddingBagCollection) for m in tr_model.modules())
    b = batch()
    for kind in (b, to_torchrec(b, SPEC)):
        torch.testing.assert_close(tr_model(kind), nn_model(b), rtol=1e-6, atol=1e-6)
    nn_model.loss(b).backward()
    tr_model.loss(b).backward()
    for f, feature in enumerate(SPEC.sparse):
        ebc = tr_model.embedding.tables.ebc.embedding_bags[table_name(feature)]
        torch.testing.assert_close(ebc.weight.grad, nn_model.embedding.tables[f].weight.grad)


def test_tables_of_other_widths_are_projected_to_the_model_dim():
    model = build_model("wukong", SPEC, dim=8, tables="torchrec", table_dims=(4, 8, 16))
    tables = model.embedding.tables
    assert sorted(tables.proj) == ["a", "c"]
    tokens = model.embedding(batch())
    assert tokens.shape == (6, 1 + 3 + 1, 8)
    b = batch()
    one = b.ids[0][b.offsets[0][1] : b.offsets[0][2]]
    got = tables(b)[0][1]
    ref = tables.proj["a"](tables.ebc.embedding_bags["t_a"].weight[one].sum(0, keepdim=True))[0]
    torch.testing.assert_close(got, ref)
    model.loss(b).backward()
    assert torch.isfinite(tables.proj["a"].weight.grad).all()


def test_unsupported_table_settings_are_refused_by_name():
    with pytest.raises(ValueError, match=r"tables must be one of \('nn', 'torchrec'\), got 'x'"):
        build_model("dhen", SPEC, tables="x")
    with pytest.raises(ValueError, match="table_dims needs tables='torchrec'"):
        build_model("dhen", SPEC, table_dims=(8, 8, 8))
    with pytest.raises(ValueError, match="table_dims must give each of the 3 sparse features"):
        build_model("dhen", SPEC, tables="torchrec", table_dims=(8, 8))
    b = batch()
    b.weights = (torch.ones_like(b.ids[0]).float(), None, None)
    with pytest.raises(ValueError, match="weighted sparse features are not supported"):
        build_model("dhen", SPEC, tables="torchrec")(b)
