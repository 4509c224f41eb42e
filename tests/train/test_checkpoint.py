"""Checkpoints: written atomically, resumed to the weights of an uninterrupted run, and
refused (with a message saying what differs) for another model or config."""

from __future__ import annotations

import pytest
import torch

from recperf.data import SyntheticConfig, generate
from recperf.models.registry import build_model
from recperf.train import checkpoint
from recperf.train.loop import TrainConfig, make_optimizer, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    config = SyntheticConfig(rows=600, sequence_length=5)
    return generate(config).split(0.25, seed=0)


def tiny(name, spec, **kw):
    torch.manual_seed(0)
    return build_model(name, spec, **{"dim": 8, **kw})


def config(path, **kw) -> TrainConfig:
    return TrainConfig(batch_size=64, checkpoint=str(path), progress=False, **kw)


class Interrupted(Exception):
    pass


def interrupt_after(model, calls: int):
    """Make ``model.loss`` raise on call ``calls + 1``: a run killed mid-training."""
    original, count = model.loss, [0]

    def loss(batch):
        count[0] += 1
        if count[0] > calls:
            raise Interrupted
        return original(batch)

    model.loss = loss


@pytest.mark.parametrize("name", ["wukong", "interformer"])
def test_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path, data, name):
    train_data, valid = data
    steps = 6
    whole = tiny(name, train_data.spec)
    train(whole, train_data, steps, valid, config(tmp_path / "whole.pt"))

    path = tmp_path / "cut.pt"
    cut = tiny(name, train_data.spec)
    interrupt_after(cut, 4)
    with pytest.raises(Interrupted):
        train(cut, train_data, steps, valid, config(path, checkpoint_every=3))
    assert checkpoint.read(path)["step"] == 3  # the last one written

    resumed = tiny(name, train_data.spec)
    result = train(resumed, train_data, steps, valid, config(path, resume=True))
    assert result.steps == steps and len(result.losses) == steps - 3
    expected, got = whole.state_dict(), resumed.state_dict()
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0, msg=key)
    # and a run that restarts from scratch (no resume) does differ: the test can fail
    fresh = tiny(name, train_data.spec)
    train(fresh, train_data, 3, valid, config(tmp_path / "short.pt"))
    assert any(not torch.equal(fresh.state_dict()[k], expected[k]) for k in expected)


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path, data, monkeypatch):
    train_data, _ = data
    model = tiny("dhen", train_data.spec, layers=1)
    optimizer = make_optimizer(model, TrainConfig())
    path = tmp_path / "ckpt.pt"
    checkpoint.save(path, model, optimizer, step=7)
    before = path.read_bytes()

    def crash(payload, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", crash)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, model, optimizer, step=8)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]  # no temporary left
    assert checkpoint.load(path, tiny("dhen", train_data.spec, layers=1)) == 7


def test_a_checkpoint_of_another_config_or_model_is_refused(tmp_path, data):
    train_data, _ = data
    model = tiny("wukong", train_data.spec)
    path = checkpoint.save(tmp_path / "w.pt", model, make_optimizer(model, TrainConfig()), 1)
    with pytest.raises(ValueError, match=r"another model or config: .*config\.dim: model 16"):
        checkpoint.load(path, tiny("wukong", train_data.spec, dim=16))
    with pytest.raises(ValueError, match="written by another model: 'wukong', not 'dhen'"):
        checkpoint.load(path, tiny("dhen", train_data.spec))
    # the recipe and backend are not the architecture: they may change between runs
    assert checkpoint.load(path, tiny("wukong", train_data.spec, backend="torch")) == 1
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="is not a readable recperf checkpoint"):
        checkpoint.load(tmp_path / "junk.pt", model)
