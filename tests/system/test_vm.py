"""The .deb on a real Debian bookworm under systemd, with a real upsd and dummy-ups, in a VM.

One scenario, as an operator lives it, runs once (the ``story`` fixture) and records what happened; each
test then checks one thing a user would notice:

1. ``apt install ./piclusterd_*.deb``: enabled, started (dry-run), private state, unit verified, catalog in;
2. NUT serves a dummy UPS; piclusterd is switched to enforce with a shutdown command that only records
   its calls; the UPS goes OB, then OB LB (critical), then OL again;
3. a broken file is reloaded (refused, daemon unharmed), then the good one;
4. ``apt purge`` must leave nothing behind;
5. reinstalled, the packaged config as is (dry-run, ``systemctl poweroff``): at OB LB the node's own
   last-resort protection really powers the VM off, from inside the service's sandbox (issue 16: dry-run
   keeps only the cluster's actions dry);
6. the VM boots again and ``journalctl -b -1`` tells why it went down (docs/audit.md's first command).

Every wait polls a condition with a bound; a failed step says which and shows the VM's console.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from piclusterd.node.audit import message_id
from piclusterd.node.audit_catalog import EVENTS

from .conftest import BuiltPackage
from .vm import Vm, VmError, VmImage

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.root]

NODE = "pi-vm-1"
RECORDER = "/usr/local/sbin/record-shutdown"
CALLS = "/var/lib/piclusterd/shutdown-calls"
CONFIG = "/etc/piclusterd/piclusterd.toml"
NUT_ADMIN = "-u admin -p test-only-password"
#: Exposure reached by systemd/piclusterd.service (4.3 before it was tightened); a regression fails here.
MAX_EXPOSURE = 2.0
#: Where piclusterd leaves things; after apt purge none may remain.
PACKAGE_PATHS = (
    "/etc/piclusterd",
    "/var/lib/piclusterd",
    "/run/piclusterd",
    "/lib/systemd/system/piclusterd.service",
    "/etc/systemd/system/multi-user.target.wants/piclusterd.service",
    "/var/lib/systemd/deb-systemd-helper-enabled/piclusterd.service.dsh-also",
    "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/piclusterd.service",
    "/usr/lib/systemd/catalog/piclusterd.catalog",
    "/usr/lib/python3/dist-packages/piclusterd",
    "/usr/bin/piclusterd",
    "/usr/bin/piclusterctl",
    "/usr/share/man/man8/piclusterd.8.gz",
)

NUT_FILES = {
    "/etc/nut/nut.conf": "MODE=standalone\n",
    "/etc/nut/ups.conf": '[ups]\n  driver = dummy-ups\n  port = piclusterd-test.dev\n  desc = "system test"\n',
    "/etc/nut/piclusterd-test.dev": "ups.status: OL\nbattery.charge: 100\nbattery.runtime: 3600\nups.load: 20\n",
    "/etc/nut/upsd.conf": "LISTEN 127.0.0.1 3493\n",
    "/etc/nut/upsd.users": "[admin]\n  password = test-only-password\n  actions = SET\n  instcmds = ALL\n",
}
RECORDER_SCRIPT = f"""#!/bin/sh
# Stands in for `systemctl poweroff`: records the call (time in microseconds, arguments) and succeeds.
printf '%s %s\\n' "$(date +%s%6N)" "$*" >> {CALLS}
"""
ENFORCE = f"""mode = "enforce"
[node]
name = "{NODE}"
[ups]
host = "127.0.0.1"
name = "ups"
[policy]
recovery_debounce = "2s"
# This run checks upsmon's immediate path (OB LB at 50 %, 1500 s left): the default confirmation would wait
# 3 min there, which tests/unit/test_power_state.py and the real-upsd flicker test cover.
low_battery_confirm = "0s"
"""
RECORDING = ENFORCE + f'[shutdown]\ncommand = ["{RECORDER}", "from-piclusterd"]\n'
BROKEN = RECORDING.replace('name = "ups"', 'name = "ups"\npol_interval = "1s"')


@dataclass
class Story:
    """What the scenario saw, step by step, for the tests to check."""

    timings: dict[str, float] = field(default_factory=dict)
    after_install: dict[str, str] = field(default_factory=dict)
    verify: tuple[int, str] = (0, "")
    security: str = ""
    catalog: str = ""
    journal: list[dict[str, Any]] = field(default_factory=list)  # the enforce run's entries, in order
    status_text: str = ""
    systemctl_status: str = ""
    piclusterctl: str = ""
    calls: list[str] = field(default_factory=list)
    reload: dict[str, str] = field(default_factory=dict)
    leftovers_after_purge: list[str] = field(default_factory=list)
    poweroff_console: str = ""
    previous_boot: list[dict[str, Any]] = field(default_factory=list)


def journal(vm: Vm, *matches: str) -> list[dict[str, Any]]:
    """piclusterd's journal entries (``journalctl -o json``) matching ``FIELD=value`` ``matches``."""
    done = vm.run("journalctl -u piclusterd -o json --no-pager " + " ".join(shlex.quote(m) for m in matches))
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def wait_for_entry(vm: Vm, *matches: str, timeout_s: float = 90) -> dict[str, Any]:
    """The first journal entry matching, waiting up to ``timeout_s`` for it to appear."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = journal(vm, *matches)
        if found:
            return found[0]
        if time.monotonic() > deadline:
            recent = vm.run("journalctl -u piclusterd -n 25 --no-pager -o cat").stdout
            raise VmError(f"no journal entry {' '.join(matches)} within {timeout_s:.0f} s; piclusterd said:\n{recent}")
        time.sleep(0.3)  # poll the journal again


def wait_until(vm: Vm, script: str, what: str, timeout_s: float = 90) -> str:
    """Run ``script`` until it exits 0; its output."""
    deadline = time.monotonic() + timeout_s
    while True:
        done = vm.run(script)
        if done.status == 0:
            return done.stdout
        if time.monotonic() > deadline:
            raise VmError(f"{what}: not within {timeout_s:.0f} s ({script}: {done.stdout}{done.stderr})")
        time.sleep(0.3)  # poll again


def main_pid(vm: Vm) -> str:
    return vm.run("systemctl show -p MainPID --value piclusterd", check=True).stdout.strip()


def set_ups(vm: Vm, **variables: str) -> None:
    for name, value in variables.items():
        assignment = shlex.quote(f"{name.replace('_', '.')}={value}")
        vm.run(f"upsrw -s {assignment} {NUT_ADMIN} ups@127.0.0.1", check=True)


def install(vm: Vm) -> None:
    vm.run("apt-get install -y /root/piclusterd.deb", timeout_s=300, check=True)


def start_nut(vm: Vm) -> None:
    """A real upsd serving a dummy-ups, through Debian's own nut-server units; upsmon masked."""
    for path, text in NUT_FILES.items():
        vm.write(path, text, mode=0o640)
    vm.run(
        "chgrp nut /etc/nut/* && systemctl mask --now nut-monitor.service && "
        "systemctl restart nut-driver-enumerator.service && systemctl restart nut-server.service",
        timeout_s=120,
        check=True,
    )
    wait_until(vm, "upsc ups@127.0.0.1 ups.status | grep -qx OL", "upsd serving the dummy UPS")


