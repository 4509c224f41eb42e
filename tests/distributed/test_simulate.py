"""The alpha-beta simulator: its formulas on hand-checked cases, its monotonic trends, and
the command line (which must say these are model predictions)."""

from __future__ import annotations

import pytest

from recperf.distributed.simulate import Links, main, parse_bytes, predict


def test_single_host_has_no_nic_traffic():
    p = predict(1, 8, 1 << 16, Links(), tower_ratio=0.25)
    assert p.flat_us == pytest.approx(7 * (2.0 + (1 << 16) / 450e3))
    assert p.tower_us == p.hierarchical_us > p.flat_us  # the extra pack pass, nothing saved


def test_hand_checked_two_hosts():
    links = Links(intra_gbps=100, intra_latency_us=1, nic_gbit=80, nic_latency_us=10, hbm_gbps=1000)
    m = 10_000
    p = predict(2, 2, m, links, tower_ratio=0.5)
    assert p.flat_us == pytest.approx(max(1 * (1 + m / 100e3), 2 * (10 + m / 10e3)))
    step1, packs = 1 + 2 * m / 100e3, 2 * (2 * 4 * m / 1000e3)
    assert p.hierarchical_us == pytest.approx(step1 + packs + (10 + 2 * m / 10e3))
    assert p.tower_us == pytest.approx(step1 + packs + (10 + 0.5 * 2 * m / 10e3))


def test_hierarchy_pays_off_across_hosts_for_small_messages():
    for hosts in (2, 16, 64):
        p = predict(hosts, 8, 4096, Links(), tower_ratio=1.0)
        assert p.hierarchical_us < p.flat_us


def test_parse_bytes():
    assert (
        parse_bytes("64K") == 65536 and parse_bytes("1MiB") == 1 << 20 and parse_bytes("100") == 100
    )


def test_cli(capsys):
    assert main(["--message-bytes", "16K", "--max-gpus", "64"]) == 0
    out = capsys.readouterr().out
    assert "MODEL PREDICTIONS" in out and "not measurements" in out
    assert [line.split()[0] for line in out.splitlines()[3:]] == ["2", "4", "8", "16", "32", "64"]
    assert main(["--min-gpus", "1"]) == 2
