"""KeyedJaggedTensor input for the recperf models.

A torchrec ``Batch`` carries ``dense_features`` [B, num_dense], ``labels`` [B] and
``sparse_features``, a KJT whose keys are the spec's sparse features and sequences (any
order). Per key, ``lengths`` [B] (0 allowed: an empty bag embeds to zeros), ``offsets``
[B + 1] and ``values``; a weighted KJT's ``weights`` (id scores) weight each id in its bag.
A sequence key's jagged rows become the padded [B, max_len] ids of a recperf ``Batch``; an
empty one becomes the single id 0, "no history" (what the loaders give such a row).

Every malformed KJT is a ``ValueError`` naming the key before any lookup: keys that do not
match the spec, a stride other than B, lengths that do not sum to the values, a row longer
than a sequence's max_len; ids out of range are caught by ``check_batch``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torchrec.datasets.utils import Batch as TorchRecBatch
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from recperf.models.batch import Batch, FeatureSpec


def batch_from_torchrec(batch: TorchRecBatch, spec: FeatureSpec) -> Batch:
    """The recperf ``Batch`` of a torchrec ``Batch`` (module docstring)."""
    kjt = batch.sparse_features
    if not isinstance(kjt, KeyedJaggedTensor):
        raise TypeError(
            f"sparse_features must be a torchrec KeyedJaggedTensor, got {type(kjt).__name__}"
        )
    dense = batch.dense_features
    B = dense.shape[0] if isinstance(dense, torch.Tensor) and dense.dim() == 2 else -1
    seq_names = [s.name for s in spec.sequences]
    expected = [*spec.sparse, *seq_names]
    keys = list(kjt.keys())
    if sorted(keys) != sorted(expected):
        unknown = sorted(set(keys) - set(expected))
        missing = [k for k in expected if k not in keys]
        raise ValueError(
            f"sparse_features keys must be the spec's sparse features and sequences "
            f"{expected}; unknown {unknown}, missing {missing}, given {keys}"
        )
    if kjt.stride() != B:
        raise ValueError(
            f"sparse_features has stride (batch size) {kjt.stride()}, dense_features "
            f"{tuple(dense.shape) if isinstance(dense, torch.Tensor) else type(dense).__name__}"
        )
    lengths, values = kjt.lengths(), kjt.values()
    if int(lengths.sum()) != values.numel() or (lengths < 0).any():
        raise ValueError(
            f"sparse_features lengths must be >= 0 and sum to the {values.numel()} values, "
            f"they sum to {int(lengths.sum())}"
        )
    weights = kjt.weights_or_none()
    if weights is not None and weights.shape != values.shape:
        raise ValueError(
            f"sparse_features weights must be one per value {tuple(values.shape)}, "
            f"got {tuple(weights.shape)}"
        )
    per_key = kjt.to_dict()
    ids, offsets, bag_weights = [], [], []
    for name in spec.sparse:
        jt = per_key[name]
        ids.append(jt.values().to(torch.int64))
        offsets.append(jt.offsets()[:-1].to(torch.int64))
        bag_weights.append(jt.weights_or_none())
    seq_ids, seq_lengths = [], []
    for seq in spec.sequences:
        jt = per_key[seq.name]
        padded, n = _pad_sequence(jt.values(), jt.lengths(), seq.max_len, seq.name)
        seq_ids.append(padded)
        seq_lengths.append(n)
    return Batch(
        dense,
        tuple(ids),
        tuple(offsets),
        batch.labels,
        tuple(seq_ids),
        tuple(seq_lengths),
        tuple(bag_weights) if weights is not None else (),
    )


def _pad_sequence(values: torch.Tensor, lengths: torch.Tensor, max_len: int, name: str):
    """Jagged rows -> ([B, max_len] right-padded ids, lengths), an empty row as id 0."""
    if lengths.numel() and int(lengths.max()) > max_len:
        raise ValueError(
            f"sequence {name!r}: a row holds {int(lengths.max())} items, max_len is {max_len}"
        )
    lengths = lengths.to(torch.int64)
    filled = torch.arange(max_len, device=values.device) < lengths.unsqueeze(1)
    padded = torch.zeros(lengths.numel(), max_len, dtype=torch.int64, device=values.device)
    padded[filled] = values.to(torch.int64)
    return padded, lengths.clamp_min(1)  # an empty row: its id 0 at position 0 counts


def to_torchrec(batch: Batch, spec: FeatureSpec) -> TorchRecBatch:
    """The torchrec ``Batch`` of a recperf ``Batch``: sparse features then sequences as KJT
    keys, in spec order (weighted when ``batch.weights`` is given)."""
    B = batch.size
    values, lengths, weights = [], [], []
    for f in range(spec.num_sparse):
        ids, off = batch.ids[f], batch.offsets[f]
        ends = torch.cat((off[1:], off.new_tensor([ids.numel()])))
        values.append(ids)
        lengths.append(ends - off)
        if batch.weights:
            w = batch.weights[f]
            weights.append(torch.ones(ids.numel()) if w is None else w.to(torch.float32))
    for ids, n in zip(batch.seq_ids, batch.seq_lengths, strict=True):
        mask = torch.arange(ids.shape[1]) < n.unsqueeze(1)
        values.append(ids[mask])
        lengths.append(n)
        if batch.weights:
            weights.append(torch.ones(int(n.sum())))
    kjt = KeyedJaggedTensor(
        keys=[*spec.sparse, *(s.name for s in spec.sequences)],
        values=torch.cat(values) if values else torch.zeros(0, dtype=torch.int64),
        lengths=torch.cat(lengths) if lengths else torch.zeros(0, dtype=torch.int64),
        weights=torch.cat(weights) if weights else None,
        stride=B,
    )
    labels = batch.labels if batch.labels is not None else torch.zeros(B)
    return TorchRecBatch(dense_features=batch.dense, sparse_features=kjt, labels=labels)


def kjt_batches(data, batch_size: int, start_step: int = 0, seed: int = 0) -> Iterator:
    """``CTRData.batches`` as torchrec ``Batch``es (the same rows, step for step)."""
    for batch in data.batches(batch_size, start_step=start_step, seed=seed):
        yield to_torchrec(batch, data.spec)
