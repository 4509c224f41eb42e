"""`recperf train`: train one of the four models on synthetic data or a data file, with a
progress bar, evaluation on held-out rows (AUC, log loss, normalized entropy), atomic
resumable checkpoints and examples per second; a table of the final metrics, and
``--json PATH`` for the same as a file.

    recperf train --model wukong --data synthetic --rows 20000 --steps 300
    recperf train --model interformer --data ../shared/data/taobao_tiny --steps 50 \\
        --batch-size 32 --set dim=8 --checkpoint ckpt.pt
    recperf train --model interformer --data ... --checkpoint ckpt.pt --resume --steps 100

``--data``: "synthetic", a file (Criteo CSV or raw TSV, Taobao-style CSV: the format is
detected, ``recperf.data.load``) or a directory with ``train*`` and ``valid*`` files.
Held-out rows: ``--valid FILE``, the directory's valid file, or a seeded random
``--valid-fraction`` of the rows. ``--steps`` is the step the run ends at: a resumed run
continues from its checkpoint's step up to it. ``--set KEY=VALUE`` (repeatable) overrides
a field of the model's config, the value read as JSON when it parses (``dim=8``,
``over_hidden=[32]``) and as a string otherwise (``interaction=wukong``).

Bad input (a flag's value out of range, checked by argparse before any work; a ``--set``
value not of its field's type, or one the model cannot be built with; an unknown model or
config field, a missing or malformed data file, a checkpoint of another model or config or
a damaged one, ``--device cuda`` without a GPU, a backend or recipe that cannot run here:
checked by one forward and backward on two rows before
training) is one line on stderr and exit code 2; no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np

from recperf.cli_args import (
    int_at_least,
    nonnegative_int,
    open_fraction,
    output_file,
    positive_float,
    positive_int,
)

MODEL_NAMES = ("wukong", "dhen", "interformer", "dmt")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = __doc__
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    from recperf.data.criteo import DEFAULT_BUCKETS
    from recperf.data.taobao import DEFAULT_MAX_LEN
    from recperf.dispatch import BACKENDS
    from recperf.ops.recipes import RECIPES

    p.add_argument("--model", required=True, help=f"one of {', '.join(MODEL_NAMES)}")
    p.add_argument(
        "--data", default="synthetic", help="'synthetic', a data file or a directory (synthetic)"
    )
    p.add_argument("--valid", help="held-out rows from this file (same format as --data)")
    p.add_argument(
        "--valid-fraction",
        type=open_fraction,
        default=0.2,
        help="held out when no valid file (0.2)",
    )
    p.add_argument("--rows", type=positive_int, default=20_000, help="synthetic rows (20000)")
    p.add_argument(
        "--steps", type=nonnegative_int, default=200, help="the step to train up to (200)"
    )
    p.add_argument("--batch-size", type=positive_int, default=512, help="rows per step (512)")
    p.add_argument(
        "--lr", type=positive_float, default=2e-3, help="Adam rate of dense params (2e-3)"
    )
    p.add_argument(
        "--embedding-lr",
        type=positive_float,
        default=2e-2,
        help="Adam rate of embedding tables (2e-2)",
    )
    p.add_argument(
        "--eval-every",
        type=nonnegative_int,
        default=0,
        help="steps between evaluations (0: at the end)",
    )
    p.add_argument(
        "--checkpoint", type=output_file, help="write a checkpoint here (atomically) at the end"
    )
    p.add_argument(
        "--checkpoint-every",
        type=nonnegative_int,
        default=0,
        help="also every N steps (0: end only)",
    )
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    p.add_argument("--backend", default="auto", choices=("auto", *BACKENDS))
    p.add_argument("--recipe", default="fp32", choices=tuple(RECIPES), help="LinearNorm recipe")
    p.add_argument(
        "--seed", type=nonnegative_int, default=0, help="weights, data order, synthetic data"
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument(
        "--buckets",
        type=int_at_least(2),
        default=DEFAULT_BUCKETS,
        help="hash ids per categorical feature (id 0: missing)",
    )
    p.add_argument(
        "--max-len",
        type=positive_int,
        default=DEFAULT_MAX_LEN,
        help="items kept per sequence (files)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a model config field (repeatable)",
    )
    p.add_argument(
        "--threads",
        type=nonnegative_int,
        default=0,
        help="CPU threads of torch (0: torch's default)",
    )
    p.add_argument(
        "--json", type=output_file, help="also write the metrics and run details to this file"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


class UsageError(Exception):
    """Bad input: reported as one line and exit code 2."""


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except UsageError as e:
        print(f"recperf train: error: {e}", file=sys.stderr)
        return 2


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set takes KEY=VALUE, got {item!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        except (ValueError, RecursionError) as e:  # an overlong integer, deep nesting
            raise UsageError(f"--set {key.strip()}: cannot read {text[:20]!r}...: {e}") from None
        out[key.strip()] = _tuples(value)
    return out


def check_overrides(config_cls, overrides: dict) -> None:
    """Each ``--set`` value of the type its config field declares (sizes and counts
    >= 0), before the model is built; an unknown field is build_model's error."""
    kinds = {f.name: f.type for f in dataclasses.fields(config_cls)}
    for key, value in overrides.items():
        wanted = _wrong_type(kinds.get(key), value)
        if wanted:
            raise UsageError(f"--set {key}: must be {wanted}, got {value!r}")


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


_CHECKS = {  # a config field's declared type -> (what it must be, the check)
    "int": ("an int >= 0", _is_count),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "str": ("a string", lambda v: isinstance(v, str)),
    "tuple[int, ...]": (
        "a list of ints >= 0, e.g. [64, 32]",
        lambda v: isinstance(v, tuple) and all(map(_is_count, v)),
    ),
    "tuple[str, ...]": (
        'a list of strings, e.g. ["dot", "dcn"]',
        lambda v: isinstance(v, tuple) and all(isinstance(x, str) for x in v),
    ),
}