def first_part(vm: Vm, package: BuiltPackage, story: Story) -> None:
    """Install, run an outage against the recording command, reload a broken file, purge."""
    vm.write("/root/piclusterd.deb", package.deb.read_bytes())
    started = time.monotonic()
    install(vm)
    story.timings["apt install"] = time.monotonic() - started
    story.after_install = {
        "enabled": vm.run("systemctl is-enabled piclusterd").stdout.strip(),
        "active": vm.run("systemctl is-active piclusterd").stdout.strip(),
        "mode": vm.run(f"sed -n 's/^mode = //p' {CONFIG}").stdout.strip(),
        "conffiles": vm.run("dpkg-query -W -f='${Conffiles}' piclusterd").stdout.strip(),
        "state_dir": vm.run("stat -c '%a %U' /var/lib/piclusterd").stdout.strip(),
        "ssh_key": vm.run("stat -c '%a %U' /var/lib/piclusterd/id_ed25519").stdout.strip(),
        "man": vm.run("man -w piclusterd piclusterctl").stdout.strip(),
    }
    wait_for_entry(vm, "PICLUSTER_EVENT=daemon.started", "PICLUSTER_MODE=dry-run")
    verified = vm.run("systemd-analyze verify /lib/systemd/system/piclusterd.service")
    story.verify = (verified.status, verified.stdout + verified.stderr)
    story.security = vm.run("systemd-analyze security --no-pager piclusterd.service").stdout
    story.catalog = vm.run("journalctl --list-catalog --no-pager").stdout

    start_nut(vm)
    vm.write(RECORDER, RECORDER_SCRIPT, mode=0o755)
    vm.write(CONFIG, RECORDING)
    vm.run("systemctl restart piclusterd", timeout_s=120, check=True)
    pid = main_pid(vm)
    on = f"_PID={pid}"
    wait_for_entry(vm, on, "PICLUSTER_EVENT=power.state_changed", "PICLUSTER_STATE=online")
    story.status_text = vm.run("systemctl show -p StatusText --value piclusterd").stdout.strip()
    story.systemctl_status = vm.run("systemctl status --no-pager piclusterd").stdout
    story.piclusterctl = vm.run("piclusterctl status").stdout

    # A broken file, then the good one again.
    vm.write(CONFIG, BROKEN)
    reloaded = vm.run("systemctl reload piclusterd", timeout_s=60)
    failed = wait_for_entry(vm, on, "PICLUSTER_EVENT=config.reload_failed")
    story.reload = {
        "exit status": str(reloaded.status),
        "error": failed.get("PICLUSTER_ERROR", ""),
        "pid after": main_pid(vm),
        "pid before": pid,
        "state after": wait_until(vm, "systemctl is-active piclusterd", "active after the refused reload").strip(),
    }
    vm.write(CONFIG, RECORDING)
    story.reload["good reload"] = str(vm.run("systemctl reload piclusterd", timeout_s=60).status)
    wait_for_entry(vm, on, "PICLUSTER_EVENT=config.reloaded")

    # The outage.
    set_ups(vm, battery_charge="50", battery_runtime="1500")
    set_ups(vm, ups_status="OB")
    wait_for_entry(vm, on, "PICLUSTER_EVENT=power.state_changed", "PICLUSTER_STATE=on_battery")
    set_ups(vm, ups_status="OB LB")
    wait_for_entry(vm, on, "PICLUSTER_EVENT=shutdown.local_started")
    wait_until(vm, f"test -s {CALLS}", "the shutdown command ran")
    set_ups(vm, ups_status="OL", battery_charge="100", battery_runtime="3600")
    wait_for_entry(vm, on, "PICLUSTER_EVENT=power.state_changed", "PICLUSTER_OLD=critical", "PICLUSTER_STATE=online")
    story.calls = vm.run(f"cat {CALLS}", check=True).stdout.splitlines()
    story.journal = journal(vm, on)

    started = time.monotonic()
    vm.run("apt-get purge -y piclusterd", timeout_s=300, check=True)
    story.timings["apt purge"] = time.monotonic() - started
    leftovers = vm.run(f"for p in {' '.join(PACKAGE_PATHS)}; do [ -e $p ] && echo $p; done; true").stdout.split()
    if vm.run("dpkg-query -W piclusterd").status == 0:
        leftovers.append("dpkg still knows piclusterd")
    if vm.run("systemctl list-unit-files --no-legend piclusterd.service").stdout.strip():
        leftovers.append("systemd still lists piclusterd.service")
    if "piclusterd" in vm.run("journalctl --list-catalog --no-pager").stdout:
        leftovers.append("journalctl --list-catalog still explains piclusterd events")
    story.leftovers_after_purge = leftovers


