"""Measure: from ``upsrw -s ups.status=OB`` returning until ``NutPowerSource.poll()`` sees OB.

Not a test (nothing is asserted): a figure for comparing with upsmon (about 2.0 s with POLLFREQ 5 on the
same machine). Run with ``.venv/bin/python tests/nut/measure_poll_latency.py [runs]``.

The source is polled back to back, so the figure is upsd + dummy-ups + one LIST VAR round trip, not a
daemon's poll interval. Runs start at random points of dummy-ups' 2 s loop, which sleeps about 1 s in
every round and applies a SET only outside that sleep.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import time

from piclusterd.core.reading import UpsFlag
from piclusterd.drivers.nut import NutPowerSource
from piclusterd.testing.nut_server import NutServer


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


def main(runs: int) -> None:
    figures: list[float] = []
    with NutServer() as server:
        source = NutPowerSource(server.host, server.port, server.ups_name, clock=SystemClock())
        try:
            source.poll()
            for _ in range(runs):
                time.sleep(random.uniform(0.0, 2.0))  # a random phase of the driver's loop
                argv = ["upsrw", "-s", "ups.status=OB", "-u", server.username, "-p", server.password]
                subprocess.run([*argv, server.address], check=True, capture_output=True)
                start = time.monotonic()
                while True:
                    parsed = source.poll()
                    if parsed.reading is not None and UpsFlag.OB in parsed.reading.flags:
                        break
                figures.append(time.monotonic() - start)
                server.set("ups.status", "OL")
                source.poll()
        finally:
            source.close()
    shown = ", ".join(f"{f * 1000:.1f}" for f in figures)
    print(f"runs: {runs}; ms: {shown}")
    print(
        f"median {statistics.median(figures) * 1000:.1f} ms, "
        f"min {min(figures) * 1000:.1f} ms, max {max(figures) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
