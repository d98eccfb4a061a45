"""Bash completion (completions/piclusterd) offers the commands and options that exist."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from piclusterd.sim.cluster_demo import clusters
from piclusterd.sim.simulator import OUTAGES

COMPLETION = Path(__file__).resolve().parents[2] / "completions" / "piclusterd"


def complete(*words: str) -> list[str]:
    """What bash offers for the last of ``words`` (the word being typed, possibly empty)."""
    script = (
        f"source {COMPLETION}; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
        f"COMP_CWORD={len(words) - 1}; _piclusterd; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    )
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, check=True)
    return [line for line in done.stdout.splitlines() if line]


@pytest.mark.parametrize(
    ("words", "offered"),
    [
        (("piclusterd", ""), ["run", "check-config", "demo", "--version", "--help"]),
        (("piclusterd", "ch"), ["check-config"]),
        (("piclusterctl", ""), ["status", "keygen", "doctor", "report", "--version", "--help"]),
        (("piclusterctl", "report", "--j"), ["--json", "--journal-file", "--journal-dir"]),
        (("piclusterctl", "report", "--outage", ""), ["latest"]),
        (("piclusterctl", "keygen", "--"), ["--out", "--help"]),
        (("piclusterd", "run", "--log-format", "j"), ["json", "journal"]),
        (("piclusterd", "demo", "--outage", ""), list(OUTAGES)),
        (("piclusterd", "demo", "--cluster", ""), clusters()),
        (("piclusterd", "demo", "--h"), ["--hold", "--help"]),
        (("piclusterctl", "status", "--j"), ["--json"]),
    ],
)
def test_completion_offers(words: tuple[str, ...], offered: list[str]) -> None:
    assert complete(*words) == offered
