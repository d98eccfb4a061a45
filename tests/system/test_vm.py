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
   keeps only the cluster's actions dry). The UPS-kill and power-cut flags of a last node are armed first:
   the system-shutdown hook tells the NUT emulator on the host (QEMU's user network) to cut the UPS's output,
   once the file systems are read-only, and decides the HAT's pulse (issue 19, issue 15);
6. the VM boots again and ``journalctl -b -1`` tells why it went down (docs/audit.md's first command);
7. ``piclusterctl doctor --json`` checks this node against the host's NUT emulator (issue 14's node part);
8. the daemon, on a one-node cluster (the fake API server on the host) whose kubelet's graceful shutdown is
   off, self-drains at OB LB before its real ``systemctl poweroff``: a workload process run as a pod by a
   kubelet stand-in gets its SIGTERM from that eviction and finishes its flush (write + fsync) before the
   halt (issue 19). This proves piclusterd's ordering with a real signal to a real process, not a real kubelet.

Along the way, in the first boot: the HAT chip drivers run over the kernel's i2c-stub through smbus2, and the
installed daemon runs an X1200 profile on the libgpiod backend, its GPIO6 on a real kernel GPIO chip (gpio-sim,
built for the VM's kernel by gpio_sim.py) labelled as a Pi 5's header, whose power-cut line GPIO26 the hook
then pulses at the real poweroff (issue 15); and the shipped unit's sandbox is probed for boot detection and
the RTC wake alarm, and scored offline (issue 13).

Every wait polls a condition with a bound; a failed step says which and shows the VM's console.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from piclusterd.node.audit import message_id
from piclusterd.node.audit_catalog import EVENTS
from piclusterd.node.clock import SystemClock
from piclusterd.sim.fake_api_server import FakeKubeServer, RequestRecord, make_node, make_pod
from piclusterd.sim.fake_rbac import DAEMON_TOKEN
from piclusterd.testing.nut_emulator import NutEmulator, ReceivedRequest

from .conftest import REPO, BuiltPackage
from .vm import HOST_FROM_GUEST, Vm, VmError, VmImage

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
    report: dict[str, Any] = field(default_factory=dict)  # piclusterctl report --json after the outage
    security_offline: str = ""
    sandbox_probe: dict[str, Any] = field(default_factory=dict)
    btime: float = 0.0
    sandbox_probe_without_rtc_line: dict[str, Any] = field(default_factory=dict)
    i2c: dict[str, Any] = field(default_factory=dict)
    ups_armed: str = ""
    ups_port: int = 0
    ups_received: list[ReceivedRequest] = field(default_factory=list)
    doctor: dict[str, Any] = field(default_factory=dict)  # piclusterctl doctor --json, in the second boot
    doctor_status: int = -1
    doctor_port: int = 0
    self_drain_console: str = ""  # the serial console of the second boot, to its self-drained halt
    api_requests: list[RequestRecord] = field(default_factory=list)
    workload_pod_after: dict[str, Any] | None = None
    gpio: dict[str, Any] = field(default_factory=dict)  # the X1200 daemon on gpio-sim


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


# --- issue 15: the HAT chip drivers over the kernel's i2c-stub, through smbus2 ---

INA219_ADDRESS, GAUGE_ADDRESS, ABSENT_ADDRESS = 0x43, 0x36, 0x41  # Waveshare UPS HAT (C); X728/X120x gauge


def ina219_registers(*, amps: float, volts: float) -> dict[int, int]:
    """An INA219 on the UPS HAT (C) (0.01 ohm, CAL 26868, CONFIG 0x0EEF: Waveshare's INA219.py), by the
    datasheet's formulas (TI SBOS448), as tests/hat/test_vendor_vectors.py computes them."""
    cal, config, shunt_ohm = 26868, 0x0EEF, 0.01
    shunt = round(max(-0.08, min(0.08, amps * shunt_ohm)) / 10e-6)
    current = int(shunt * cal / 4096)  # truncated, as the chip does
    bus = int(volts / 0.004)
    power = int(abs(current) * bus / 5000)
    overflow = not -0x8000 <= current <= 0x7FFF
    if overflow:
        current, power = -0x8000, 0xFFFF
    return {0: config, 1: shunt & 0xFFFF, 2: (bus << 3) | 0b10 | int(overflow), 3: power, 4: current & 0xFFFF, 5: cal}


def max17040_registers(volts: float, soc_pct: float) -> dict[int, int]:
    """A MAX17040 (VCELL bits 15-4 x 1.25 mV, SOC high byte %, VERSION 0x0003, RCOMP 0x9700)."""
    return {2: round(volts / 1.25e-3) << 4, 4: round(soc_pct * 256), 6: 0, 8: 0x0003, 0x0C: 0x9700}


I2C_CHECK = r"""
# Run in the VM: the HAT chip drivers over i2c-stub, through the real kernel and smbus2 (issue 15).
import json, sys
from pathlib import Path
from smbus2 import SMBus
from piclusterd.core.errors import PiclusterError
from piclusterd.drivers.hat import get_profile
from piclusterd.drivers.ina219 import Ina219
from piclusterd.drivers.max1704x import Max1704x, Max1704xVariant

spec = json.loads(sys.argv[1])
(number,) = [
    int(p.name.split("-")[1]) for p in Path("/sys/bus/i2c/devices").glob("i2c-*")
    if (p / "name").read_text().strip() == "SMBus stub driver"
]
bus = SMBus(number)


def load(address, registers):
    # An SMBus word carries the first byte on the wire in its low byte (i2c-core-smbus.c emulation:
    # data->word = msgbuf1[0] | msgbuf1[1] << 8); these chips send their registers MSB first.
    for register, value in registers.items():
        bus.write_word_data(address, int(register), int.from_bytes(value.to_bytes(2, "big"), "little"))


def on_the_wire(address, register):
    return int.from_bytes(bus.read_word_data(address, register).to_bytes(2, "little"), "big")


def ina219(sample):
    keys = ("bus_volts", "shunt_volts", "current_a", "power_w", "overflow", "recalibrated")
    return {key: getattr(sample, key) for key in keys}


out = {"bus": number}
chip = Ina219(bus, address=0x43, bus_number=number, calibration=get_profile("waveshare-ups-hat-c").ina219_calibration)
for case in ("discharge", "overflow", "brown_out"):
    load(0x43, spec[case])
    out[case] = ina219(chip.read())
out["written"] = {"config": on_the_wire(0x43, 0), "cal": on_the_wire(0x43, 5)}  # what the brown-out read restored
load(0x36, spec["max17040"])
gauge = Max1704x(bus, Max1704xVariant.MAX17048, address=0x36, bus_number=number)  # the chip says which it is
gauge.identify()
sample = gauge.read()
out["gauge"] = {"variant": gauge.variant.name, "volts": sample.cell_volts, "soc": sample.soc_pct,
                "crate": sample.crate_pct_per_h, "status": sample.status}
try:
    bus.read_word_data(0x41, 0)
except OSError as error:
    out["absent_errno"] = error.errno
try:
    Ina219(bus, address=0x41, bus_number=number).read()
except PiclusterError as error:
    out["absent_error"] = [type(error).__name__, str(error)]
print(json.dumps(out))
"""


def check_i2c(vm: Vm, story: Story) -> None:
    spec = {
        "discharge": ina219_registers(amps=-0.60, volts=3.85),
        "overflow": ina219_registers(amps=-6.0, volts=3.85),
        "brown_out": {**ina219_registers(amps=-0.60, volts=3.85), 0: 0x399F, 5: 0},  # power-on CONFIG, CAL 0
        "max17040": max17040_registers(3.85, 75.5),
    }
    vm.write("/root/i2c_check.py", I2C_CHECK)
    vm.run(
        f"modprobe i2c-dev && modprobe i2c-stub chip_addr=0x{GAUGE_ADDRESS:02x},0x{INA219_ADDRESS:02x} && "
        "udevadm settle",
        check=True,
    )
    done = vm.run(f"python3 /root/i2c_check.py {shlex.quote(json.dumps(spec))}", check=True)
    story.i2c = json.loads(done.stdout)
    vm.run("rmmod i2c-stub")


# --- issue 15: the daemon with a HAT profile on the libgpiod backend, on a real kernel GPIO chip ---

SIM = "/sys/kernel/config/gpio-sim/pi5"
#: The X1200's gauge (a MAX17040 at 0x36) on i2c-stub; its GPIO6 on a gpio-sim chip labelled as a Pi 5's header.
HAT = f"""mode = "dry-run"
[node]
name = "{NODE}"
[ups]
driver = "hat"
[policy]
recovery_debounce = "2s"
[hat]
profile = "geekworm-x1200"
i2c_bus = {{bus}}
"""
LOAD_GAUGE = r"""
import json, sys
from pathlib import Path
from smbus2 import SMBus
(number,) = [
    int(p.name.split("-")[1]) for p in Path("/sys/bus/i2c/devices").glob("i2c-*")
    if (p / "name").read_text().strip() == "SMBus stub driver"
]
with SMBus(number) as bus:
    for register, value in json.loads(sys.argv[1]).items():
        bus.write_word_data(0x36, int(register), int.from_bytes(value.to_bytes(2, "big"), "little"))
print(number)
"""
#: Who holds GPIO6, as Debian's libgpiod 1.6 binding sees the line (gpioinfo's view).
LINE_INFO = r"""
import gpiod, json, sys
chip = gpiod.Chip(sys.argv[1], gpiod.Chip.OPEN_BY_PATH)
line = chip.get_line(6)
bias = {gpiod.Line.BIAS_PULL_UP: "pull-up", gpiod.Line.BIAS_PULL_DOWN: "pull-down"}.get(line.bias(), str(line.bias()))
print(json.dumps({"label": chip.label(), "consumer": line.consumer(), "used": line.is_used(), "bias": bias,
                  "input": line.direction() == gpiod.Line.DIRECTION_INPUT}))
"""
#: Test only: at the real poweroff, watches GPIO26 on the gpio-sim chip while the power-cut hook pulses it.
WATCH_PULSE_HOOK = """#!/bin/sh
value={value}
[ -e $value ] || exit 0  # a later boot: no gpio-sim chip
i=0
while [ $i -lt 1000 ]; do  # 20 s at most; the pulse holds 3.5 s
    if [ "$(cat $value)" = 1 ]; then
        echo "vm-test-gpio: GPIO26 high on the gpio-sim chip" > /dev/kmsg
        while [ "$(cat $value)" = 1 ]; do sleep 0.02; done
        echo "vm-test-gpio: GPIO26 low again" > /dev/kmsg
        exit 0
    fi
    i=$((i + 1))
    sleep 0.02
done
echo "vm-test-gpio: GPIO26 never went high" > /dev/kmsg
"""


def check_hat_daemon(vm: Vm, story: Story, module: Path) -> None:
    """A gpio-sim chip labelled ``pinctrl-rp1``; the installed daemon on an X1200 profile; GPIO6 driven low."""
    vm.write("/root/gpio-sim-vm.ko", module.read_bytes())
    chip = vm.run(
        "modprobe configfs && (mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config) && "
        f"insmod /root/gpio-sim-vm.ko && mkdir {SIM} {SIM}/bank0 && echo 54 > {SIM}/bank0/num_lines && "
        f"echo pinctrl-rp1 > {SIM}/bank0/label && echo 1 > {SIM}/live && udevadm settle && "
        f"echo $(cat {SIM}/dev_name) $(cat {SIM}/bank0/chip_name)",
        check=True,
    ).stdout.split()
    device, chip_name = chip
    story.gpio["sysfs"] = f"/sys/devices/platform/{device}/{chip_name}"
    vm.run(f"modprobe i2c-stub chip_addr=0x{GAUGE_ADDRESS:02x} && udevadm settle", check=True)
    vm.write("/root/load_gauge.py", LOAD_GAUGE)
    gauge = json.dumps(max17040_registers(3.85, 75.5))
    bus = vm.run(f"python3 /root/load_gauge.py {shlex.quote(gauge)}", check=True).stdout.strip()
    vm.write(CONFIG, HAT.format(bus=bus))
    vm.run("systemctl restart piclusterd", timeout_s=120, check=True)
    pid = main_pid(vm)
    on = f"_PID={pid}"
    wait_for_entry(vm, on, "PICLUSTER_EVENT=power.state_changed", "PICLUSTER_STATE=online")
    vm.write("/root/line_info.py", LINE_INFO)
    story.gpio["line"] = json.loads(vm.run(f"python3 /root/line_info.py /dev/{chip_name}", check=True).stdout)
    story.gpio["daemon_fds"] = vm.run(f"readlink /proc/{pid}/fd/*", check=True).stdout.split()
    pull = f"{story.gpio['sysfs']}/sim_gpio6/pull"
    vm.run(f"echo pull-down > {pull}", check=True)  # the X1200 pulls GPIO6 low when its supply fails
    wait_for_entry(vm, on, "PICLUSTER_EVENT=power.state_changed", "PICLUSTER_STATE=on_battery")
    vm.run(f"echo pull-up > {pull}", check=True)
    wait_for_entry(vm, on, "PICLUSTER_EVENT=power.state_changed", "PICLUSTER_OLD=on_battery", "PICLUSTER_STATE=online")
    story.gpio["journal"] = journal(vm, on)
    story.gpio["active"] = vm.run("systemctl is-active piclusterd").stdout.strip()


# --- issue 13: the shipped unit's sandbox, probed and scored ---

PROBE_UNIT = "/etc/systemd/system/piclusterd-probe.service"
PROBE = r"""
# Run under the shipped unit's sandbox: does boot detection see the boot, can rtc-wake arm the alarm?
import json
from pathlib import Path
from piclusterd.cluster.power_on_backends import RtcWakeAlarm
from piclusterd.node.clock import boot_wall_time
out = {"proc_stat_visible": Path("/proc/stat").exists(), "boot_wall_time": boot_wall_time()}
alarm = RtcWakeAlarm()
try:
    alarm.arm_in(3600)
    out["rtc"] = "armed"
    out["armed_at"] = alarm.armed_at()
except Exception as error:
    out["rtc"] = f"{type(error).__name__}: {error}"
print("PROBE " + json.dumps(out))
"""


def run_probe(vm: Vm, *, drop: str = "") -> dict[str, Any]:
    """The installed unit with its ExecStart swapped for the probe: every sandbox line as shipped (but ``drop``)."""
    dropped = f"-e '/^{drop}/d' " if drop else ""
    vm.run(
        "sed -e 's/^Type=notify/Type=oneshot/' -e '/^ExecStartPre=/d' -e '/^ExecReload=/d' -e '/^WatchdogSec=/d' "
        "-e '/^NotifyAccess=/d' -e '/^RuntimeDirectory=/d' -e '/^Restart/d' -e '/^\\[Install\\]/,$d' "
        f"{dropped}-e 's|^ExecStart=.*|ExecStart=/usr/bin/python3 /usr/local/lib/piclusterd-probe.py|' "
        f"/lib/systemd/system/piclusterd.service > {PROBE_UNIT} && systemctl daemon-reload && "
        "systemctl start piclusterd-probe.service",
        timeout_s=120,
        check=True,
    )
    said = vm.run("journalctl -u piclusterd-probe -o cat --no-pager", check=True).stdout
    found = re.findall(r"^PROBE (.*)$", said, flags=re.MULTILINE)
    if not found:
        raise VmError(f"the sandbox probe said nothing useful:\n{said}")
    vm.run(f"echo 0 > /sys/class/rtc/rtc0/wakealarm; rm {PROBE_UNIT}; systemctl daemon-reload", check=True)
    result: dict[str, Any] = json.loads(found[-1])
    return result


def probe_sandbox(vm: Vm, story: Story) -> None:
    vm.write("/usr/local/lib/piclusterd-probe.py", PROBE)
    story.sandbox_probe_without_rtc_line = run_probe(vm, drop="ReadWritePaths=-\\/sys\\/class\\/rtc")
    story.sandbox_probe = run_probe(vm)
    story.btime = float(vm.run("sed -n 's/^btime //p' /proc/stat", check=True).stdout)
    story.security_offline = vm.run(
        "systemd-analyze security --offline=yes --no-pager /lib/systemd/system/piclusterd.service"
    ).stdout


# --- issue 19 and 15: the one system-shutdown hook at a real poweroff ---

ARM_LAST_NODE = """
import sys
from piclusterd.cluster.ups_kill import UpsKillFlag
from piclusterd.config.model import Secret
from piclusterd.config.settings import UpsReturnSettings
from piclusterd.drivers.gpio_power import Level, PowerCutPin
from piclusterd.drivers.power_cut import DEFAULT_FLAG_PATH, read_boot_id, render_flag
ups = UpsReturnSettings("{host}", {port}, "{ups}", "admin", Secret("secret"), 5.0)
armed = UpsKillFlag(ups, "{node}")(5, {{"pi-vm-2": "notready", "pi-vm-3": "acked"}})
print(armed.outcome.value, armed.detail)
DEFAULT_FLAG_PATH.write_text(render_flag(PowerCutPin(26, Level.HIGH, 3.5), read_boot_id(), "battery critical"))
"""
#: Test only: what is mounted while the system-shutdown hooks run (docs/full-shutdown.md cites it).
MOUNTS_HOOK = (  # one write per line: /dev/kmsg makes each write one record
    '#!/bin/sh\nwhile read -r line; do echo "vm-test-mounts: $line" > /dev/kmsg; done < /proc/self/mounts\n'
)


def first_part(vm: Vm, package: BuiltPackage, story: Story, gpio_sim: Path) -> None:
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
    started = time.monotonic()
    probe_sandbox(vm, story)
    story.timings["sandbox probe"] = time.monotonic() - started
    started = time.monotonic()
    check_i2c(vm, story)
    story.timings["i2c-stub"] = time.monotonic() - started
    started = time.monotonic()
    check_hat_daemon(vm, story, gpio_sim)
    story.timings["X1200 on gpio-sim"] = time.monotonic() - started

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
    """Reinstall; the packaged config (dry-run) protects the node at OB LB: the VM really powers off, and the
    system-shutdown hook of a last node (flags armed by piclusterd's own code) tells the UPS on the host."""
    install(vm)
    vm.configure_host_network()
    with NutEmulator(clock=SystemClock()) as ups:
        ups.drive_mains(online=False)
        story.ups_port = ups.port
        arm = ARM_LAST_NODE.format(host=HOST_FROM_GUEST, port=ups.port, ups=ups.ups_name, node=NODE)
        story.ups_armed = vm.run(f"python3 -c {shlex.quote(arm)}", check=True).stdout.strip()
        vm.write("/usr/lib/systemd/system-shutdown/vm-test-mounts", MOUNTS_HOOK, mode=0o755)
        watch = WATCH_PULSE_HOOK.format(value=f"{story.gpio['sysfs']}/sim_gpio26/value")
        vm.write("/usr/lib/systemd/system-shutdown/vm-test-gpio", watch, mode=0o755)
        set_ups(vm, ups_status="OB LB", battery_charge="10", battery_runtime="120")
        story.poweroff_console = vm.wait_for_poweroff(timeout_s=180)
        story.ups_received = list(ups.received)


# --- issue 14: doctor's node part, against the host's NUT emulator ---


def doctor_config(port: int) -> str:
    return f'[node]\nname = "{NODE}"\n[ups]\nhost = "{HOST_FROM_GUEST}"\nport = {port}\nname = "ups1"\n'


def run_doctor(vm: Vm, story: Story, ups: NutEmulator) -> None:
    """The installed ``piclusterctl doctor --json`` on this node only (no [cluster]): the UPS over the network,
    the EEPROM (no rpi-eeprom-config here), the clock (no NTP here)."""
    story.doctor_port = ups.port
    vm.write("/root/doctor.toml", doctor_config(ups.port))
    done = vm.run("piclusterctl doctor --config /root/doctor.toml --json", timeout_s=120)
    story.doctor_status = done.status
    try:
        story.doctor = json.loads(done.stdout)
    except ValueError as error:
        raise VmError(f"doctor --json printed no JSON (exit {done.status}):\n{done.stdout}\n{done.stderr}") from error


# --- issue 19: a workload's flush on the self-drain path, before a real poweroff ---

WORKLOAD_POD = "default/vm-workload-0"
FLUSHED = "/var/lib/vm-workload/flushed"
#: A database's last act in one process: on SIGTERM, write and fsync its data, say so on the kernel log, exit.
#: sigwaitinfo tells who sent the signal: its kubelet (the parent), or systemd at the final kill.
WORKLOAD = r"""
import os, signal
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
os.makedirs("/var/lib/vm-workload", exist_ok=True)
open("/run/vm-workload.ready", "w").close()
info = signal.sigwaitinfo({signal.SIGTERM})
sender = "its kubelet stand-in (parent)" if info.si_pid == os.getppid() else f"pid {info.si_pid}"
with open("/var/lib/vm-workload/flushed.tmp", "w") as data:
    data.write(f"flushed after SIGTERM from {sender}\n")
    data.flush()
    os.fsync(data.fileno())
os.rename("/var/lib/vm-workload/flushed.tmp", "/var/lib/vm-workload/flushed")
folder = os.open("/var/lib/vm-workload", os.O_RDONLY)
os.fsync(folder)
with open("/dev/kmsg", "w") as kmsg:
    kmsg.write(f"vm-workload: SIGTERM from {sender}; data written and fsynced, exiting\n")
"""
#: The kubelet's part for that one pod (piclusterd.testing.kubelet_stand_in), as the VM has no kubelet.
STAND_IN = r"""
import signal, subprocess, sys
from kubernetes import client as k8s, config as kubeconfig
from piclusterd.cluster.kube_api import KubeClusterApi
from piclusterd.testing.kubelet_stand_in import KubeletStandIn
configuration = k8s.Configuration()
kubeconfig.load_kube_config(config_file=sys.argv[1], client_configuration=configuration)
api = KubeClusterApi(k8s.ApiClient(configuration))
workload = subprocess.Popen([sys.executable, "/usr/local/lib/vm-workload.py"])
with KubeletStandIn(api, sys.argv[2], {sys.argv[3]: workload.pid}):
    signal.sigwait({signal.SIGTERM})
"""
#: Says on the kernel log when systemd stops units for the poweroff: the start of the halt, in kmsg's order.
HALT_MARKER_UNIT = """[Unit]
Description=vm test: mark the start of the shutdown on the kernel log
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
ExecStop=/bin/sh -c 'echo "vm-test: the shutdown transaction stops units now" > /dev/kmsg'
"""
SELF_DRAIN = f"""mode = "enforce"
[node]
name = "{NODE}"
[ups]
host = "127.0.0.1"
name = "ups"
[policy]
recovery_debounce = "2s"
low_battery_confirm = "0s"
[battery]
capacity_wh = 84
overhead_w = 5
[cluster]
enabled = true
kubeconfig = "/etc/piclusterd/kubeconfig"
on_battery_grace = "2s"
[shutdown]
full_shutdown_wait = "20s"
"""


def one_node_cluster() -> FakeKubeServer:
    """The fake API server (graceful deletion on, the shipped RBAC): this VM's Node and the workload's Pod."""
    api = FakeKubeServer(controller=True, graceful_deletion=True)
    api.start()
    api.put_object(make_node(NODE, labels={"node-role.kubernetes.io/control-plane": "true"}))
    namespace, name = WORKLOAD_POD.split("/")
    api.put_object(
        make_pod(
            name,
            namespace,
            node=NODE,
            owner=("StatefulSet", name.rsplit("-", 1)[0]),
            labels={"picluster.io/critical": "true"},
            grace_period_s=20,
        )
    )
    api.run_controller_once()
    return api


def self_drain_part(vm: Vm, story: Story, api: FakeKubeServer) -> None:
    """Enforce on a one-node cluster without the kubelet's graceful shutdown; OB LB; the VM halts by itself."""
    kubeconfig = api.kubeconfig(token=DAEMON_TOKEN)
    kubeconfig["clusters"][0]["cluster"]["server"] = f"http://{HOST_FROM_GUEST}:{api.port}"
    vm.write("/etc/piclusterd/kubeconfig", json.dumps(kubeconfig), mode=0o600)
    admin = api.kubeconfig()
    admin["clusters"][0]["cluster"]["server"] = f"http://{HOST_FROM_GUEST}:{api.port}"
    vm.write("/root/kubelet-kubeconfig", json.dumps(admin), mode=0o600)
    # The first halt's test hooks would only slow this one (the GPIO watcher waits for a chip this boot lacks).
    vm.run("rm -f /usr/lib/systemd/system-shutdown/vm-test-* && mkdir -p /etc/rancher/k3s", check=True)
    vm.write("/etc/rancher/k3s/config.yaml", "write-kubeconfig-mode: '0644'\n")  # k3s's default: no graceful shutdown
    vm.write("/usr/local/lib/vm-workload.py", WORKLOAD)
    vm.write("/usr/local/lib/vm-kubelet.py", STAND_IN)
    vm.write("/etc/systemd/system/vm-halt-marker.service", HALT_MARKER_UNIT)
    vm.run(
        "systemctl daemon-reload && systemctl start vm-halt-marker.service && "
        "systemd-run --unit=vm-kubelet python3 /usr/local/lib/vm-kubelet.py /root/kubelet-kubeconfig "
        f"{NODE} {WORKLOAD_POD}",
        timeout_s=60,
        check=True,
    )
    wait_until(vm, "test -e /run/vm-workload.ready", "the workload process running")
    vm.run("piclusterctl keygen", check=True)
    vm.write(CONFIG, SELF_DRAIN)
    vm.run("systemctl restart piclusterd", timeout_s=120, check=True)
    on = f"_PID={main_pid(vm)}"
    wait_for_entry(vm, on, "PICLUSTER_EVENT=leader.acquired", timeout_s=120)
    set_ups(vm, ups_status="OB LB", battery_charge="50", battery_runtime="1500")
    story.self_drain_console = vm.wait_for_poweroff(timeout_s=400)
    story.api_requests = list(api.requests)
    namespace, name = WORKLOAD_POD.split("/")
    story.workload_pod_after = api.get_object("Pod", namespace, name)


@pytest.fixture(scope="module")
def story(
    built_package: BuiltPackage,
    vm_image: VmImage,
    gpio_sim_module: Path,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Story]:
    story = Story()
    if vm_image.build_seconds is not None:
        story.timings["image build (cold cache)"] = vm_image.build_seconds
    story.timings["deb build"] = built_package.build_seconds
    disk = tmp_path_factory.mktemp("vm") / "disk.qcow2"
    scenario_started = time.monotonic()
    with Vm(vm_image, disk, host_network=True) as vm:
        story.timings["first boot"] = vm.boot_seconds or 0.0
        first_part(vm, built_package, story, gpio_sim_module)
        second_part(vm, story)
    api = one_node_cluster()
    try:
        with Vm(vm_image, disk, host_network=True) as vm, NutEmulator(clock=SystemClock()) as ups:
            story.timings["second boot"] = vm.boot_seconds or 0.0
            story.previous_boot = [
                json.loads(line)
                for line in vm.run("journalctl -b -1 -u piclusterd -o json --no-pager", check=True).stdout.splitlines()
            ]
            story.report = json.loads(vm.run("piclusterctl report --json", check=True).stdout)
            vm.configure_host_network()
            started = time.monotonic()
            run_doctor(vm, story, ups)
            story.timings["doctor"] = time.monotonic() - started
            started = time.monotonic()
            self_drain_part(vm, story, api)
            story.timings["self-drain to halt"] = time.monotonic() - started
    finally:
        api.stop()
    disk.unlink()  # the overlay holds a few hundred MB of guest writes; its story is told
    story.timings["VM scenario"] = time.monotonic() - scenario_started
    summary = "VM test timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in story.timings.items())
    hook_lines = [
        line.strip()
        for line in story.poweroff_console.splitlines()
        if any(mark in line for mark in ("piclusterd-power-cut", "vm-test-gpio", "devices detached.", "Power down"))
    ]
    summary += "\nthe system-shutdown hook at the real poweroff:\n  " + "\n  ".join(hook_lines)
    drain_lines = [
        line.strip()
        for line in story.self_drain_console.splitlines()
        if "vm-workload:" in line or "vm-test:" in line or "devices detached." in line or "Power down" in line
    ]
    summary += "\nthe self-drained poweroff:\n  " + "\n  ".join(drain_lines)
    summary += "\nexposure " + ", ".join(
        f"{how} {' '.join(re.findall(r'Overall exposure level for .*', text))}"
        for how, text in (("loaded:", story.security), ("--offline=yes:", story.security_offline))
    )
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


def test_piclusterctl_report_tells_the_outage_from_the_real_journal(story: Story) -> None:
    """The installed report reads the VM's own journal (journald, across the boot): the last outage ended in
    this node's own protection, and mains was never seen back before it halted."""
    outage = story.report["outage"]
    assert outage["mains_back_at"] is None and outage["nodes_shed"] == []
    assert any(step.endswith("halted (local_protection)") for step in outage["full_shutdown"])
    states = [e.get("NEW") for e in outage["timeline"] if e["event"] == "power.state_changed"]
    assert "critical" in states  # then the halt; the timeline goes on with the next boot's daemon
    assert story.report["unreadable_entries"] == 0


def test_boot_detection_sees_the_boot_under_the_shipped_sandbox(story: Story) -> None:
    # ProcSubset=pid hides /proc/stat from the daemon; its boot time is still this boot's, not its own start.
    assert story.sandbox_probe["proc_stat_visible"] is False
    assert story.sandbox_probe["boot_wall_time"] == pytest.approx(story.btime, abs=2)


def test_rtc_wake_can_arm_the_alarm_under_the_shipped_sandbox(story: Story) -> None:
    assert story.sandbox_probe["rtc"] == "armed"
    assert story.sandbox_probe["armed_at"] > story.btime  # read back: the kernel holds the alarm
    # ProtectKernelTunables= makes /sys read-only: without the unit's ReadWritePaths= line, no alarm.
    assert "Read-only file system" in story.sandbox_probe_without_rtc_line["rtc"]


def test_the_offline_exposure_score_is_the_one_docs_security_md_states(story: Story) -> None:
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", story.security_offline)
    assert found is not None, story.security_offline
    assert f"**{found.group(1)}" in (REPO / "docs" / "security.md").read_text(encoding="utf-8")


def test_the_ina219_driver_reads_the_datasheet_registers_through_the_kernel(story: Story) -> None:
    discharge = story.i2c["discharge"]
    assert discharge["bus_volts"] == pytest.approx(3.848)  # 962 x 4 mV: the bytes in the chip's order
    assert discharge["current_a"] == pytest.approx(-0.60, rel=0.02)
    assert discharge["power_w"] == pytest.approx(3.848 * 0.60, rel=0.02)
    assert (discharge["overflow"], discharge["recalibrated"]) == (False, False)
    overflow = story.i2c["overflow"]
    assert overflow["overflow"] and overflow["bus_volts"] == pytest.approx(3.848)
    assert overflow["current_a"] is None and overflow["power_w"] is None


def test_the_ina219_driver_writes_its_calibration_in_the_chips_byte_order(story: Story) -> None:
    assert story.i2c["brown_out"]["recalibrated"] is True
    assert story.i2c["written"] == {"config": 0x0EEF, "cal": 26868}


def test_the_gauge_driver_takes_its_variant_from_the_chip_through_the_kernel(story: Story) -> None:
    gauge = story.i2c["gauge"]
    assert gauge["variant"] == "MAX17040"
    assert gauge["volts"] == pytest.approx(3.85, abs=0.002) and gauge["soc"] == pytest.approx(75.5)
    assert gauge["crate"] is None and gauge["status"] is None


def test_an_absent_chip_is_an_error_naming_its_address(story: Story) -> None:
    # i2c-stub answers ENODEV for an address it does not emulate (a Pi's controller: EREMOTEIO).
    assert story.i2c["absent_errno"] == 19
    kind, message = story.i2c["absent_error"]
    assert kind == "I2cTransferFailed" and "0x41 on /dev/i2c-" in message and "errno 19" in message


def test_the_ups_is_told_to_cut_its_output_by_the_hook_after_the_file_systems_went_read_only(story: Story) -> None:
    assert story.ups_armed.startswith("sent armed /var/lib/piclusterd/ups-kill"), story.ups_armed
    assert [(r.kind, r.command, r.value) for r in story.ups_received] == [
        ("SET VAR", "ups.delay.shutdown", "5"),
        ("INSTCMD", "shutdown.return", None),
    ]
    console = story.poweroff_console
    detached = console.find("All filesystems, swaps, loop devices, MD devices and DM devices detached.")
    asked = console.find(
        f"piclusterd-power-cut: {NODE} is the last node (peers: pi-vm-2 notready, pi-vm-3 acked); root file "
        f"system ro; asking ups1@{HOST_FROM_GUEST}:{story.ups_port} to cut its output in 5 s"
    )
    assert 0 <= detached < asked, console[-4000:]
    assert "piclusterd-power-cut: sent: " in console[asked:]


def test_the_hat_power_cut_is_decided_at_the_same_poweroff_after_the_ups(story: Story) -> None:
    console = story.poweroff_console
    asked = console.find("piclusterd-power-cut: sent: ")
    pulse = console.find("piclusterd-power-cut: GPIO26 HIGH for 3.5 s")
    assert 0 <= asked < pulse, console[-4000:]  # the pulse cuts this Pi at once: the UPS is told first


def test_the_hooks_run_with_the_root_read_only_and_the_api_file_systems_mounted(story: Story) -> None:
    mounted = {
        m: o.split(",")[0]
        for m, o in re.findall(r"vm-test-mounts: \S+ (\S+) \S+ (\S+)", story.poweroff_console, flags=re.MULTILINE)
    }
    assert mounted.get("/") == "ro", mounted
    assert {"/proc", "/sys", "/dev", "/run"} <= set(mounted), mounted  # systemd-shutdown keeps API mounts


def test_doctor_checks_this_node_against_the_ups_over_the_network(story: Story) -> None:
    """Issue 14's node part, installed, in the VM: the UPS answers through upsd's protocol over the network, the
    EEPROM cannot be read on a machine without rpi-eeprom-config (unknown, not a finding), and the VM's clock
    has no NTP, a warning with its fix; so the exit status is 1, and --json says the same."""
    found = {finding["check"]: finding for finding in story.doctor["findings"]}
    power = found["power_source"]
    assert power["level"] == "info" and power["subject"] == f"nut:ups1@{HOST_FROM_GUEST}:{story.doctor_port}"
    assert power["message"].startswith("answers: status OL, charge 100"), power
    eeprom = found["eeprom"]
    assert eeprom["level"] == "info" and "POWER_OFF_ON_HALT unknown" in eeprom["message"], eeprom
    clock = found["clock"]
    assert (clock["level"], clock["subject"]) == ("warning", "this node"), clock
    assert "not synchronised" in clock["message"] and "timedatectl set-ntp true" in clock["fix"]
    assert story.doctor["exit"] == story.doctor_status == 1


def test_a_workload_finishes_its_flush_on_the_self_drains_sigterm_before_the_halt(story: Story) -> None:
    """Issue 19: no kubelet graceful shutdown, so piclusterd evicts the pod itself before its poweroff. The
    workload's SIGTERM came from its kubelet (a stand-in; systemd's final kill would show pid 1), and its
    write + fsync is on the kernel log before systemd began stopping units for the halt. The kernel log is one
    ordered buffer, so this order is a fact, not a timing."""
    console = story.self_drain_console
    flushed = console.find("vm-workload: SIGTERM from its kubelet stand-in (parent); data written and fsynced")
    halt = console.find("vm-test: the shutdown transaction stops units now")
    detached = console.find("All filesystems, swaps, loop devices, MD devices and DM devices detached.")
    assert 0 <= flushed < halt < detached, console[-6000:]
    assert "reboot: Power down" in console[detached:]


def test_the_workload_was_evicted_by_the_daemon_and_removed_by_its_kubelet(story: Story) -> None:
    path = f"/api/v1/namespaces/default/pods/{WORKLOAD_POD.split('/')[1]}"
    evictions = [i for i, r in enumerate(story.api_requests) if r.method == "POST" and r.path == path + "/eviction"]
    assert evictions, [(r.method, r.path, r.status) for r in story.api_requests[-30:]]
    evicted = story.api_requests[evictions[0]]
    assert evicted.user == "system:serviceaccount:piclusterd:piclusterd" and evicted.status == 201
    assert "deleteOptions" not in (evicted.body or {})  # the pod's own grace period, as in tests/kube
    removed = [i for i, r in enumerate(story.api_requests) if r.method == "DELETE" and r.path == path]
    assert removed and evictions[0] < removed[-1]  # the kubelet's final DELETE once the process had exited


def test_the_daemon_reads_an_x1200_through_libgpiod_on_a_kernel_gpio_chip(story: Story) -> None:
    """Issue 15: the installed daemon, under its sandbox, finds the chip by its Pi 5 label through Debian's
    libgpiod 1.6, holds GPIO6 with the pull-up it chose, and sees the supply fail and return on that pin."""
    assert story.gpio["line"] == {
        "label": "pinctrl-rp1",
        "consumer": "piclusterd",
        "used": True,
        "bias": "pull-up",
        "input": True,
    }
    chip = "/dev/" + story.gpio["sysfs"].rsplit("/", 1)[1]
    assert chip in story.gpio["daemon_fds"], story.gpio["daemon_fds"]
    changes = [e for e in story.gpio["journal"] if e.get("PICLUSTER_EVENT") == "power.state_changed"]
    assert [(c["PICLUSTER_OLD"], c["PICLUSTER_STATE"]) for c in changes] == [
        ("unknown", "online"),
        ("online", "on_battery"),
        ("on_battery", "online"),
    ]
    assert story.gpio["active"] == "active"


def test_the_power_cut_hook_pulses_gpio26_on_the_kernel_chip_at_the_real_poweroff(story: Story) -> None:
    console = story.poweroff_console
    high = console.find("vm-test-gpio: GPIO26 high on the gpio-sim chip")
    low = console.find("vm-test-gpio: GPIO26 low again")
    down = console.find("reboot: Power down")
    assert 0 <= high < low < down, console[-4000:]
