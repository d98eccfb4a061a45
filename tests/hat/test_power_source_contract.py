"""The PowerSource contract: what every power source must do, run against each of them.

To add a source, write a factory ``def make_xyz(request: pytest.FixtureRequest) -> Subject`` (it may use
other fixtures through ``request.getfixturevalue``, e.g. a running upsd) and append a ``pytest.param`` to
``SUBJECTS`` (with ``marks=pytest.mark.realnut`` for one that needs a real upsd). ``lose_mains`` must make the
next poll report mains lost: switch the UPS to battery and let any debounce time pass on the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from piclusterd.core.ports import PowerSource
from piclusterd.core.reading import MainsState, ParsedReading, UpsFlag
from piclusterd.drivers.hat import get_profile
from piclusterd.drivers.nut import NutPowerSource
from piclusterd.node.combined_source import CombinedPowerSource
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scripted_ups import ScriptedUps
from piclusterd.testing.emulated_hat import EmulatedHat
from piclusterd.testing.nut_server import NutServer


@dataclass
class Subject:
    """A source under test, the fake clock it was given, and how to make its mains fail."""

    source: PowerSource
    clock: FakeClock
    lose_mains: Callable[[], None]


SubjectFactory = Callable[[pytest.FixtureRequest], Subject]


def make_scripted_ups(_request: pytest.FixtureRequest) -> Subject:
    clock = FakeClock()
    ups = ScriptedUps(clock)
    return Subject(ups, clock, lambda: ups.drive(ups_status="OB DISCHRG"))


def make_nut_source(request: pytest.FixtureRequest) -> Subject:
    """The real NUT adapter against a real upsd + dummy-ups (stopped by a finalizer)."""
    server = NutServer({**NutServer.DEFAULT_VARIABLES, "ups.status": "OL"})
    server.start()
    request.addfinalizer(server.stop)
    clock = FakeClock()
    source = NutPowerSource(server.host, server.port, server.ups_name, clock=clock)
    return Subject(source, clock, lambda: server.set("ups.status", "OB DISCHRG"))


def hat_subject(key: str) -> SubjectFactory:
    def make(_request: pytest.FixtureRequest) -> Subject:
        hat = EmulatedHat(get_profile(key))

        def lose_mains() -> None:
            hat.lose_mains()
            hat.settle()

        return Subject(hat.source, hat.clock, lose_mains)

    return make


def make_combined(_request: pytest.FixtureRequest) -> Subject:
    """A scripted UPS and an emulated HAT fed by it, on one clock: the UPS sees the outage, the HAT does not."""
    hat = EmulatedHat(get_profile("geekworm-x1200"))
    ups = ScriptedUps(hat.clock, name="nut:ups1@10.0.0.2:3493")
    source = CombinedPowerSource([ups, hat.source], clock=hat.clock, stale_after_s=15.0)
    return Subject(source, hat.clock, lambda: ups.drive(ups_status="OB DISCHRG"))


SUBJECTS = [
    pytest.param(make_scripted_ups, id="scripted-ups"),
    pytest.param(hat_subject("geekworm-x728"), id="hat-geekworm-x728"),
    pytest.param(hat_subject("geekworm-x1200"), id="hat-geekworm-x1200"),
    pytest.param(hat_subject("waveshare-ups-hat-b"), id="hat-waveshare-ups-hat-b"),
    pytest.param(hat_subject("ups-lite-v1.2"), id="hat-ups-lite-v1.2"),
    pytest.param(make_nut_source, id="nut", marks=pytest.mark.realnut),
    pytest.param(make_combined, id="combined-ups-and-hat"),
]


@pytest.fixture(params=SUBJECTS)
def subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    factory: SubjectFactory = request.param
    made = factory(request)
    yield made
    made.source.close()


def poll(subject: Subject) -> ParsedReading:
    parsed = subject.source.poll()
    assert isinstance(parsed, ParsedReading)
    assert parsed.reading is not None, parsed.rejections
    return parsed


def test_name_is_a_non_empty_string_that_never_changes(subject: Subject) -> None:
    name = subject.source.name
    assert isinstance(name, str) and name
    poll(subject)
    subject.lose_mains()
    poll(subject)
    assert subject.source.name == name


def test_readings_carry_the_source_name(subject: Subject) -> None:
    reading = poll(subject).reading
    assert reading is not None and reading.source == subject.source.name


def test_poll_returns_a_parsed_reading_timed_by_the_injected_clock(subject: Subject) -> None:
    first = poll(subject).reading
    assert first is not None
    assert first.timestamp == subject.clock.monotonic() and first.wall_time == subject.clock.wall()
    subject.clock.advance(7.0)
    second = poll(subject).reading
    assert second is not None and second.timestamp == first.timestamp + 7.0
    assert second.wall_time == subject.clock.wall()


def test_mains_present_reads_ol(subject: Subject) -> None:
    reading = poll(subject).reading
    assert reading is not None
    assert UpsFlag.OL in reading.flags and reading.mains is MainsState.PRESENT


def test_mains_lost_reads_ob(subject: Subject) -> None:
    poll(subject)
    subject.lose_mains()
    reading = poll(subject).reading
    assert reading is not None
    assert UpsFlag.OB in reading.flags and reading.mains is MainsState.LOST


def test_close_is_idempotent(subject: Subject) -> None:
    poll(subject)
    subject.source.close()
    subject.source.close()
