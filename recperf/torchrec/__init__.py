"""recperf inside TorchRec (needs ``make install-torchrec``; the core never imports this):

* :mod:`recperf.torchrec.kjt`: a torchrec ``Batch`` (dense features, a KeyedJaggedTensor,
  labels) to and from a recperf ``Batch``, so every model and the training loop take KJT
  input; :func:`kjt_batches` yields them from a ``CTRData``;
* :mod:`recperf.torchrec.interaction`: ``InteractionArch``, torchrec's DLRM interaction on
  ``recperf.fm_pairwise``.
"""

from recperf.torchrec.interaction import InteractionArch
from recperf.torchrec.kjt import batch_from_torchrec, kjt_batches, to_torchrec

__all__ = ["InteractionArch", "batch_from_torchrec", "kjt_batches", "to_torchrec"]
