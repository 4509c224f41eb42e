"""Where a candidate's time comes from: measured on the current device, or, for a target
GPU planned from elsewhere, committed device results for the exact shape where they
exist and the roofline cost model for the rest. Every time carries its source.

On a CPU, FP8 recipes are emulated and never faster than bf16, so a plan made from CPU
timings is all bf16: plan for a GPU with ``target="h100"`` (or "h200").
"""

from __future__ import annotations

import torch

from recperf.benchmarks.roofline import DATASHEETS
from recperf.benchmarks.timing import time_cpu, time_cuda
from recperf.loka.candidates import Candidate
from recperf.loka.costmodel import CostModel
from recperf.loka.device_results import DeviceResults
from recperf.loka.sites import Site

TARGETS = ("current", *DATASHEETS)


class TimingSource:
    device: torch.device  # where the candidates' errors are computed
    candidate_device: torch.device  # the device whose backends are the candidates
    is_target: bool
    description: str

    def dtype(self, recorded: torch.dtype) -> torch.dtype:
        """The activation dtype the candidates are checked for."""
        return recorded

    def times(self, site: Site, rows: int, candidate: Candidate, params):
        raise NotImplementedError


class Measured(TimingSource):
    """Wall clock (CPU) or CUDA events (GPU) of the op's forward and backward kernels at
    the layer's shape, median of ``repeats`` runs after a warm-up."""

    is_target = False

    def __init__(self, device: torch.device, repeats: int = 3) -> None:
        self.device = self.candidate_device = torch.device(device)
        self.repeats = repeats
        if self.device.type == "cuda":
            self.name = torch.cuda.get_device_name(self.device)
        else:
            self.name = f"CPU ({torch.get_num_threads()} threads)"
        self.description = f"measured on {self.name} (median of {repeats} runs)"

    def times(self, site: Site, rows: int, candidate: Candidate, params):
        w, b, nw, nb, eps = (p.to(self.device) if torch.is_tensor(p) else p for p in params)
        lead = (site.shape.groups,) if site.shape.groups else ()
        x = torch.randn(*lead, rows, site.shape.in_features, device=self.device, dtype=w.dtype)
        dy = torch.randn(*lead, rows, site.shape.out_features, device=self.device, dtype=w.dtype)
        ops = torch.ops.recperf
        grouped = site.kind == "grouped_linear_norm"
        fwd = ops.grouped_linear_norm if grouped else ops.linear_norm
        bwd = ops.grouped_linear_norm_backward if grouped else ops.linear_norm_backward
        args = (x, w, b, None, nw, nb, site.norm, eps, candidate.recipe, candidate.backend)
        with torch.no_grad():
            t_fwd = self._time(lambda: fwd(*args))
            t_bwd = self._time(lambda: bwd(dy, *args))
        where = f"measured on {self.name}"
        return {"forward": t_fwd, "backward": t_bwd}, {"forward": where, "backward": where}

    def _time(self, fn) -> float:
        if self.device.type == "cuda":
            return time_cuda(fn).median_s
        return time_cpu(fn, self.repeats).median_s


class Target(TimingSource):
    """A datasheet GPU: committed results for the exact case, else the cost model. Errors
    are computed here, on the CPU, by a backend that runs here."""

    is_target = True
    device = torch.device("cpu")
    candidate_device = torch.device("cuda")

    def __init__(self, name: str, results_dir=None, cost_model: CostModel | None = None) -> None:
        self.name = name
        self.model = cost_model if cost_model is not None else CostModel.for_target(name)
        self.results = DeviceResults.load(results_dir, name)
        found = (
            f"{len(self.results.table)} committed result rows"
            if self.results.table
            else ("no committed results")
        )
        self.description = f"{found} for {name}, else the {self.model.description}"

    def dtype(self, recorded: torch.dtype) -> torch.dtype:
        return torch.bfloat16  # the target runs the model in bf16 (CostModel.act_bytes)

    def times(self, site: Site, rows: int, candidate: Candidate, params):
        times, sources = self.results.times(site, rows, candidate)
        if "backward" in times:
            return times, sources
        modelled = self.model.times(site, rows, candidate)
        for direction in ("forward", "dgrad", "wgrad") if not times else ("dgrad", "wgrad"):
            times[direction] = modelled[direction]
            sources[direction] = f"cost model ({self.name})"
        return times, sources


def timing_source(
    target: str | TimingSource,
    device: torch.device | str = "cpu",
    results_dir=None,
    repeats: int = 3,
) -> TimingSource:
    """A target name ("current", "h100", "h200"), or a TimingSource as it is."""
    if isinstance(target, TimingSource):
        return target
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if target == "current":
        return Measured(torch.device(device), repeats)
    return Target(target, results_dir)
