"""Learning (issue 7): on the generator's default synthetic data each model's held-out AUC
beats logistic regression trained on the same rows by at least 0.03 and comes within 0.02
of the Bayes AUC, in a CPU run under two minutes (generating the data, training,
evaluation; the logistic-regression baseline is the test's yardstick, timed apart).

One data set (1.1M rows of the default distribution, seed 0; 100k held out) and one
baseline serve the four tests; each test's time counts the data generation too. The time
is printed, not asserted (timings never go in test assertions): the passes and configs
below were chosen so that each model runs in under two minutes on 2 cores (measured
2026-11-28: Wukong 59 s, DMT 85 s, DHEN 89 s, InterFormer 117 s).
Run with ``pytest -m slow tests/models/test_learning.py -s`` to see the AUC table.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch

from recperf.data.synthetic import SyntheticConfig, generate
from recperf.models import build_model
from recperf.train.baseline import logistic_regression
from recperf.train.loop import TrainConfig, predict, train
from recperf.train.metrics import auc

pytestmark = pytest.mark.slow

ROWS = 1_100_000
TEST_FRACTION = 1 / 11
# The recipe: Adam everywhere, tables at 2.5x the dense rate from a small init (rare rows
# stay near zero), large batches, linear decay.
RECIPE = TrainConfig(
    batch_size=2048, lr=4e-3, embedding_lr=1e-2, embedding_init_std=0.05, progress=False
)
# Per model: passes over the training rows and the config overrides that fit the budget.
# DHEN keeps its dot, DCN and linear modules (attention and convolution tripled its step
# time on this CPU); InterFormer runs one layer with a Wukong interaction arch.
RUNS = {
    "wukong": (2.0, {}),
    "dmt": (2.0, {}),
    "dhen": (2.0, {"modules": ("dot", "dcn", "linear")}),
    "interformer": (1.5, {"layers": 1, "interaction": "wukong"}),
}


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    data = generate(dataclasses.replace(SyntheticConfig(), rows=ROWS, seed=0))
    train_rows, test_rows = data.split(TEST_FRACTION, seed=0)
    t1 = time.perf_counter()
    lr_auc = auc(test_rows.labels, logistic_regression(train_rows, test_rows))
    t2 = time.perf_counter()
    return {
        "train": train_rows,
        "test": test_rows,
        "bayes": data.report["bayes_auc"],
        "oracle": auc(test_rows.labels, test_rows.prob),
        "lr_auc": lr_auc,
        "data_s": t1 - t0,
        "lr_s": t2 - t1,
    }


@pytest.mark.parametrize("name", list(RUNS))
def test_model_beats_logistic_regression_and_nears_bayes(setup, name):
    train_rows, test_rows = setup["train"], setup["test"]
    torch.manual_seed(0)
    t0 = time.perf_counter()
    epochs, overrides = RUNS[name]
    model = build_model(name, train_rows.spec, **overrides)
    steps = int(epochs * len(train_rows)) // RECIPE.batch_size
    train(model, train_rows, steps, None, RECIPE)
    model_auc = auc(test_rows.labels, predict(model, test_rows))
    seconds = setup["data_s"] + time.perf_counter() - t0
    note = (
        f"{name}: AUC {model_auc:.4f}, logistic regression {setup['lr_auc']:.4f} "
        f"(+{model_auc - setup['lr_auc']:.4f}), Bayes {setup['bayes']:.4f} "
        f"(gap {setup['bayes'] - model_auc:.4f}; true probabilities on the held-out rows "
        f"{setup['oracle']:.4f}); {seconds:.0f} s with the data ({setup['data_s']:.0f} s); "
        f"baseline {setup['lr_s']:.0f} s"
    )
    print(note)
    assert model_auc >= setup["lr_auc"] + 0.03, note
    assert model_auc >= setup["bayes"] - 0.02, note
