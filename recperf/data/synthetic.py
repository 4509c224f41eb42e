"""A synthetic CTR data set that knows every row's true click probability, so the best
AUC any model can reach on it (the Bayes AUC) is known.

Defaults (``SyntheticConfig``), and why:

* 13 dense features, standard normal (Criteo's shape);
* 26 categorical features with cardinalities spaced geometrically from 10 to 5,000 (a
  spread like Criteo's, at a size a CPU trains in minutes), values drawn with Zipf-like
  frequencies (p(rank r) ~ r^-1.5; ids are the ranks shuffled). Real logs are this
  skewed; with r^-1.1 a third of the largest feature's rows fell on values seen under
  a thousand times in a million rows (under a tenth with r^-1.5), whose effects are
  estimated noisily at that size: every model stayed 0.03 under the Bayes AUC, and a
  model given the planted structure itself reached only 0.022 under it;
* a hidden latent vector (dimension 4) per categorical value, centred under the value
  frequencies: an interaction then has no first-order part a linear model could use;
* tail shrinkage 3e-2: the effects (weight and latent) of a value with frequency p have
  standard deviation sqrt(p / (p + 0.03)), so the long tail of rare values carries little
  signal, as in real logs (a value seen a handful of times cannot be learned, by any
  model; with 1e-3 most of the 5,000-value feature's rows held a value with a full-sized
  but unlearnable effect, and every model, logistic regression included, fitted noise);
* the interactions live among the 10 lowest-cardinality features (10 to 94 values): 20
  planted pairs <u_a, u_b> of the 45 possible ones and 5 three-way terms
  sum_k u_a[k] u_b[k] u_c[k], so each value's latent is seen often enough to be learned
  (with 13 features, up to 197 values, a latent got a tenth of the rows);
* a sequence of up to 20 item ids per row (1,000 items, Zipf-like, length uniform in
  1..20) with item latents; the label depends on it through <mean item latent, latent of
  C4's value> (C4: 21 values, so the term is learnable from a few hundred thousand rows;
  the earlier target, C21 with 1,443 values, was not);
* the logit: a first-order part (a weight per categorical value, a coefficient per dense
  feature), the pairs, the triples and the sequence term; each part scaled to unit
  variance, mixed with variance shares 0.40 / 0.35 / 0.10 / 0.15, then the whole logit
  scaled so that the Bayes AUC is 0.845 (bisection on a calibration sample; inside the
  0.75..0.85 the issue asks for, near its top: the stronger the signal per row, the
  closer a model trained on a million rows gets to the Bayes AUC) and shifted so that
  the mean click rate is 0.25;
* labels ~ Bernoulli(sigmoid(logit)).

``rows`` (200,000 by default) is only the sample size: the learning tests draw more rows
of the same distribution. Everything is a function of the seed.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields

import numpy as np

from recperf.data.table import CTRData
from recperf.models.batch import FeatureSpec, SequenceSpec


@dataclass(frozen=True)
class SyntheticConfig:
    """The generator's knobs (module docstring for what they mean)."""

    rows: int = 200_000
    num_dense: int = 13
    num_sparse: int = 26
    min_cardinality: int = 10
    max_cardinality: int = 5_000
    zipf_exponent: float = 1.5
    tail_shrinkage: float = 3e-2
    latent_dim: int = 4
    pairs: int = 20
    interaction_features: int = 10
    triples: int = 5
    sequence_length: int = 20  # 0: no sequence
    sequence_vocab: int = 1_000
    sequence_target: int = 3  # the categorical feature the sequence interacts with (C4)
    shares: tuple[float, float, float, float] = (0.40, 0.35, 0.10, 0.15)
    bayes_auc: float = 0.845
    click_rate: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):  # types first: rows=2.5 is refused, not rounded
            value = getattr(self, f.name)
            if f.type == "int" and (
                isinstance(value, bool) or not isinstance(value, numbers.Integral)
            ):
                raise TypeError(f"{f.name} must be an int, got {value!r}")
            if f.type == "float" and not _finite_number(value):
                raise TypeError(f"{f.name} must be a finite number, got {value!r}")
        if not isinstance(self.shares, tuple | list) or not all(map(_finite_number, self.shares)):
            raise TypeError(f"shares must be 4 finite numbers, got {self.shares!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.rows < 1 or self.num_sparse < 2 or self.min_cardinality < 2:
            raise ValueError("rows >= 1, num_sparse >= 2 and min_cardinality >= 2 are required")
        if self.num_dense < 0 or self.max_cardinality < self.min_cardinality:
            raise ValueError("num_dense >= 0 and max_cardinality >= min_cardinality are required")
        if self.zipf_exponent <= 0 or self.tail_shrinkage < 0 or self.latent_dim < 1:
            raise ValueError(
                "zipf_exponent > 0, tail_shrinkage >= 0 and latent_dim >= 1 are required"
            )
        if not 2 <= self.interaction_features <= self.num_sparse:
            raise ValueError(
                f"interaction_features must be in [2, num_sparse={self.num_sparse}], "
                f"got {self.interaction_features}"
            )
        K = self.interaction_features
        if not 0 <= self.pairs <= K * (K - 1) // 2:
            raise ValueError(f"pairs must be in [0, {K * (K - 1) // 2}] for {K} features")
        if self.triples < 0 or (self.triples and K < 3):
            raise ValueError("triples must be >= 0, and need interaction_features >= 3")
        if len(self.shares) != 4 or min(self.shares) < 0 or sum(self.shares) <= 0:
            raise ValueError(f"shares must be 4 non-negative numbers, got {self.shares}")
        if not 0.5 < self.bayes_auc < 1 or not 0 < self.click_rate < 1:
            raise ValueError("bayes_auc must be in (0.5, 1) and click_rate in (0, 1)")
        if self.sequence_length < 0:
            raise ValueError(f"sequence_length must be >= 0, got {self.sequence_length}")
        if self.sequence_length and self.sequence_vocab < 2:
            raise ValueError(f"sequence_vocab must be >= 2, got {self.sequence_vocab}")
        if self.sequence_length and not 0 <= self.sequence_target < self.num_sparse:
            raise ValueError(
                f"sequence_target must be a categorical feature index in "
                f"[0, {self.num_sparse}), got {self.sequence_target}"
            )


def _finite_number(v: object) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def cardinalities(c: SyntheticConfig) -> list[int]:
    return [
        round(float(v)) for v in np.geomspace(c.min_cardinality, c.max_cardinality, c.num_sparse)
    ]


def feature_spec(c: SyntheticConfig) -> FeatureSpec:
    seqs = (SequenceSpec("history", c.sequence_vocab, c.sequence_length),)
    return FeatureSpec(
        tuple(f"I{i + 1}" for i in range(c.num_dense)),
        tuple(f"C{i + 1}" for i in range(c.num_sparse)),
        tuple(cardinalities(c)),
        seqs if c.sequence_length else (),
    )


def expected_auc(p: np.ndarray) -> float:
    """The AUC the scores p reach in expectation when labels ~ Bernoulli(p): the chance
    that a random positive outscores a random negative (ties count half)."""
    order = np.argsort(p, kind="stable")
    ps = p[order]
    pos, neg = ps, 1 - ps
    # For each group of equal scores: negatives strictly below, plus half the tied ones.
    _, starts, counts = np.unique(ps, return_index=True, return_counts=True)
    neg_cum = np.concatenate(([0.0], np.cumsum(neg)))
    below = neg_cum[starts]
    tied_neg = neg_cum[starts + counts] - below
    tied_pos = np.add.reduceat(pos, starts)
    wins = np.sum(tied_pos * (below + 0.5 * tied_neg))
    return float(wins / (pos.sum() * neg.sum()))


def _zipf(rng, size: int, card: int, s: float) -> tuple[np.ndarray, np.ndarray]:
    """(ids [size], probability of each id [card]): Zipf ranks, shuffled to ids."""
    p_rank = 1.0 / np.arange(1, card + 1) ** s
    p_rank /= p_rank.sum()
    ranks = rng.choice(card, size=size, p=p_rank)
    perm = rng.permutation(card)
    p_id = np.empty(card)
    p_id[perm] = p_rank
    return perm[ranks], p_id


def _tail_scale(freq: np.ndarray, tau: float) -> np.ndarray:
    """[card, 1]: the standard deviation of each value's effects, sqrt(p / (p + tau))."""
    return np.sqrt(freq / (freq + tau))[:, None] if tau > 0 else np.ones((len(freq), 1))


def _center(table: np.ndarray, freq: np.ndarray) -> np.ndarray:
    """Centre the rows of table [card, k] under the value frequencies (no rescaling: a
    rare value keeps an ordinary-sized effect)."""
    return table - freq @ table


def _unit(v: np.ndarray) -> np.ndarray:
    return (v - v.mean()) / max(v.std(), 1e-12)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _calibrate(parts: np.ndarray, c: SyntheticConfig) -> tuple[float, float]:
    """(scale, bias) with expected Bayes AUC = c.bayes_auc and mean rate = c.click_rate."""
    raw = parts[:50_000]

    def bias_for(scale):
        lo, hi = -20.0, 20.0
        for _ in range(50):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if _sigmoid(scale * raw + mid).mean() < c.click_rate else (lo, mid)
        return (lo + hi) / 2

    lo, hi = 0.01, 20.0
    for _ in range(40):
        mid = (lo + hi) / 2
        auc = expected_auc(_sigmoid(mid * raw + bias_for(mid)))
        lo, hi = (mid, hi) if auc < c.bayes_auc else (lo, mid)
    scale = (lo + hi) / 2
    return scale, bias_for(scale)


@dataclass(frozen=True)
class Planted:
    """What the generator planted (for tests and curious readers)."""

    pairs: tuple[tuple[int, int], ...]
    triples: tuple[tuple[int, int, int], ...]
    scale: float
    bias: float


def generate(config: SyntheticConfig | None = None) -> CTRData:
    """The data set of ``config`` (module docstring); ``report["planted"]`` says what
    interactions were planted and ``prob`` holds every row's click probability."""
    c = config or SyntheticConfig()
    rng = np.random.default_rng(c.seed)
    N, r = c.rows, c.latent_dim
    cards = cardinalities(c)
    dense = rng.standard_normal((N, c.num_dense)).astype(np.float32)
    sparse = np.empty((N, c.num_sparse), dtype=np.int64)
    weights, latents = [], []
    for f, card in enumerate(cards):
        sparse[:, f], freq = _zipf(rng, N, card, c.zipf_exponent)
        scale = _tail_scale(freq, c.tail_shrinkage)
        weights.append(_center(scale * rng.standard_normal((card, 1)), freq)[:, 0])
        latents.append(_center(scale * rng.standard_normal((card, r)), freq))
    u = [latents[f][sparse[:, f]] for f in range(c.num_sparse)]  # [N, r] each

    first = sum(weights[f][sparse[:, f]] for f in range(c.num_sparse))
    first = first + dense.astype(np.float64) @ rng.standard_normal(c.num_dense)
    # Features are in ascending cardinality: interactions among the first K.
    K = c.interaction_features
    every_pair = [(a, b) for a in range(K) for b in range(a + 1, K)]
    pick = rng.choice(len(every_pair), size=c.pairs, replace=False)
    pairs = tuple(every_pair[i] for i in sorted(pick))
    pair = sum((u[a] * u[b]).sum(1) for a, b in pairs) if pairs else np.zeros(N)
    triples = tuple(
        tuple(sorted(rng.choice(K, size=3, replace=False).tolist())) for _ in range(c.triples)
    )
    triple = sum((u[a] * u[b] * u[d]).sum(1) for a, b, d in triples) if triples else np.zeros(N)

    seq_ids, seq_lengths, seq = (), (), np.zeros(N)
    if c.sequence_length:
        T = c.sequence_length
        items, item_freq = _zipf(rng, N * T, c.sequence_vocab - 1, c.zipf_exponent)
        items = items.reshape(N, T) + 1  # id 0 is reserved: "no history" / padding
        item_scale = _tail_scale(item_freq, c.tail_shrinkage)
        item_latent = _center(
            item_scale * rng.standard_normal((c.sequence_vocab - 1, r)), item_freq
        )
        lengths = rng.integers(1, T + 1, size=N)
        mask = np.arange(T)[None, :] < lengths[:, None]
        items = np.where(mask, items, 0)
        pooled = (item_latent[items - 1] * mask[..., None]).sum(1) / lengths[:, None]
        seq = (pooled * u[c.sequence_target]).sum(1)
        seq_ids, seq_lengths = (items.astype(np.int64),), (lengths.astype(np.int64),)

    parts = [_unit(first), _unit(pair), _unit(triple) if triples else triple, _unit(seq)]
    shares = np.array(c.shares, dtype=np.float64)
    if not c.sequence_length:
        shares[3] = 0.0
    if not triples:
        shares[2] = 0.0
    shares /= shares.sum()
    raw = sum(np.sqrt(s) * p for s, p in zip(shares, parts, strict=True))
    scale, bias = _calibrate(raw, c)
    prob = _sigmoid(scale * raw + bias)
    labels = (rng.random(N) < prob).astype(np.float32)
    planted = Planted(pairs, triples, scale, bias)
    return CTRData(
        feature_spec(c),
        dense,
        sparse,
        labels,
        seq_ids,
        seq_lengths,
        prob.astype(np.float32),
        {
            "source": "synthetic",
            "rows": N,
            "planted": planted,
            "bayes_auc": expected_auc(prob),
            # each part of the logit, unit variance, before mixing: what a model can learn
            "parts": {
                name: part.astype(np.float32)
                for name, part in zip(("first", "pair", "triple", "sequence"), parts, strict=True)
            },
        },
    )