def second_part(vm: Vm, story: Story) -> None:
    """Reinstall; the packaged config (dry-run) protects the node at OB LB: the VM really powers off."""
    install(vm)
    set_ups(vm, ups_status="OB LB", battery_charge="10", battery_runtime="120")
    story.poweroff_console = vm.wait_for_poweroff(timeout_s=180)


@pytest.fixture(scope="module")
def story(
    built_package: BuiltPackage,
    vm_image: VmImage,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Story]:
    story = Story()
    if vm_image.build_seconds is not None:
        story.timings["image build (cold cache)"] = vm_image.build_seconds
    story.timings["deb build"] = built_package.build_seconds
    disk = tmp_path_factory.mktemp("vm") / "disk.qcow2"
    started = time.monotonic()
    with Vm(vm_image, disk) as vm:
        story.timings["first boot"] = vm.boot_seconds or 0.0
        first_part(vm, built_package, story)
        second_part(vm, story)
    with Vm(vm_image, disk) as vm:
        story.timings["second boot"] = vm.boot_seconds or 0.0
        story.previous_boot = [
            json.loads(line)
            for line in vm.run("journalctl -b -1 -u piclusterd -o json --no-pager", check=True).stdout.splitlines()
        ]
    disk.unlink()  # the overlay holds a few hundred MB of guest writes; its story is told
    story.timings["VM scenario"] = time.monotonic() - started
    summary = "VM test timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in story.timings.items())
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # in the CI log, not only on failure
            reporter.write_line("\n" + summary)
    yield story


def entries(story: Story, event: str) -> list[dict[str, Any]]:
    return [entry for entry in story.journal if entry.get("PICLUSTER_EVENT") == event]


def test_install_enables_and_starts_the_service_in_dry_run(story: Story) -> None:
    assert story.after_install["enabled"] == "enabled"
    assert story.after_install["active"] == "active"  # READY came although no upsd was set up yet
    assert story.after_install["mode"] == '"dry-run"'
    assert story.after_install["conffiles"].split()[0] == CONFIG


def test_state_directory_and_ssh_key_are_root_only(story: Story) -> None:
    assert story.after_install["state_dir"] == "700 root"
    assert story.after_install["ssh_key"] == "600 root"


