"""tools/check_triton_sources.py: the rules it fails on, and (slow) one real capture and
sm_90a compile in a process of its own (the interpreter that tests/conftest.py switches on
would turn the kernels into interpreted ones here)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
spec = importlib.util.spec_from_file_location("check", ROOT / "tools" / "check_triton_sources.py")
check = importlib.util.module_from_spec(spec)
_interpret = os.environ.get("TRITON_INTERPRET")
spec.loader.exec_module(check)  # pops TRITON_INTERPRET: put it back for the other tests
if _interpret is not None:
    os.environ["TRITON_INTERPRET"] = _interpret

import triton_capture  # noqa: E402


def launch(kernel="_k", ptrs=("*bf16",), origins=("bench fm x",)):
    signature = {f"p{i}": t for i, t in enumerate(ptrs)} | {"BLOCK_N": "constexpr"}
    return triton_capture.Launch(
        "fm", kernel, "{}", 8, 3, {str(len(ptrs)): 64}, signature, list(origins)
    )


def result(spill=0, shared=1024):
    return {"registers": 128, "spill_bytes": spill, "shared": shared}


def test_rules(monkeypatch):
    assert check.judge(launch(), result()) == []
    assert "compile error" in check.judge(launch(), {"error": "boom"})[0]
    over = check.judge(launch(), result(shared=check.SMEM_LIMIT + 1))
    assert len(over) == 1 and "shared memory" in over[0]
    # spills fail a 16-bit / fp8 kernel at a benchmark shape, nothing else
    assert "spills 8 B" in check.judge(launch(), result(spill=8))[0]
    assert "spills" in check.judge(launch(ptrs=("*fp8e4nv", "*fp32")), result(spill=8))[0]
    assert check.judge(launch(ptrs=("*fp32",)), result(spill=8)) == []
    assert check.judge(launch(origins=("test fm",)), result(spill=8)) == []
    monkeypatch.setitem(check.ALLOWED_SPILLS, "_planted", "a planted entry")
    assert check.judge(launch(kernel="_planted"), result(spill=8)) == []
    assert check.family(launch()) == "fm._k [bf16] w8s3" and check.tiles(launch()) == "N=64"


@pytest.mark.slow
def test_a_real_launch_is_captured_and_compiled_for_sm90a(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "cache")
    out = tmp_path / "launches.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "check_triton_sources.py"),
         "--filter", "test permute_chunks unaligned", "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "a2a._permute_rows_kernel [i64,u8] w4s3" in done.stdout
    import json

    rows = json.loads(out.read_text())
    assert rows and all(r["registers"] > 0 and "error" not in r for r in rows)
    assert all(r["origins"] == ["test permute_chunks unaligned"] for r in rows)
    # the unaligned uint8 view is moved in bytes, as the launcher chose for it
    assert all(r["signature"]["in_ptr"] == "*u8" for r in rows)
