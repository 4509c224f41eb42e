"""Benchmark cases, timers, rooflines and reports behind `recperf bench`."""
