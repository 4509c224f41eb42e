"""Evaluation metrics of a CTR model: AUC (rank-based, ties averaged), log loss and
normalized entropy (log loss over the entropy of the mean click rate; He et al. 2014:
1 is no better than predicting the click rate, lower is better)."""

from __future__ import annotations

import math

import numpy as np


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the chance a random positive outscores a random
    negative, ties counted half (Mann-Whitney U from average ranks)."""
    labels = np.asarray(labels, dtype=np.float64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    pos = labels.sum()
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    _, starts, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = starts + (counts + 1) / 2.0  # 1-based average rank of each tie group
    ranks[order] = np.repeat(average, counts)
    return float((ranks[labels == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def log_loss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.clip(np.asarray(probs, dtype=np.float64).ravel(), eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def normalized_entropy(labels: np.ndarray, probs: np.ndarray) -> float:
    """log loss / entropy of the empirical click rate."""
    rate = float(np.mean(labels))
    if rate in (0.0, 1.0):
        return float("nan")
    entropy = -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))
    return log_loss(labels, probs) / entropy


def evaluate(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    return {
        "auc": auc(labels, probs),
        "log_loss": log_loss(labels, probs),
        "ne": normalized_entropy(labels, probs),
    }
