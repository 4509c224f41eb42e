"""End-to-end benchmark cases: one training step (forward, loss, backward and the
training loop's optimizer step: Adam for dense parameters, its embedding optimizer for the
tables) of each model on recperf ops, against the same model with plain torch ops (its
twin, the baseline "eager"), each eager and under torch.compile (the module compiled,
fullgraph; backward through AOTAutograd; the optimizer step eager on every side).

A case's model is built once per process (seeded); each variant trains its own copy of it,
so every variant starts from the same weights and sees the same batches."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

from recperf.benchmarks.roofline import Work
from recperf.models import Batch, FeatureSpec, SequenceSpec, build_model, set_recipe, torch_twin
from recperf.models.counting import example_batch, flops_per_example, param_counts
from recperf.train.loop import TrainConfig, make_optimizer

MODEL_NAMES = ("wukong", "dhen", "interformer", "dmt")
DIRECTION = "train step"


def benchmark_spec(quick: bool) -> FeatureSpec:
    """Criteo-like features: 13 dense, 26 sparse (10 .. 5,000 rows), one 20-item sequence
    (tiny under ``quick``)."""
    if quick:
        return FeatureSpec(("d0", "d1"), ("s0", "s1", "s2"), (5, 7, 11), (SequenceSpec("h", 9, 4),))
    cards = [round(10 * 500 ** (i / 25)) for i in range(26)]
    return FeatureSpec(
        tuple(f"I{i + 1}" for i in range(13)),
        tuple(f"C{i + 1}" for i in range(26)),
        tuple(cards),
        (SequenceSpec("history", 1000, 20),),
    )


@cache
def _model(name: str, quick: bool, recipe: str, device: str):
    torch.manual_seed(0)
    model = build_model(name, benchmark_spec(quick), check_inputs=False)
    set_recipe(model, recipe)
    return model.to(device)


@dataclass(frozen=True)
class ModelCase:
    model: str
    batch: int
    recipe: str  # of every LinearNorm (the twin runs "fp32" in fp32, others in bf16)
    quick: bool = False
    direction: str = DIRECTION
    with_compile: bool = False  # the runner's compile row compiles eager_fn: see below
    dtype: torch.dtype = torch.float32  # of the embeddings and every parameter
    # A step takes 10-100 ms on the CPU: more runs than a kernel case, for a steadier median.
    min_repeats = 21

    @property
    def op(self) -> str:
        return f"{self.model} train step"

    @property
    def shape(self) -> str:
        return f"B={self.batch} recipe={self.recipe}"

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    @property
    def name(self) -> str:
        return f"{self.op} {self.dtype_name} {self.shape}"

    @property
    def slug(self) -> str:
        return f"{self.model}-train-{self.recipe}-{self.batch}"

    def with_dtype(self, dtype: torch.dtype) -> ModelCase:
        return dataclasses.replace(self, dtype=dtype)

    @property
    def compute_dtype(self) -> torch.dtype:
        return torch.float32 if self.recipe == "fp32" else torch.bfloat16

    def _module(self, device: torch.device):
        if self.dtype != torch.float32:
            raise ValueError(f"model cases train fp32 parameters, got {self.dtype}")
        return _model(self.model, self.quick, self.recipe, str(device))

    # --- work -----------------------------------------------------------------------------
    def work(self) -> Work:
        """A step is about 3x the forward's matrix work; bytes: every dense parameter read
        in the forward and the backward and its gradient written, plus the looked-up rows
        and their gradients."""
        model = self._module(torch.device("cpu"))
        dense = param_counts(model)["dense"] * 4
        spec = model.spec
        rows = len(spec.cardinalities) + sum(s.max_len for s in spec.sequences)
        lookups = 2 * self.batch * rows * model.config.dim * 4
        return Work(3 * dense + lookups, 3.0 * flops_per_example(model) * self.batch)

    # --- inputs ---------------------------------------------------------------------------
    def make_inputs(self, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
        spec = self._module(torch.device("cpu")).spec
        return example_batch(spec, self.batch, seed=seed).to(device).as_tensors()

    def reference(self, inputs: dict) -> torch.Tensor:
        """The float64 twin's logits (recipe fp32)."""
        twin = torch_twin(self._module(inputs["dense"].device)).double()
        set_recipe(twin, "fp32")
        batch = Batch.from_tensors(inputs)
        with torch.no_grad():
            return twin(dataclasses.replace(batch, dense=batch.dense.double())).cpu()

    # --- what to time -----------------------------------------------------------------------
    def _step(self, build: Callable[[nn.Module], nn.Module]) -> Callable[[dict], torch.Tensor]:
        """A training step of ``build(copy of the model)`` on the batch's device, with the
        training loop's optimizers over that copy's parameters."""
        trainers: dict[torch.device, tuple[nn.Module, object]] = {}

        def step(t: dict) -> torch.Tensor:
            batch = Batch.from_tensors(t)
            device = batch.dense.device
            if device not in trainers:
                module = build(copy.deepcopy(self._module(device)))
                trainers[device] = (module, make_optimizer(module, TrainConfig()))
            forward, optimizer = trainers[device]
            with torch.enable_grad():  # the runner checks the error under no_grad
                optimizer.zero_grad()
                logits = forward(batch)
                F.binary_cross_entropy_with_logits(logits, batch.labels).backward()
                optimizer.step()
            return logits.detach()

        return step

    def backends(self, device: torch.device) -> list[str]:
        return ["auto"]  # the dispatcher's default backend of every op in the model

    def op_fn(self, backend: str) -> Callable[[dict], torch.Tensor]:
        return self._step(lambda model: model)

    def eager_fn(self) -> Callable[[dict], torch.Tensor]:
        return self._step(torch_twin)

    def compiled_variants(self, device: torch.device) -> dict[str, Callable[[dict], torch.Tensor]]:
        torch._dynamo.reset()  # each case compiles new modules: start from a clean cache
        return {
            "auto compiled": self._step(lambda m: torch.compile(m, fullgraph=True)),
            "compile": self._step(lambda m: torch.compile(torch_twin(m), fullgraph=True)),
        }


def default_cases(device: torch.device, quick: bool = False) -> list[ModelCase]:
    if quick:
        return [ModelCase(name, 4, "fp32", quick=True) for name in MODEL_NAMES]
    if device.type == "cpu":
        return [ModelCase(name, 512, "fp32") for name in MODEL_NAMES]
    return [ModelCase(name, 4096, recipe) for name in MODEL_NAMES for recipe in ("bf16",)]
