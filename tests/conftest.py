"""Settings for the whole suite."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Measure, don't assert speed (BENCHMARKS.md): Hypothesis's default 200 ms deadline per example and its
# too_slow health check fail properties on a loaded 2-core CI machine by timing luck, not by behaviour.
settings.register_profile("piclusterd", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("piclusterd")
