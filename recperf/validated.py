"""GPU backends validated by a committed device run.

A backend joins the default CUDA priority of a kernel only when a device run committed
under ``bench/results/`` passed its GPU tests (``tests/test_validated.py`` checks that each
entry names such a file and that the file records the pass). Until then the default on a
GPU is the ``torch`` backend, and other backends run only when forced.
"""

from __future__ import annotations

# kernel -> [(backend, results file under bench/results/), ...] in priority order.
VALIDATED: dict[str, list[tuple[str, str]]] = {}


def validated_backends(kernel: str) -> tuple[str, ...]:
    return tuple(backend for backend, _ in VALIDATED.get(kernel, ()))
