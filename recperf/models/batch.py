"""What a model eats: the feature spec (names, cardinalities, sequences) and the ``Batch``.

A batch carries, for B examples:

* ``dense`` [B, num_dense] float32, finite (the data layer maps NaN to 0 and counts it);
* per sparse feature f, ``ids[f]`` [nnz_f] int64 in [0, cardinality_f) and ``offsets[f]``
  [B] int64: example b's ids are ``ids[f][offsets[f][b]:offsets[f][b + 1]]`` (nn.EmbeddingBag's
  convention, so a feature may be multi-hot); an empty bag embeds to zeros;
* per sequence s, ``seq_ids[s]`` [B, T_s] int64 in [0, vocab_s), right-padded, and
  ``seq_lengths[s]`` [B] int64 in [1, T_s]: a sequence is never empty (the loaders give a row
  without history the single reserved id 0, "no history");
* ``labels`` [B] float32 in {0, 1}, or None at inference;
* ``weights``: empty, or per sparse feature None or [nnz_f] float per-id weights (id
  scores of a weighted KJT), summed into the bag (mode "sum" only).

A torchrec ``Batch`` (dense features, a ``KeyedJaggedTensor``, labels) is accepted as well
and converted by ``recperf.torchrec.kjt`` (module docstring there for the KJT layout).

:func:`check_batch` turns every malformed batch into a ``ValueError`` that names the
feature, before any kernel runs; models call it unless they are being compiled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from recperf.ops._checks import check_tensor


@dataclass(frozen=True)
class SequenceSpec:
    """One sequence feature: ``vocab`` item ids (0 reserved for "no history"), at most
    ``max_len`` per row."""

    name: str
    vocab: int
    max_len: int


@dataclass(frozen=True)
class FeatureSpec:
    """Names of the dense features; names and cardinalities of the sparse ones (one
    nn.EmbeddingBag each); the sequences."""

    dense: tuple[str, ...]
    sparse: tuple[str, ...]
    cardinalities: tuple[int, ...]
    sequences: tuple[SequenceSpec, ...] = ()

    def __post_init__(self) -> None:
        if len(self.sparse) != len(self.cardinalities):
            raise ValueError(
                f"FeatureSpec: {len(self.sparse)} sparse names but "
                f"{len(self.cardinalities)} cardinalities"
            )
        names = [*self.dense, *self.sparse, *(s.name for s in self.sequences)]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"FeatureSpec: duplicate feature names {dup}")
        bad = [(n, c) for n, c in zip(self.sparse, self.cardinalities, strict=True) if c < 1]
        if bad:
            raise ValueError(f"FeatureSpec: cardinalities must be >= 1, got {bad}")

    @property
    def num_dense(self) -> int:
        return len(self.dense)

    @property
    def num_sparse(self) -> int:
        return len(self.sparse)

    def as_dict(self) -> dict:
        return {
            "dense": list(self.dense),
            "sparse": list(self.sparse),
            "cardinalities": list(self.cardinalities),
            "sequences": [[s.name, s.vocab, s.max_len] for s in self.sequences],
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> FeatureSpec:
        return cls(
            tuple(d["dense"]),
            tuple(d["sparse"]),
            tuple(int(c) for c in d["cardinalities"]),
            tuple(SequenceSpec(n, int(v), int(t)) for n, v, t in d.get("sequences", [])),
        )


@dataclass
class Batch:
    """One batch (module docstring for the layout)."""

    dense: torch.Tensor
    ids: tuple[torch.Tensor, ...]
    offsets: tuple[torch.Tensor, ...]
    labels: torch.Tensor | None = None
    seq_ids: tuple[torch.Tensor, ...] = ()
    seq_lengths: tuple[torch.Tensor, ...] = ()
    weights: tuple[torch.Tensor | None, ...] = ()

    @property
    def size(self) -> int:
        return self.dense.shape[0]

    def _map(self, fn) -> Batch:
        def move(t):
            return None if t is None else fn(t)

        return Batch(
            move(self.dense),
            tuple(move(t) for t in self.ids),
            tuple(move(t) for t in self.offsets),
            move(self.labels),
            tuple(move(t) for t in self.seq_ids),
            tuple(move(t) for t in self.seq_lengths),
            tuple(move(t) for t in self.weights),
        )

    # The Pipelineable interface (torchrec.streamable), so TorchRec's train pipelines can
    # move a Batch to the device ahead of the step.
    def to(self, device: torch.device | str, non_blocking: bool = True) -> Batch:
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        return self._map(torch.Tensor.pin_memory)

    def record_stream(self, stream: torch.Stream) -> None:
        self._map(lambda t: t.record_stream(stream))

    # Flat dict form, for the benchmark runner (its inputs are dicts of tensors).
    def as_tensors(self) -> dict[str, torch.Tensor]:
        out = {"dense": self.dense}
        for name in ("ids", "offsets", "seq_ids", "seq_lengths"):
            for i, t in enumerate(getattr(self, name)):
                out[f"{name}.{i}"] = t
        if self.labels is not None:
            out["labels"] = self.labels
        return out

    @classmethod
    def from_tensors(cls, t: Mapping[str, torch.Tensor]) -> Batch:
        def many(name):
            return tuple(t[f"{name}.{i}"] for i in range(_count(t, name)))

        return cls(
            t["dense"],
            many("ids"),
            many("offsets"),
            t.get("labels"),
            many("seq_ids"),
            many("seq_lengths"),
        )


def _count(t: Mapping, name: str) -> int:
    i = 0
    while f"{name}.{i}" in t:
        i += 1
    return i


def single_hot(
    spec: FeatureSpec,
    dense: np.ndarray | torch.Tensor,
    sparse: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor | None = None,
    seq_ids: tuple = (),
    seq_lengths: tuple = (),
) -> Batch:
    """A batch of one id per sparse feature and row: sparse [B, num_sparse] int."""
    dense, sparse = torch.as_tensor(dense, dtype=torch.float32), torch.as_tensor(sparse)
    B = dense.shape[0]
    if sparse.dim() != 2 or sparse.shape != (B, spec.num_sparse):
        raise ValueError(
            f"sparse must be [B, num_sparse] = [{B}, {spec.num_sparse}], got {tuple(sparse.shape)}"
        )
    offsets = torch.arange(B, dtype=torch.int64)
    sparse = sparse.to(torch.int64)
    return Batch(
        dense,
        tuple(sparse[:, f].contiguous() for f in range(spec.num_sparse)),
        tuple(offsets for _ in range(spec.num_sparse)),
        None if labels is None else torch.as_tensor(labels, dtype=torch.float32),
        tuple(torch.as_tensor(s, dtype=torch.int64) for s in seq_ids),
        tuple(torch.as_tensor(s, dtype=torch.int64) for s in seq_lengths),
    )


def from_named(
    spec: FeatureSpec,
    dense: Mapping[str, object],
    sparse: Mapping[str, object],
    labels: object | None = None,
    sequences: Mapping[str, tuple[object, object]] | None = None,
) -> Batch:
    """A single-hot batch from columns keyed by feature name; every name of the spec must
    be given and no other (``ValueError`` naming the unknown or missing ones)."""
    sequences = sequences or {}
    for kind, given, known in (
        ("dense", dense, spec.dense),
        ("sparse", sparse, spec.sparse),
        ("sequence", sequences, tuple(s.name for s in spec.sequences)),
    ):
        unknown = sorted(set(given) - set(known))
        missing = [n for n in known if n not in given]
        if unknown:
            raise ValueError(f"unknown {kind} feature names {unknown}; known: {list(known)}")
        if missing:
            raise ValueError(f"missing {kind} features {missing}")
    d = np.stack([np.asarray(dense[n], dtype=np.float32) for n in spec.dense], axis=1)
    s = np.stack([np.asarray(sparse[n], dtype=np.int64) for n in spec.sparse], axis=1)
    seqs = [sequences[q.name] for q in spec.sequences]
    return single_hot(spec, d, s, labels, tuple(q[0] for q in seqs), tuple(q[1] for q in seqs))


def check_batch(batch: Batch, spec: FeatureSpec, dense_dtype: torch.dtype | None = None) -> None:
    """``ValueError`` for any batch that does not fit ``spec`` (module docstring), and
    ``TypeError`` for a field of the wrong type; ``dense_dtype`` (the model's) is the
    dtype ``dense`` must have when there are dense features."""
    if not isinstance(batch, Batch):
        raise TypeError(f"a model takes a recperf.models.Batch, got {type(batch).__name__}")
    check_tensor(batch.dense, "batch.dense")
    if batch.labels is not None:
        check_tensor(batch.labels, "batch.labels")
    _check_devices(batch)
    B = batch.dense.shape[0] if batch.dense.dim() == 2 else -1
    if batch.dense.dim() != 2 or batch.dense.shape[1] != spec.num_dense:
        raise ValueError(
            f"dense must be [B, {spec.num_dense}] ({list(spec.dense)}), "
            f"got {tuple(batch.dense.shape)}"
        )
    if not batch.dense.is_floating_point():
        raise TypeError(f"dense must be floating point, got {batch.dense.dtype}")
    if dense_dtype is not None and spec.num_dense and batch.dense.dtype != dense_dtype:
        raise TypeError(
            f"dense must have the model's dtype {dense_dtype}, got {batch.dense.dtype} "
            "(convert it with batch.dense.to(...))"
        )
    bad = int((~torch.isfinite(batch.dense)).sum())
    if bad:
        raise ValueError(
            f"dense has {bad} non-finite values (NaN/inf); the data layer maps missing "
            "values to 0 (recperf.data), do the same before calling the model"
        )
    for name in ("ids", "offsets"):
        if len(getattr(batch, name)) != spec.num_sparse:
            raise ValueError(
                f"batch.{name} must have one tensor per sparse feature "
                f"({spec.num_sparse}), got {len(getattr(batch, name))}"
            )
    for f, (name, card) in enumerate(zip(spec.sparse, spec.cardinalities, strict=True)):
        ids, offsets = batch.ids[f], batch.offsets[f]
        _check_ints(ids, f"ids of sparse feature {name!r}", 1)
        _check_ints(offsets, f"offsets of sparse feature {name!r}", 1)
        if offsets.shape[0] != B:
            raise ValueError(f"offsets of {name!r} must be [B={B}], got {tuple(offsets.shape)}")
        if B and (
            offsets[0] != 0 or (offsets[1:] < offsets[:-1]).any() or offsets[-1] > ids.numel()
        ):
            raise ValueError(
                f"offsets of {name!r} must start at 0, not decrease, and stay <= "
                f"len(ids) = {ids.numel()}"
            )
        _check_range(ids, card, f"sparse feature {name!r}", "cardinality")
    if len(batch.seq_ids) != len(spec.sequences) or len(batch.seq_lengths) != len(spec.sequences):
        raise ValueError(
            f"the batch must carry the {len(spec.sequences)} sequence(s) "
            f"{[s.name for s in spec.sequences]} (ids and lengths), got "
            f"{len(batch.seq_ids)} id and {len(batch.seq_lengths)} length tensors"
        )
    for s, seq in enumerate(spec.sequences):
        ids, lengths = batch.seq_ids[s], batch.seq_lengths[s]
        _check_ints(ids, f"ids of sequence {seq.name!r}", 2)
        _check_ints(lengths, f"lengths of sequence {seq.name!r}", 1)
        if ids.shape[0] != B or not 1 <= ids.shape[1] <= seq.max_len or lengths.shape != (B,):
            raise ValueError(
                f"sequence {seq.name!r}: ids must be [B={B}, T] with 1 <= T <= "
                f"{seq.max_len} and lengths [B], got {tuple(ids.shape)} and {tuple(lengths.shape)}"
            )
        if B and lengths.min() < 1:
            empty = int((lengths < 1).sum())
            raise ValueError(
                f"sequence {seq.name!r} is empty in {empty} row(s); give a row without "
                "history the single id 0 (the loaders do)"
            )
        if B and lengths.max() > ids.shape[1]:
            raise ValueError(f"sequence {seq.name!r}: a length exceeds T = {ids.shape[1]}")
        _check_range(ids, seq.vocab, f"sequence {seq.name!r}", "vocab")
    if batch.labels is not None:
        if batch.labels.shape != (B,):
            raise ValueError(f"labels must be [B={B}], got {tuple(batch.labels.shape)}")
        bad = (batch.labels != 0) & (batch.labels != 1)
        if bad.any():
            value = batch.labels[bad][0].item()
            raise ValueError(f"labels must be 0 or 1, got {value!r} ({int(bad.sum())} such)")


def _check_devices(batch: Batch) -> None:
    """Every tensor on dense's device, and not the meta device: the checks read values."""
    device = batch.dense.device
    if device.type == "meta":
        raise ValueError(
            "batch.dense is on the meta device: a model's input checks read the batch's "
            "values; give real tensors (or build the model with check_inputs=False to trace)"
        )
    fields = {"ids": batch.ids, "offsets": batch.offsets, "seq_ids": batch.seq_ids}
    fields["seq_lengths"] = batch.seq_lengths
    if batch.labels is not None:
        fields["labels"] = (batch.labels,)
    for name, tensors in fields.items():
        for i, t in enumerate(tensors):
            if isinstance(t, torch.Tensor) and t.device != device:
                where = name if name == "labels" else f"{name}[{i}]"
                raise ValueError(
                    f"batch.{where} must be on batch.dense's device ({device}), got {t.device}"
                )


def check_weights(batch: Batch, spec: FeatureSpec, pooling: str) -> None:
    """``ValueError`` unless ``batch.weights`` is empty or gives each sparse feature None or
    one finite float weight per id; weights need sum pooling (nn.EmbeddingBag's rule)."""
    if not batch.weights:
        return
    if len(batch.weights) != spec.num_sparse:
        raise ValueError(
            f"batch.weights must be empty or have one entry per sparse feature "
            f"({spec.num_sparse}), got {len(batch.weights)}"
        )
    for name, ids, w in zip(spec.sparse, batch.ids, batch.weights, strict=True):
        if w is None:
            continue
        if not isinstance(w, torch.Tensor) or not w.is_floating_point():
            got = w.dtype if isinstance(w, torch.Tensor) else type(w).__name__
            raise TypeError(f"weights of sparse feature {name!r} must be floating point, got {got}")
        if w.shape != ids.shape:
            raise ValueError(
                f"weights of sparse feature {name!r} must be one per id {tuple(ids.shape)}, "
                f"got {tuple(w.shape)}"
            )
        if not torch.isfinite(w).all():
            raise ValueError(f"weights of sparse feature {name!r} hold NaN or inf")
        if pooling != "sum":
            raise ValueError(
                f"weighted sparse feature {name!r} needs pooling='sum', the model has {pooling!r}"
            )


def _check_ints(t: object, what: str, rank: int) -> None:
    if not isinstance(t, torch.Tensor) or t.dtype not in (torch.int64, torch.int32):
        got = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
        raise TypeError(f"{what} must be an int64 tensor, got {got}")
    if t.dim() != rank:
        raise ValueError(f"{what} must have rank {rank}, got shape {tuple(t.shape)}")


def _check_range(ids: torch.Tensor, size: int, what: str, meaning: str) -> None:
    if ids.numel() and (ids.min() < 0 or ids.max() >= size):
        lo, hi = int(ids.min()), int(ids.max())
        raise ValueError(f"{what}: ids must lie in [0, {size}) ({meaning}), got [{lo}, {hi}]")
