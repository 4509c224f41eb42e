"""Run a function on every rank of a gloo process group spawned on this machine, under a
deadline (modeled on xformers' tests/multiprocessing_utils.py).

Processes come from a forkserver that has imported torch and recperf once, so a group of
W ranks starts in well under a second after the first. The group rendezvous through a
file (no port to collide on). A rank reports its return value or its traceback; the call
fails when a rank fails, crashes, or the deadline passes (then every rank is killed), so
a test never hangs.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
import traceback
from datetime import timedelta

_CONTEXT = None


def _context():
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(["torch", "recperf", "recperf.distributed"])
    return _CONTEXT


def _worker(fn, rank, world_size, init_file, pg_timeout, barrier_at_end, queue, args):
    import torch.distributed as dist

    try:
        dist.init_process_group(
            "gloo",
            init_method=f"file://{init_file}",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=pg_timeout),
        )
        result = fn(rank, world_size, *args)
        if barrier_at_end:  # nobody leaves while a peer may still read from it
            dist.barrier()
        queue.put((rank, True, result))
    except BaseException:
        queue.put((rank, False, traceback.format_exc()))
    finally:
        os._exit(0)  # skip teardown: a failed group may block in it


def run_on_ranks(
    fn,
    world_size: int,
    *args,
    timeout: float = 60.0,
    pg_timeout: float = 30.0,
    may_exit: frozenset[int] = frozenset(),
    barrier_at_end: bool = True,
) -> list:
    """fn(rank, world_size, *args) on every rank; returns the results by rank (None for a
    rank in ``may_exit`` that exited without one)."""
    ctx = _context()
    queue = ctx.SimpleQueue()
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "rendezvous")
        procs = [
            ctx.Process(
                target=_worker,
                args=(fn, r, world_size, init_file, pg_timeout, barrier_at_end, queue, args),
            )
            for r in range(world_size)
        ]
        for p in procs:
            p.start()
        results, failures = {}, {}
        deadline = time.monotonic() + timeout
        try:
            while len(results) + len(failures) < world_size:
                while not queue.empty():
                    rank, ok, value = queue.get()
                    (results if ok else failures)[rank] = value
                pending = [r for r in range(world_size) if r not in results and r not in failures]
                exited = [r for r in pending if procs[r].exitcode is not None and queue.empty()]
                for r in exited:
                    if r in may_exit:
                        results[r] = None
                    else:
                        failures[r] = f"rank {r} exited (code {procs[r].exitcode}) without a result"
                if time.monotonic() > deadline:
                    raise TimeoutError(f"ranks {pending} still running after {timeout} s: killed")
                time.sleep(0.01)
        finally:
            for p in procs:
                if p.is_alive():
                    p.kill()
                p.join(timeout=5)
    if failures:
        detail = "\n".join(f"--- rank {r}:\n{tb}" for r, tb in sorted(failures.items()))
        raise AssertionError(f"{len(failures)} rank(s) failed:\n{detail}")
    return [results[r] for r in range(world_size)]