def test_man_pages_are_installed(story: Story) -> None:
    assert story.after_install["man"].split() == [
        "/usr/share/man/man8/piclusterd.8.gz",
        "/usr/share/man/man1/piclusterctl.1.gz",
    ]


def test_the_unit_passes_systemd_analyze_verify(story: Story) -> None:
    assert story.verify == (0, "")


def test_the_sandbox_keeps_exposure_low(story: Story) -> None:
    found = re.search(r"Overall exposure level for piclusterd.service: ([0-9.]+)", story.security)
    assert found is not None, story.security
    assert float(found.group(1)) <= MAX_EXPOSURE, story.security


def test_journalctl_x_can_explain_every_event(story: Story) -> None:
    explained = set(re.findall(r"^([0-9a-f]{32}) piclusterd: ", story.catalog, flags=re.MULTILINE))
    assert explained == {message_id(event.name) for event in EVENTS}


def test_power_changes_are_journal_entries_with_their_fields(story: Story) -> None:
    changes = entries(story, "power.state_changed")
    assert [(c["PICLUSTER_OLD"], c["PICLUSTER_STATE"]) for c in changes] == [
        ("unknown", "online"),
        ("online", "on_battery"),
        ("on_battery", "critical"),
        ("critical", "online"),
    ]
    on_battery = changes[1]
    assert on_battery["PICLUSTER_NODE"] == NODE
    assert on_battery["PICLUSTER_CHARGE"] == "50"
    assert on_battery["PICLUSTER_RUNTIME"] == "1500"
    assert on_battery["MESSAGE_ID"] == message_id("power.state_changed")
    assert on_battery["PRIORITY"] == "4"  # warning
    assert changes[2]["PRIORITY"] == "2"  # critical
    assert changes[2]["PICLUSTER_REASON"] == "UPS reports low battery (OB LB)"


def test_the_shutdown_command_ran_once_after_saying_why(story: Story) -> None:
    (started,) = entries(story, "shutdown.local_started")
    assert started["PICLUSTER_REASON"] == "UPS reports low battery (OB LB)"
    # The enforce run; the packaged dry-run config is the second part.
    assert (started["PICLUSTER_MODE"], started["PICLUSTER_BY"]) == ("enforce", "local_protection")
    assert json.loads(started["PICLUSTER_COMMAND"]) == [RECORDER, "from-piclusterd"]
    assert started["MESSAGE_ID"] == message_id("shutdown.local_started")
    assert len(story.calls) == 1, story.calls  # still one after many polls at critical and mains back
    called_at_us, arguments = story.calls[0].split(" ", 1)
    assert arguments == "from-piclusterd"
    assert int(started["__REALTIME_TIMESTAMP"]) <= int(called_at_us)
    assert not entries(story, "shutdown.local_failed")


def test_systemctl_status_shows_the_power_state(story: Story) -> None:
    assert story.status_text.startswith("online, 100 %")
    assert f'Status: "{story.status_text}"' in story.systemctl_status


def test_piclusterctl_status_shows_the_live_state(story: Story) -> None:
    assert re.search(r"^node:\s+pi-vm-1$", story.piclusterctl, flags=re.MULTILINE), story.piclusterctl
    assert re.search(r"^state:\s+online \(UPS reports on line \(OL\)\)$", story.piclusterctl, flags=re.MULTILINE)


def test_a_broken_file_on_reload_is_refused_and_the_daemon_runs_on(story: Story) -> None:
    assert story.reload["exit status"] == "0"
    assert "ups.pol_interval: unknown key (did you mean 'poll_interval'?)" in story.reload["error"]
    assert story.reload["state after"] == "active"
    assert story.reload["pid after"] == story.reload["pid before"]
    assert story.reload["good reload"] == "0"


def test_purge_leaves_nothing_behind(story: Story) -> None:
    assert story.leftovers_after_purge == []


def test_the_packaged_config_powers_the_node_off_from_inside_the_sandbox(story: Story) -> None:
    assert "reboot: Power down" in story.poweroff_console


def test_after_the_outage_the_previous_boot_tells_why(story: Story) -> None:
    events = [e for e in story.previous_boot if "PICLUSTER_EVENT" in e]
    last_start = max(i for i, e in enumerate(events) if e["PICLUSTER_EVENT"] == "shutdown.local_started")
    started, *after = events[last_start:]
    assert json.loads(started["PICLUSTER_COMMAND"]) == ["systemctl", "poweroff"]
    assert started["PICLUSTER_REASON"] == "UPS reports low battery (OB LB)"
    assert (started["PICLUSTER_MODE"], started["PICLUSTER_BY"]) == ("dry-run", "local_protection")
    # Then the power-off stopped the daemon cleanly, still critical: nothing failed on the way down.
    assert [(e["PICLUSTER_EVENT"], e.get("PICLUSTER_STATE")) for e in after] == [("daemon.stopped", "critical")]
