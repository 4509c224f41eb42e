"""recperf bench --compare, --plot and --index on synthetic result files."""

import json

from recperf.benchmarks.compare import changes
from recperf.cli import main


def result(path, device, rows):
    meta = {"device": device, "date": "2026-11-28T00:00:00+00:00", "commit": "abc", "torch": "2.13"}
    path.write_text(json.dumps({"meta": meta, "rows": rows}))
    return path


def row(case, variant, ms, op="fm_pairwise", frac=0.5, speedup=1.0):
    return {"case": case, "variant": variant, "median_ms": ms, "op": op,
            "frac_of_floor": frac, "speedup_vs_eager": speedup}  # fmt: skip


def test_compare_flags_regressions_past_the_threshold(tmp_path, capsys):
    base = result(
        tmp_path / "a.json",
        "cpu",
        [row("c1", "cpp", 10.0), row("c2", "cpp", 10.0), row("c3", "cpp", 10.0)],
    )
    new = result(
        tmp_path / "b.json",
        "cpu",
        [
            row("c1", "cpp", 10.5),
            row("c2", "cpp", 12.0),
            row("c3", "cpp", 8.0),
            row("c4", "cpp", 1.0),
        ],
    )
    found = {
        c.case: c.verdict(0.10)
        for c in changes(json.loads(base.read_text()), json.loads(new.read_text()))
    }
    assert found == {"c1": "same", "c2": "regression", "c3": "improvement"}
    assert main(["bench", "--compare", str(base), str(new)]) == 1
    assert "1 regression(s), 3 rows compared" in capsys.readouterr().out
    assert main(["bench", "--compare", str(base), str(new), "--threshold", "0.25"]) == 0


def test_compare_warns_across_devices(tmp_path, capsys):
    base = result(tmp_path / "a.json", "cpu", [row("c1", "cpp", 10.0)])
    new = result(tmp_path / "b.json", "H100", [row("c1", "cpp", 10.0)])
    assert main(["bench", "--compare", str(base), str(new)]) == 0
    assert "different devices" in capsys.readouterr().out


def test_plot_writes_a_png(tmp_path):
    rows = [row("c1", v, 1.0, op=op, frac=f, speedup=s)
            for op in ("fm_pairwise", "linear_norm") for v, f, s in (("cpp", 0.4, 1.5), ("eager", 0.2, 1.0))]  # fmt: skip
    source = result(tmp_path / "r.json", "cpu", rows)
    png = tmp_path / "plot.png"
    assert main(["bench", "--from", str(source), "--plot", str(png)]) == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_index_lists_every_result(tmp_path):
    result(tmp_path / "2026-11-28-cpu.json", "CPU (2 threads)", [row("c1", "cpp", 1.0)])
    gpu = tmp_path / "2026-11-29-h100.json"
    gpu.write_text(json.dumps({"meta": {"device": "NVIDIA H100", "commit": "0123456789abcdef"},
                               "gpu_tests": {"counts": {"passed": 9, "failed": 1}}, "rows": []}))  # fmt: skip
    assert main(["bench", "--index", str(tmp_path)]) == 0
    text = (tmp_path / "README.md").read_text()
    assert "| 2026-11-28-cpu.json | CPU (2 threads) |" in text
    assert "| 2026-11-29-h100.json | NVIDIA H100 | ? | 0123456789 |" in text and "| 9/10 |" in text
