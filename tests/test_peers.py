"""Bounded peers and the descriptor budget, alone (the transports use them in
test_virtual_bus.py, test_status_page.py and test_serve_peers.py)."""

from __future__ import annotations

import logging
import resource

from mlsensors.transports import descriptors
from mlsensors.transports.peers import PeerLimits, PeerLog, PeerTable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_table_caps_evicts_the_stalest_idle_peer_and_spares_busy_ones():
    clock = Clock()
    table: PeerTable[str] = PeerTable(PeerLimits(3, idle_timeout=60, evict_after=2), clock)
    assert [table.admit(p) for p in "abc"] == [(True, None)] * 3
    assert table.admit("d") == (False, None), "all busy within evict_after: refused"
    clock.now += 5
    table.touch("a")
    table.touch("c")
    assert table.admit("d") == (True, "b"), "b is the one idle longest"
    clock.now += 1
    assert table.admit("e") == (False, None), "nobody idle for 2 s yet"
    table.pin("a")
    clock.now += 10
    assert table.admit("e")[1] == "c", "a is pinned; c is the stalest of the rest"
    assert sorted(table.peers()) == ["a", "d", "e"]
    assert table.remove("d") and not table.remove("d")


def test_table_idle_timeout_and_no_eviction():
    clock = Clock()
    table: PeerTable[str] = PeerTable(PeerLimits(2, idle_timeout=30, evict_after=None),
                                      clock)
    table.admit("a")
    table.admit("b")
    clock.now += 1000
    assert table.admit("c") == (False, None), "evict_after=None never evicts"
    table.pin("b")
    assert table.expired() == ["a"] and len(table) == 1, "pinned peers do not expire"
    assert PeerLimits(64).capped(10).max_peers == 10
    assert PeerLimits(64).capped(0).max_peers == 1


def test_log_writes_one_line_per_interval_with_counts(caplog):
    clock = Clock()
    events = PeerLog(logging.getLogger("test.peers"), "bus", interval=10, clock=clock)
    with caplog.at_level(logging.INFO, logger="test.peers"):
        events.note("connections refused", "all 4 slots busy")
        assert events.lines == 1, "the first event after a quiet spell is logged at once"
        for i in range(4000):
            events.note("malformed clients closed", f"garbage {i}")
            clock.now += 0.001
        events.note("connections refused")
        assert events.lines == 1
        clock.now += 10
        events.flush()
        events.flush(force=True)
    assert events.lines == 2 and events.total == 4002
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "bus: 1 connections refused (last: all 4 slots busy)"
    assert lines[1].startswith("bus: 4000 malformed clients closed (last: garbage 3999); "
                               "1 connections refused"), lines[1]
    assert "in the last 14 s" in lines[1]


def test_descriptor_budget_raises_the_soft_limit_and_keeps_a_reserve():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        raised = descriptors.raise_soft_limit(ceiling=4096)
        assert raised == min(hard, 4096)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == raised
        share = descriptors.peer_share(2)
        assert share == (raised - descriptors.open_count() - descriptors.RESERVE) // 2
        resource.setrlimit(resource.RLIMIT_NOFILE, (50, hard))
        assert descriptors.peer_share(2) == 1, "never zero, even when nothing is left"
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
