"""Modules built on recperf ops."""

from recperf.nn.fm import FMInteraction
from recperf.nn.linear_norm import GroupedLinearNorm, LinearNorm

__all__ = ["FMInteraction", "GroupedLinearNorm", "LinearNorm"]
