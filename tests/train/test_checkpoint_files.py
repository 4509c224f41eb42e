"""Checkpoint files as an adversary writes them: a crafted pickle never runs, a flipped byte
is caught by the content hash, and a truncated, foreign, old or wrong-model file is one
ValueError naming the file; a killed save's temporary is removed by the next save."""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys

import pytest
import torch

from recperf.models import FeatureSpec
from recperf.models.registry import build_model
from recperf.train import checkpoint
from recperf.train.loop import TrainConfig, make_optimizer

pytestmark = pytest.mark.usefixtures("one_thread")

SPEC = FeatureSpec(("d0", "d1"), ("s0", "s1", "s2"), (7, 11, 13))


def tiny(**kw):
    torch.manual_seed(0)
    return build_model("dhen", SPEC, **{"dim": 8, "layers": 1, **kw})


@pytest.fixture
def saved(tmp_path):
    model = tiny()
    return checkpoint.save(tmp_path / "ckpt.pt", model, make_optimizer(model, TrainConfig()), 5)


class RunsCode:
    """Unpickling this creates ``marker``: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


@pytest.mark.parametrize("container", ["torch.save", "plain pickle"])
def test_a_crafted_pickle_does_not_run(tmp_path, container):
    marker, path = tmp_path / "ran", tmp_path / "evil.pt"
    payload = {"format": checkpoint.FORMAT, "model": RunsCode(marker)}
    if container == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(ValueError, match=f"{path} is not a readable recperf checkpoint"):
        checkpoint.load(path, tiny())
    assert not marker.exists()
    # the file is a real exploit: an unsafe load runs it
    if container == "torch.save":
        torch.load(path, weights_only=False)
    else:
        pickle.loads(path.read_bytes())
    assert marker.exists()


def test_a_flipped_byte_inside_a_tensor_is_caught(saved):
    weight = max(tiny().state_dict().values(), key=lambda t: t.numel())
    raw = bytearray(saved.read_bytes())
    at = raw.find(weight.numpy().tobytes())
    assert at > 0
    raw[at + weight.numel() * 2] ^= 0x10  # a bit in the middle of the tensor
    saved.write_bytes(raw)
    # torch alone loads it, with a wrong weight
    assert torch.load(saved, weights_only=True)["step"] == 5
    with pytest.raises(ValueError, match=f"{saved} is corrupted: its content hash"):
        checkpoint.load(saved, tiny())


def test_a_changed_value_outside_the_tensors_is_caught(saved):
    payload = torch.load(saved, weights_only=True)
    payload["step"] = 6
    torch.save(payload, saved)
    with pytest.raises(ValueError, match="is corrupted"):
        checkpoint.load(saved, tiny())


@pytest.mark.parametrize("keep", [0.5, 0.99, 10 / 11])
def test_a_truncated_checkpoint_names_the_file(saved, keep):
    raw = saved.read_bytes()
    saved.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(ValueError, match=f"{saved} is not a readable recperf checkpoint"):
        checkpoint.load(saved, tiny())


FOREIGN = {
    "a tensor": torch.ones(3),
    "a plain state dict": {"weight": torch.ones(3)},
    "an older format": {"format": 1, "model": {}},
    "a field of the wrong type": {"format": checkpoint.FORMAT, "describe": {}, "model": {}},
}


@pytest.mark.parametrize("case", sorted(FOREIGN))
def test_a_foreign_file_names_the_file(tmp_path, case):
    path = tmp_path / "foreign.pt"
    torch.save(FOREIGN[case], path)
    with pytest.raises(ValueError, match=f"{path} is .*recperf checkpoint"):
        checkpoint.load(path, tiny())


def resave(path, edit) -> None:
    """Change the payload and write it back with a fresh hash: a consistent file of a model
    whose description matches but whose weights do not (e.g. model code changed)."""
    payload = torch.load(path, weights_only=True)
    edit(payload["model"])
    payload["sha256"] = checkpoint._digest(payload)
    torch.save(payload, path)


def test_weights_of_another_model_are_listed_not_a_key_error(saved):
    model = tiny()
    names = list(model.state_dict())
    resave(saved, lambda m: (m.pop(names[0]), m.update(extra=torch.ones(1))))
    with pytest.raises(ValueError, match=r"another model \(weights\): .*extra only in checkpoint"):
        checkpoint.load(saved, model)
    with pytest.raises(ValueError, match=rf"{names[0]} only in model"):
        checkpoint.load(saved, model)


def test_a_tensor_of_another_shape_is_listed(saved):
    model = tiny()
    name, t = next(iter(model.state_dict().items()))
    resave(saved, lambda m: m.update({name: torch.zeros(t.shape[0] + 1, *t.shape[1:])}))
    torch.nn.init.zeros_(next(model.parameters()))
    with pytest.raises(
        ValueError, match=rf"{name}: model \({t.shape[0]},.*checkpoint \({t.shape[0] + 1},"
    ):
        checkpoint.load(saved, model)
    assert not next(model.parameters()).any()  # refused before anything was loaded


@pytest.mark.parametrize("name", ["ckpt.pt", "run[1].pt"])  # glob characters in the name
def test_a_killed_saves_temporary_is_removed_by_the_next_save(tmp_path, name):
    model = tiny()
    saved = checkpoint.save(tmp_path / name, model, make_optimizer(model, TrainConfig()), 5)
    (tmp_path / f".{name}.k1ll3d.tmp").write_bytes(b"\0" * 1024)
    (tmp_path / ".other.pt.abc.tmp").write_bytes(b"")  # another checkpoint's: not ours
    checkpoint.save(saved, model, make_optimizer(model, TrainConfig()), 6)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.pt.abc.tmp", name]
    assert checkpoint.load(saved, tiny()) == 6


def test_save_refuses_what_a_safe_load_could_not_read(tmp_path):
    model = tiny()
    with pytest.raises(TypeError, match=r"\['extra'\]\['when'\] is of type object"):
        checkpoint.save(
            tmp_path / "c.pt", model, make_optimizer(model, TrainConfig()), 1, {"when": object()}
        )
    assert list(tmp_path.iterdir()) == []


def test_a_deeply_nested_payload_is_refused_not_a_recursion_error(saved):
    payload = torch.load(saved, weights_only=True)
    deep: list = []
    for _ in range(5000):  # weights_only's unpickler builds any depth without recursing
        deep = [deep]
    payload["extra"] = {"deep": deep}
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)  # only torch.save's pickler needs it, to write the file
    try:
        torch.save(payload, saved)
    finally:
        sys.setrecursionlimit(limit)
    with pytest.raises(ValueError, match=f"{saved} is not a recperf checkpoint: nested too deeply"):
        checkpoint.load(saved, tiny())


KILLED_SAVE = """
import os, sys, time
import torch
from recperf.models import FeatureSpec
from recperf.models.registry import build_model
from recperf.train import checkpoint
from recperf.train.loop import TrainConfig, make_optimizer

