"""Modules built on recperf ops."""

from recperf.nn.fm import FMInteraction

__all__ = ["FMInteraction"]