def _wrong_type(kind: str | None, value) -> str | None:
    wanted, ok = _CHECKS.get(kind, (None, None))
    return wanted if ok is not None and not ok(value) else None


def _build_errors(overrides: dict) -> tuple[type[Exception], ...]:
    """What building (or a first step of) the model may raise for a bad command line: with
    --set values anything (a size of 0 fails deep inside a layer), else the checks' errors
    (a bug elsewhere keeps its traceback)."""
    return (Exception,) if overrides else (ValueError, TypeError, RuntimeError)


def _say(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return text if isinstance(e, (ValueError, TypeError)) else f"{type(e).__name__}: {text}"


def _with(overrides: dict) -> str:
    """The --set flags of a failed build, so the message names the field."""
    if not overrides:
        return ""
    return " with " + " ".join(f"--set {k}={json.dumps(v)}" for k, v in overrides.items())


def _tuples(v):
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def _run(args: argparse.Namespace) -> int:
    import torch

    from recperf.data.load import load_train_valid
    from recperf.models.registry import MODELS, build_model
    from recperf.train import checkpoint
    from recperf.train.loop import TrainConfig, train

    if args.model not in MODELS:
        raise UsageError(f"--model must be one of {', '.join(MODELS)}, got {args.model!r}")
    if args.resume and not args.checkpoint:
        raise UsageError("--resume needs --checkpoint PATH")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda but no CUDA device is available")
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    overrides = parse_overrides(args.overrides)
    check_overrides(MODELS[args.model][1], overrides)
    if args.threads:
        torch.set_num_threads(args.threads)

    options: dict = {"seed": args.seed}
    if args.data == "synthetic":
        options["rows"] = args.rows
    else:
        options.update(buckets=args.buckets, max_len=args.max_len)
    try:
        train_data, valid_data = load_train_valid(
            args.data, args.valid, args.valid_fraction, **options
        )
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot load --data {args.data}: {e}") from None

    torch.manual_seed(args.seed)  # the initial weights are a function of --seed
    try:
        model = build_model(
            args.model, train_data.spec, recipe=args.recipe, backend=args.backend, **overrides
        )
    except _build_errors(overrides) as e:
        raise UsageError(
            f"cannot build {args.model}{_with(overrides)} for this data: {_say(e)}"
        ) from None

    # One forward and backward on two rows: a backend or recipe that cannot run here is
    # one line now, not a traceback from inside the training loop.
    try:
        model.to(device).train()
        model.loss(train_data.batch(slice(0, 2)).to(device)).backward()
        model.zero_grad(set_to_none=True)
    except (NotImplementedError, *_build_errors(overrides)) as e:
        raise UsageError(
            f"{args.model}{_with(overrides)} cannot run with --backend {args.backend} "
            f"--recipe {args.recipe} on {device}: {_say(e)}"
        ) from None

    if args.resume and Path(args.checkpoint).exists():
        # The checkpoint module refuses another model or config; say so before training.
        try:
            checkpoint.load(args.checkpoint, model)
        except Exception as e:
            raise UsageError(f"cannot resume from {args.checkpoint}: {e}") from None

    config = TrainConfig(
        batch_size=args.batch_size,
        lr=args.lr,
        embedding_lr=args.embedding_lr,
        eval_every=args.eval_every,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        seed=args.seed,
        device=device,
        progress=not args.no_progress,
    )
    try:
        result = train(model, train_data, args.steps, valid_data, config)
    except FloatingPointError as e:
        print(f"recperf train: {e}", file=sys.stderr)
        return 1

    summary = {
        "model": args.model,
        "data": str(args.data),
        "train_rows": len(train_data),
        "valid_rows": len(valid_data),
        "steps": result.steps,
        "examples_per_s": result.examples_per_s,
        "metrics": result.metrics,
        "history": result.history,
        "params": sum(p.numel() for p in model.parameters()),
        "device": device,
        "backend": args.backend,
        "recipe": args.recipe,
        "seed": args.seed,
        "describe": model.describe(),
        "data_report": jsonable(train_data.report),
    }
    if valid_data.prob is not None:
        from recperf.data.synthetic import expected_auc

        summary["bayes_auc"] = expected_auc(valid_data.prob.astype(np.float64))
    print_summary(summary)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(jsonable(summary), indent=2) + "\n")
        print(f"wrote {path}")
    return 0


def print_summary(s: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"recperf train: {s['model']} on {s['data']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    m = s["metrics"]
    rows = [
        ("AUC (held out)", _fmt(m.get("auc"), ".4f")),
        ("log loss", _fmt(m.get("log_loss"), ".4f")),
        ("normalized entropy", _fmt(m.get("ne"), ".4f")),
    ]
    if "bayes_auc" in s:
        rows.append(("Bayes AUC (held out)", _fmt(s["bayes_auc"], ".4f")))
    rows += [
        ("examples/s", _fmt(s["examples_per_s"], ",.0f")),
        ("steps", str(s["steps"])),
        ("rows (train / held out)", f"{s['train_rows']:,} / {s['valid_rows']:,}"),
        ("parameters", f"{s['params']:,}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    Console(width=120).print(table)


def _fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format(value, spec)


def jsonable(value):
    """``value`` with what JSON cannot hold converted (dataclasses, numpy scalars, tuples)
    and per-row arrays (the synthetic report's logit parts) left out."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items() if not isinstance(v, np.ndarray)}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
