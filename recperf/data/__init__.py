"""Data for the models: ``CTRData`` (numpy columns + feature spec + a report of what the
loader did), the synthetic generator with known click probabilities, and loaders of
Criteo and Taobao files with stable hashing of raw categorical strings.

``load("synthetic" | path)`` picks the format; ``load_train_valid`` adds the held-out rows.
"""

from recperf.data.criteo import DEFAULT_BUCKETS, load_criteo
from recperf.data.hashing import hash_column, hash_sequences, stable_hash
from recperf.data.load import detect_format, load, load_train_valid
from recperf.data.synthetic import SyntheticConfig, generate
from recperf.data.table import CTRData
from recperf.data.taobao import DEFAULT_MAX_LEN, Columns, load_taobao

__all__ = [
    "DEFAULT_BUCKETS",
    "DEFAULT_MAX_LEN",
    "CTRData",
    "Columns",
    "SyntheticConfig",
    "detect_format",
    "generate",
    "hash_column",
    "hash_sequences",
    "load",
    "load_criteo",
    "load_taobao",
    "load_train_valid",
    "stable_hash",
]
