"""The probe: what it records, at what rate, NaN/inf handling, the reservoir, detach."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from recperf.loka.probe import Probe
from recperf.loka.reservoir import Reservoir
from recperf.nn import GroupedLinearNorm, LinearNorm


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = LinearNorm(6, 5, recipe="fp32")
        self.b = nn.Linear(5, 3)
        self.g = GroupedLinearNorm(2, 3, 4, recipe="fp32")

    def forward(self, x):
        h = self.b(torch.relu(self.a(x)))
        return self.g(h.unsqueeze(0).expand(2, -1, -1).contiguous())


def run(net, batches):
    for x in batches:
        net(x).square().sum().backward()


def test_records_inputs_weights_and_grads_of_every_sampled_call():
    torch.manual_seed(0)
    net = Net()
    xs = [torch.randn(7, 6) * (i + 1) for i in range(6)]
    grads = []

    def keep_grad(module, args, out):
        out.register_hook(lambda g: grads.append(g.clone()))

    net.a.register_forward_hook(keep_grad)
    with Probe(net, sample_every=2, reservoir=4) as probe:
        run(net, xs)
    assert not probe.attached
    rec = probe.records["a"]
    assert (rec.calls, rec.sampled, rec.rows) == (6, 3, 7)
    seen = torch.cat(xs[0::2]).double().numpy()  # calls 1, 3, 5 are sampled
    np.testing.assert_allclose(rec.x.moments.mean.numpy(), seen.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rec.x.moments.var.numpy(), seen.var(0), rtol=1e-4)
    assert rec.x.summary().amax == pytest.approx(np.abs(seen).max())
    got = torch.cat(grads[0::2]).double().numpy()
    np.testing.assert_allclose(rec.grad.moments.mean.numpy(), got.mean(0), rtol=1e-4, atol=1e-6)
    assert rec.weight.rows == 5  # weights read on the first sample (weight_every=4)
    assert rec.x.reservoir.filled == 4
    assert set(probe.records) == {"a", "b", "g"}
    assert probe.records["g"].x.features == 2 * 3  # grouped: [G, M, K] -> [M, G*K]
    assert probe.records["g"].rows == 7


def test_detach_stops_recording_and_attach_resumes():
    net = Net()
    probe = Probe(net, sample_every=1)
    run(net, [torch.randn(3, 6)])
    probe.detach()
    run(net, [torch.randn(3, 6)])
    assert probe.records["a"].calls == 1
    probe.attach()
    run(net, [torch.randn(3, 6)])
    assert probe.records["a"].calls == 2
    probe.detach()


def test_nonfinite_values_are_counted_and_kept_out_of_the_statistics():
    net = Net()
    x = torch.randn(8, 6)
    x[1, 2] = float("nan")
    x[5, 0] = float("inf")
    x[5, 1] = -float("inf")
    with Probe(net, sample_every=1) as probe, torch.no_grad():
        net(x)
    stats = probe.records["a"].x
    assert (stats.nan, stats.inf, stats.dropped_rows, stats.rows) == (1, 2, 2, 6)
    assert torch.isfinite(stats.moments.mean).all()
    summary = probe.summary()["a"]["x"]
    assert summary.nonfinite == 3 and np.isfinite(summary.amax)
    # no backward ran: no output gradient recorded
    assert probe.records["a"].grad.rows == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="sample_every must be an int >= 1, got 0"):
        Probe(Net(), sample_every=0)
    with pytest.raises(ValueError, match="outlier_k must be a number > 0, got -1"):
        Probe(Net(), outlier_k=-1)
    with pytest.raises(ValueError, match=r"model must contain a LinearNorm.*ReLU has none"):
        Probe(nn.ReLU())
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module, got int"):
        Probe(3)


def test_reservoir_is_a_uniform_sample_of_the_stream():
    hits = np.zeros(100)
    for seed in range(300):
        r = Reservoir(10, 1, seed=seed)
        for start in range(0, 100, 7):  # batches of 7 rows, the last one short
            rows = torch.arange(start, min(start + 7, 100), dtype=torch.float32).unsqueeze(1)
            r.offer(rows)
        kept = r.sample()[:, 0].long().numpy()
        assert r.filled == 10 and len(set(kept)) == 10
        hits[kept] += 1
    # each row is kept with probability 10/100: 30 of 300 runs, binomial sd ~5.2
    assert hits.sum() == 3000
    assert np.abs(hits - 30).max() < 6 * 5.2
    # early and late rows alike (a biased algorithm keeps the first or the last ones)
    assert abs(hits[:50].sum() - hits[50:].sum()) < 6 * np.sqrt(3000 * 0.25)
