"""param_counts and flops_per_example against counts done by hand for small configs."""

from __future__ import annotations

from recperf.models import build_model, flops_per_example, param_counts

D = 8  # embedding dim in every config below


def linear(k, n, bias=True):
    return k * n + (n if bias else 0)


def linear_norm(k, n):  # weight, bias, LayerNorm weight and bias
    return k * n + 3 * n


def test_wukong_counts_by_hand(tiny_spec):
    model = build_model(
        "wukong", tiny_spec, dim=D, dense_hidden=(16,), over_hidden=(12,),
        layers=2, n_f=2, n_l=3, k=4, fm_hidden=(10,),
    )  # fmt: skip
    cards, vocab = sum(tiny_spec.cardinalities), tiny_spec.sequences[0].vocab
    n0 = 1 + 5 + 1  # dense token, 5 sparse tokens, 1 pooled sequence
    n1 = 2 + 3  # n_F + n_L
    embedding = (cards + vocab) * D
    dense_mlp = linear_norm(3, 16) + linear(16, D)

    def layer(n_in):
        fm = n_in * 4 + 2 * n_in * 4  # projection Y [n, k]; LayerNorm over n k
        mlp = linear_norm(n_in * 4, 10) + linear(10, 2 * D)
        lcb = linear(n_in, 3, bias=False)
        residual = 0 if n_in == n1 else linear(n_in, n1, bias=False)
        return fm + mlp + lcb + residual + 2 * D

    over = linear_norm(n1 * D, 12) + linear(12, 1)
    dense = dense_mlp + layer(n0) + layer(n1) + over
    assert param_counts(model) == {
        "embedding": embedding,
        "dense": dense,
        "total": embedding + dense,
    }

    # 2 FLOPs per multiply-add; the FM is X^T.Y then X.T: 2 * (2 n d k).
    def layer_flops(n_in):
        fm = 4 * n_in * D * 4
        mlp = 2 * n_in * 4 * 10 + 2 * 10 * 2 * D
        feature_linears = 2 * n_in * D * 3 + (0 if n_in == n1 else 2 * n_in * D * n1)
        return fm + mlp + feature_linears

    flops = (2 * 3 * 16 + 2 * 16 * D) + layer_flops(n0) + layer_flops(n1)
    flops += 2 * n1 * D * 12 + 2 * 12
    assert flops_per_example(model) == flops


def test_dhen_counts_by_hand(tiny_spec):
    """Two modules: dot (pairwise + MLP) and linear; sum ensemble; linear shortcut."""
    model = build_model(
        "dhen", tiny_spec, dim=D, dense_hidden=(16,), over_hidden=(12,), layers=1,
        modules=("dot", "linear"), ensemble="sum", shortcut="linear", tokens=2,
        dot_hidden=(10,),
    )  # fmt: skip
    n = 7
    pairs = n * (n - 1) // 2
    dense_mlp = linear_norm(3, 16) + linear(16, D)
    dot = linear_norm(pairs, 10)
    projections = linear_norm(10, 2 * D) + linear_norm(n * D, 2 * D)
    shortcut = linear(n, 2, bias=False)
    over = linear_norm(2 * D, 12) + linear(12, 1)
    dense = dense_mlp + dot + projections + shortcut + 2 * D + over
    assert param_counts(model)["dense"] == dense

    flops = 2 * 3 * 16 + 2 * 16 * D  # dense MLP
    flops += 2 * D * pairs + 2 * pairs * 10  # the dots, the dot MLP
    flops += 2 * 10 * 2 * D + 2 * n * D * 2 * D  # the two projections
    flops += 2 * n * D * 2  # shortcut over the feature axis
    flops += 2 * 2 * D * 12 + 2 * 12  # over-arch
    assert flops_per_example(model) == flops