torch.manual_seed(0)
model = build_model("dhen", FeatureSpec(("d0", "d1"), ("s0", "s1", "s2"), (7, 11, 13)), dim=8, layers=1)
optimizer = make_optimizer(model, TrainConfig())
checkpoint.save(sys.argv[1], model, optimizer, 1)
os.fsync = lambda fd: (print("written, not yet renamed", flush=True), time.sleep(600))
checkpoint.save(sys.argv[1], model, optimizer, 2)
"""


@pytest.mark.slow
def test_a_save_killed_by_sigkill_is_cleaned_up_by_the_next(tmp_path):
    path = tmp_path / "ckpt.pt"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_SAVE, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "written, not yet renamed"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    left = [p.name for p in tmp_path.iterdir() if p.name != "ckpt.pt"]
    assert len(left) == 1 and left[0].startswith(".ckpt.pt.") and left[0].endswith(".tmp")
    model = tiny()
    assert checkpoint.load(path, model) == 1  # the previous checkpoint, intact
    checkpoint.save(path, model, make_optimizer(model, TrainConfig()), 3)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    assert checkpoint.load(path, tiny()) == 3


def test_an_optimizer_state_that_does_not_fit_is_refused_before_the_weights_load(saved):
    payload = torch.load(saved, weights_only=True)
    payload["optimizer"] = payload["optimizer"][:1]  # one optimizer where the model has two
    payload["sha256"] = checkpoint._digest(payload)
    torch.save(payload, saved)
    model = tiny()
    torch.nn.init.zeros_(next(model.parameters()))
    with pytest.raises(ValueError, match=f"checkpoint {saved}: the optimizer state does not fit"):
        checkpoint.load(saved, model, make_optimizer(model, TrainConfig()))
    assert not next(model.parameters()).any()  # the weights were left alone
    assert checkpoint.load(saved, model) == 5  # without an optimizer it loads
