"""The outage report's figures from journal entries (pure): outages, the battery's trend, hostile entries."""

from __future__ import annotations

import datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from piclusterd.core.outage_report import build_report, parse_entries, render_report

DAY = 86400.0
T0 = datetime.datetime(2026, 6, 1, 2, 0, tzinfo=datetime.UTC).timestamp()


def entry(at: float, node: str, event: str, **fields: object) -> dict[str, Any]:
    out: dict[str, Any] = {
        "__REALTIME_TIMESTAMP": str(round(at * 1e6)),
        "PICLUSTER_EVENT": event,
        "PICLUSTER_NODE": node,
    }
    out.update({f"PICLUSTER_{k.upper()}": str(v) for k, v in fields.items()})
    return out


def stamp(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def outage(start: float, hours: float, charge_from: float, charge_to: float, energy_wh: float) -> list[dict[str, Any]]:
    end = start + hours * 3600
    return [
        entry(start, "pi1", "power.state_changed", old="online", new="on_battery", charge_pct=charge_from),
        entry(start + 5, "pi1", "outage.started", started_at=stamp(start), charge_pct=charge_from),
        entry(end - 60, "pi1", "power.state_changed", old="on_battery", new="low_battery", charge_pct=charge_to),
        entry(end, "pi1", "power.state_changed", old="low_battery", new="online", charge_pct=charge_to),
        entry(
            end + 600,
            "pi1",
            "outage.summary",
            started_at=stamp(start),
            ended_at=stamp(end + 600),
            mains_back_at=stamp(end),
            energy_used_wh=energy_wh,
            critical_downtime_s=0,
            charge_at_start_pct=charge_from,
        ),
    ]


def report_of(raw: list[dict[str, Any]], capacity_wh: float | None = None):  # type: ignore[no-untyped-def]
    entries, skipped = parse_entries(raw)
    return build_report(entries, capacity_wh=capacity_wh, skipped=skipped)


def test_an_ageing_battery_is_said_with_its_numbers() -> None:
    """The same 60 % drop delivers 48 Wh in June and 38 Wh in October: 0.80 -> 0.63 Wh per %."""
    raw = (
        outage(T0, 2, 100, 40, 48.0)
        + outage(T0 + 30 * DAY, 2, 100, 40, 47.0)
        + outage(T0 + 100 * DAY, 2, 100, 40, 39.0)
        + outage(T0 + 130 * DAY, 2, 100, 40, 37.0)
    )
    report = report_of(raw)
    assert len(report.outages) == 4
    assert report.trend.ageing
    assert "the battery is ageing: 0.79 Wh per % of charge in 2026-06, 0.63 Wh per % in 2026-10" in report.trend.message
    assert "(20 % less over 130 days)" in report.trend.message


def test_a_healthy_battery_holds_and_too_few_outages_say_so() -> None:
    healthy = report_of(
        outage(T0, 2, 100, 40, 48.0) + outage(T0 + 40 * DAY, 2, 100, 50, 40.5) + outage(T0 + 80 * DAY, 2, 90, 30, 47.0)
    )
    assert not healthy.trend.ageing and healthy.trend.message.startswith("battery holds: 0.81 -> 0.80")
    few = report_of(outage(T0, 2, 100, 40, 48.0))
    assert not few.trend.ageing and "1 outage(s)" in few.trend.message


def test_flickers_kept_as_one_outage_by_the_leader_are_one_outage() -> None:
    start = T0
    raw = [
        entry(start, "pi1", "power.state_changed", old="online", new="on_battery", charge_pct=90),
        entry(start + 5, "pi1", "outage.started", started_at=stamp(start), charge_pct=90),
        entry(start + 600, "pi1", "power.state_changed", old="on_battery", new="online", charge_pct=85),
        entry(start + 620, "pi1", "power.state_changed", old="online", new="on_battery", charge_pct=85),
        entry(start + 1800, "pi1", "power.state_changed", old="on_battery", new="online", charge_pct=70),
        entry(
            start + 2400,
            "pi1",
            "outage.summary",
            started_at=stamp(start),
            ended_at=stamp(start + 2400),
            mains_back_at=stamp(start + 1800),
            energy_used_wh=16.0,
            critical_downtime_s=0,
        ),
        # a later, separate outage on a node without the cluster side: no record, charges only
        entry(start + DAY, "pi1", "power.state_changed", old="online", new="on_battery", charge_pct=100),
        entry(start + DAY + 900, "pi1", "power.state_changed", old="on_battery", new="online", charge_pct=90),
    ]
    report = report_of(raw, capacity_wh=84.0)
    first, second = report.outages
    assert (first.duration_s, first.energy_wh) == (1800, 16.0)
    assert second.energy_wh == 8.4 and second.critical_downtime_s is None  # 10 % of 84 Wh
    text = "\n".join(render_report(report, second))
    assert "critical downtime: unknown (no outage record" in text
    assert "energy: 8.4 Wh of 84 Wh (10 % of capacity); charge 100 % -> 90 %; 0.84 Wh per %" in text


def test_a_node_that_halted_on_battery_does_not_say_when_mains_came_back() -> None:
    raw = [
        entry(T0, "pi1", "power.state_changed", old="online", new="on_battery", charge_pct=50),
        entry(T0 + 900, "pi1", "shutdown.local_started", by="local_protection"),
        entry(T0 + 7200, "pi1", "daemon.started"),
        entry(T0 + 7201, "pi1", "power.state_changed", old="unknown", new="online", charge_pct=20),
    ]
    (only,) = report_of(raw).outages
    assert only.mains_back is None and only.duration_s is None
    assert "back not seen in this journal" in "\n".join(render_report(report_of(raw), only))


def test_garbage_entries_are_skipped_and_counted() -> None:
    raw = [
        *outage(T0, 1, 100, 80, 20.0),
        {"PICLUSTER_EVENT": "power.state_changed"},  # no time
        entry(T0 + 10, "pi2", "power.state_changed", new="on_battery", charge_pct="NaN"),
        {"__REALTIME_TIMESTAMP": "1" * 40, "PICLUSTER_EVENT": "node.restored"},
        {"__REALTIME_TIMESTAMP": "12", "PICLUSTER_EVENT": ["node.drained", "x"], "PICLUSTER_TARGET": [1, 2]},
        {"__REALTIME_TIMESTAMP": "12", "PICLUSTER_EVENT": "not.ours"},
    ]
    report = report_of(raw)
    assert report.skipped == 3
    assert len(report.outages) == 1


@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(
                [
                    "__REALTIME_TIMESTAMP",
                    "PICLUSTER_EVENT",
                    "PICLUSTER_NODE",
                    "PICLUSTER_NEW",
                    "PICLUSTER_CHARGE_PCT",
                    "PICLUSTER_STARTED_AT",
                    "PICLUSTER_ENDED_AT",
                    "PICLUSTER_TARGET",
                    "PICLUSTER_MAINS_BACK_AT",
                    "PICLUSTER_ENERGY_USED_WH",
                ]
            ),
            st.one_of(
                st.text(max_size=30),
                st.sampled_from(
                    [
                        "on_battery",
                        "online",
                        "power.state_changed",
                        "outage.summary",
                        "outage.started",
                        "2026-06-01T02:00:00Z",
                        "1780279200000000",
                        "1e400",
                    ]
                ),
                st.lists(st.text(max_size=5), max_size=2),
                st.none(),
                st.integers(),
            ),
        ),
        max_size=30,
    )
)
def test_any_journal_entries_give_a_report_or_nothing_never_an_error(raw: list[dict[str, Any]]) -> None:
    report = report_of(raw, capacity_wh=84.0)
    for each in report.outages:
        render_report(report, each)
