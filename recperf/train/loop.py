"""The training loop: Adam for the dense parameters and Adam, Adagrad or SGD for the
embedding tables over shuffled batches, with a tqdm progress bar, periodic evaluation (AUC,
log loss, normalized entropy), atomic resumable checkpoints, examples per second.

Resuming restores the weights, the optimizer and the step; batches are a function of
(seed, step) (``CTRData.batches``), so a resumed run sees the batches an uninterrupted
one would have seen.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from recperf.data.table import CTRData
from recperf.train import checkpoint
from recperf.train.metrics import evaluate


@dataclass
class TrainConfig:
    """batch_size: rows per step. lr / embedding_lr: Adam's rate for the dense parameters
    and the rate for the embedding tables (sparse rows see few updates: a larger rate).
    embedding_optimizer: "adam", "adagrad" (with ``adagrad_initial_accumulator``; 0 as in
    torch, 0.1 as in TensorFlow) or "sgd" for the tables. embedding_init_std: when set, a
    fresh (not resumed) run first redraws every table from N(0, std^2) (a small std keeps
    the rarely seen rows near zero, the mean, instead of random vectors of full size; the
    learning tests use 0.05 where the models' own init is 1/sqrt(dim)).
    lr_decay: both rates fall linearly to 0 over the run.
    eval_every: steps between evaluations (0: at the end only). checkpoint: file to
    write every ``checkpoint_every`` steps and at the end (None: none); resume: start from
    it when it exists. progress: show the tqdm bar. input: "batch" (recperf ``Batch``es) or
    "kjt" (torchrec ``Batch``es with KeyedJaggedTensor sparse features, the same rows; needs
    ``make install-torchrec``)."""

    batch_size: int = 512
    lr: float = 2e-3
    embedding_lr: float = 2e-2
    embedding_optimizer: str = "adam"
    adagrad_initial_accumulator: float = 0.0
    embedding_init_std: float | None = None
    lr_decay: bool = True
    eval_every: int = 0
    eval_batch_size: int = 8192
    checkpoint: str | None = None
    checkpoint_every: int = 0
    resume: bool = False
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    input: str = "batch"


@dataclass
class TrainResult:
    steps: int  # the step the run ended at (resumed runs count from the checkpoint)
    examples_per_s: float
    metrics: dict[str, float] = field(default_factory=dict)  # the last evaluation
    history: list[dict] = field(default_factory=list)  # every evaluation, with its step
    losses: list[float] = field(default_factory=list)


class Optimizers:
    """Adam for the dense parameters; Adam or Adagrad for the tables; one interface."""

    def __init__(self, model: nn.Module, config: TrainConfig) -> None:
        tables = {id(m.weight) for m in model.modules() if isinstance(m, nn.EmbeddingBag)}
        emb = [p for p in model.parameters() if id(p) in tables]
        rest = [p for p in model.parameters() if id(p) not in tables]
        self.all = [torch.optim.Adam(rest, lr=config.lr)]
        if emb:
            if config.embedding_optimizer not in ("adam", "adagrad", "sgd"):
                raise ValueError(
                    "embedding_optimizer must be 'adam', 'adagrad' or 'sgd', "
                    f"got {config.embedding_optimizer!r}"
                )
            if config.embedding_optimizer == "adagrad":
                self.all.append(
                    torch.optim.Adagrad(
                        emb,
                        lr=config.embedding_lr,
                        initial_accumulator_value=config.adagrad_initial_accumulator,
                    )
                )
            elif config.embedding_optimizer == "sgd":
                self.all.append(torch.optim.SGD(emb, lr=config.embedding_lr))
            else:
                self.all.append(torch.optim.Adam(emb, lr=config.embedding_lr))
        self.base = [[g["lr"] for g in o.param_groups] for o in self.all]

    def set_progress(self, fraction: float) -> None:
        for o, base in zip(self.all, self.base, strict=True):
            for g, lr in zip(o.param_groups, base, strict=True):
                g["lr"] = lr * max(0.0, 1.0 - fraction)

    def zero_grad(self) -> None:
        for o in self.all:
            o.zero_grad(set_to_none=True)

    def step(self) -> None:
        for o in self.all:
            o.step()

    def state_dict(self) -> list:
        return [o.state_dict() for o in self.all]

    def load_state_dict(self, state: list) -> None:
        for o, s in zip(self.all, state, strict=True):
            o.load_state_dict(s)


def make_optimizer(model: nn.Module, config: TrainConfig) -> Optimizers:
    return Optimizers(model, config)


@torch.no_grad()
def init_embeddings(model: nn.Module, std: float) -> None:
    """Draw every embedding table of ``model`` afresh from N(0, std^2)."""
    for m in model.modules():
        if isinstance(m, nn.EmbeddingBag):
            m.weight.normal_(0.0, std, generator=None)


@torch.no_grad()
def predict(model: nn.Module, data: CTRData, batch_size: int = 8192, device="cpu") -> np.ndarray:
    """Click probabilities of every row of ``data``."""
    was_training = model.training
    model.eval()
    out = [torch.sigmoid(model(b.to(device))).float().cpu() for b in data.eval_batches(batch_size)]
    model.train(was_training)
    return torch.cat(out).numpy()


def batch_stream(data: CTRData, c: TrainConfig, start: int):
    """The training batches from step ``start``, of the kind ``c.input`` names."""
    if c.input == "kjt":
        return data.kjt_batches(c.batch_size, start_step=start, seed=c.seed)
    if c.input != "batch":
        raise ValueError(f"input must be 'batch' or 'kjt', got {c.input!r}")
    return data.batches(c.batch_size, start_step=start, seed=c.seed)


def train(
    model: nn.Module,
    data: CTRData,
    steps: int,
    eval_data: CTRData | None = None,
    config: TrainConfig | None = None,
) -> TrainResult:
    """Train ``model`` on ``data`` up to step ``steps``; evaluate on ``eval_data``."""
    c = config or TrainConfig()
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if len(data) == 0:
        raise ValueError("the training data has no rows")
    torch.manual_seed(c.seed)
    device = torch.device(c.device)
    model.to(device).train()
    optimizer = make_optimizer(model, c)
    start = 0
    if c.checkpoint and c.resume and Path(c.checkpoint).exists():
        start = checkpoint.load(c.checkpoint, model, optimizer)
    elif c.embedding_init_std is not None:
        init_embeddings(model, c.embedding_init_std)
    result = TrainResult(steps=start, examples_per_s=0.0)

    def run_eval(step: int) -> None:
        if eval_data is None or len(eval_data) == 0:
            return
        probs = predict(model, eval_data, c.eval_batch_size, device)
        metrics = evaluate(eval_data.labels, probs)
        result.metrics = metrics
        result.history.append({"step": step, **metrics})

    from tqdm import tqdm

    bar = tqdm(
        total=steps, initial=min(start, steps), desc=f"train {getattr(model, 'name', '')}",
        unit="step", file=sys.stderr, disable=not c.progress,
    )  # fmt: skip
    seen, elapsed = 0, 0.0
    stream = batch_stream(data, c, start)
    for step in range(start, steps):
        batch = next(stream).to(device)
        t0 = time.perf_counter()
        if c.lr_decay:
            optimizer.set_progress(step / max(steps, 1))
        loss = model.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        elapsed += time.perf_counter() - t0
        seen += int(batch.labels.shape[0])
        value = float(loss.detach())
        if not np.isfinite(value):
            raise FloatingPointError(f"the loss is {value} at step {step + 1}")
        result.losses.append(value)
        bar.update(1)
        bar.set_postfix(loss=f"{value:.4f}", ex_s=f"{seen / max(elapsed, 1e-9):,.0f}")
        done = step + 1
        if c.eval_every and done % c.eval_every == 0 and done < steps:
            run_eval(done)
        if c.checkpoint and c.checkpoint_every and done % c.checkpoint_every == 0:
            checkpoint.save(c.checkpoint, model, optimizer, done)
    bar.close()
    result.steps = max(start, steps)
    result.examples_per_s = seen / elapsed if elapsed else 0.0
    run_eval(result.steps)
    if c.checkpoint:
        checkpoint.save(c.checkpoint, model, optimizer, result.steps)
    return result
