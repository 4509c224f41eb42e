"""The recommendation models, on recperf ops: Wukong, DHEN, InterFormer and DMT.

Each takes a :class:`FeatureSpec` and its config dataclass, maps a :class:`Batch` to
logits [B], and has a plain-torch twin (:func:`torch_twin`) with the same weights.
"""

from recperf.models.batch import Batch, FeatureSpec, SequenceSpec, check_batch
from recperf.models.common import CTRModel, ModelConfig
from recperf.models.counting import flops_per_example, param_counts
from recperf.models.dhen import DHEN, DHENConfig
from recperf.models.dmt import DMT, DMTConfig
from recperf.models.interformer import InterFormer, InterFormerConfig
from recperf.models.registry import MODELS, build_model
from recperf.models.twin import set_backend, set_recipe, torch_twin
from recperf.models.wukong import Wukong, WukongConfig

__all__ = [
    "DHEN",
    "DMT",
    "MODELS",
    "Batch",
    "CTRModel",
    "DHENConfig",
    "DMTConfig",
    "FeatureSpec",
    "InterFormer",
    "InterFormerConfig",
    "ModelConfig",
    "SequenceSpec",
    "Wukong",
    "WukongConfig",
    "build_model",
    "check_batch",
    "flops_per_example",
    "param_counts",
    "set_backend",
    "set_recipe",
    "torch_twin",
]
