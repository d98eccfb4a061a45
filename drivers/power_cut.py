"""Cutting the HAT's power after the Pi halts: the flag piclusterd leaves, and the pulse the shutdown hook sends.

On an X728, software must pulse the power-cut pin once the Pi has halted, or the HAT keeps feeding the halted
Pi and drains the battery that piclusterd powered the Pi off to save (geekworm-com/x728-script ``xSoft.sh``:
the pin high for ``SLEEP`` seconds, then low again). The pulse must come after the file systems are read-only,
so it is sent by systemd's system-shutdown hook ``/usr/lib/systemd/system-shutdown/piclusterd-power-cut``
(as NUT's ``nutshutdown`` is), which runs ``python3 -m piclusterd.drivers.power_cut FLAG``.

The hook acts **only** when piclusterd itself powered the node off for power reasons: the daemon writes the
flag just before it runs the shutdown command (:func:`render_flag`), with this boot's id. A manual
``poweroff``, a reboot, or a flag left from an earlier boot does nothing. The flag is parsed as hostile input
(:func:`parse_flag`): size, keys, pin range, level, hold time.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from piclusterd.core.errors import PiclusterError
from piclusterd.drivers.gpio_power import GpioModule, Level, PowerCutOutput, PowerCutPin, open_gpio

__all__ = [
    "BOOT_ID_PATH",
    "DEFAULT_FLAG_PATH",
    "FlagInvalid",
    "main",
    "parse_flag",
    "read_boot_id",
    "read_this_boots_flag",
    "render_flag",
]

DEFAULT_FLAG_PATH = Path("/var/lib/piclusterd/power-cut")
"""In the state directory: on the root file system, still readable (read-only) when the hook runs; the boot id
inside makes a flag from an earlier boot void."""

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
BOOT_ID_ENV = "PICLUSTERD_BOOT_ID"
"""Set by the unit (``Environment=PICLUSTERD_BOOT_ID=%b``): its ``ProcSubset=pid`` hides /proc/sys from the daemon."""


def read_boot_id(path: Path = BOOT_ID_PATH, environ: dict[str, str] | None = None) -> str:
    """This boot's id, 32 lower-case hex digits (systemd's ``%b`` and the kernel's UUID agree once dashes go)."""
    from_env = (environ if environ is not None else dict(os.environ)).get(BOOT_ID_ENV)
    raw = from_env if from_env else path.read_text(encoding="ascii")
    boot_id = raw.strip().replace("-", "").lower()
    if len(boot_id) != 32 or any(c not in "0123456789abcdef" for c in boot_id):
        raise ValueError(f"boot id {raw.strip()[:40]!r} is not 32 hex digits")
    return boot_id


_MAX_FLAG_BYTES = 1024
_MAX_HOLD_S = 10.0  # the vendors' pulses are 2-4 s


class FlagInvalid(ValueError):
    """The flag file is not one piclusterd wrote."""


def render_flag(spec: PowerCutPin, boot_id: str, reason: str) -> str:
    reason_line = " ".join(reason.split())[:200]
    return (
        f"boot_id={boot_id}\npin={spec.pin}\nlevel={spec.active_level.name.lower()}\nhold_s={spec.hold_s:g}\n"
        f"reason={reason_line}\n"
    )


def parse_flag(raw: bytes) -> tuple[str, PowerCutPin]:
    """(boot id, pin) from a flag file's bytes; :class:`FlagInvalid` for anything piclusterd would not write."""
    if len(raw) > _MAX_FLAG_BYTES:
        raise FlagInvalid(f"larger than {_MAX_FLAG_BYTES} bytes")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise FlagInvalid("not ASCII") from None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or key in fields:
            raise FlagInvalid(f"bad or repeated line {line[:40]!r}")
        fields[key] = value
    if set(fields) - {"reason"} != {"boot_id", "pin", "level", "hold_s"}:
        raise FlagInvalid(f"keys {sorted(fields)}; expected boot_id, pin, level, hold_s, reason")
    if not fields["pin"].isdigit() or len(fields["pin"]) > 2:
        raise FlagInvalid(f"pin {fields['pin'][:10]!r}")
    levels = {"high": Level.HIGH, "low": Level.LOW}
    if fields["level"] not in levels:
        raise FlagInvalid(f"level {fields['level'][:10]!r}")
    try:
        hold_s = float(fields["hold_s"])
    except ValueError:
        raise FlagInvalid(f"hold_s {fields['hold_s'][:10]!r}") from None
    if not 0.1 <= hold_s <= _MAX_HOLD_S:  # also refuses nan and inf
        raise FlagInvalid(f"hold_s {hold_s} outside 0.1-{_MAX_HOLD_S:g}")
    try:
        spec = PowerCutPin(int(fields["pin"]), levels[fields["level"]], hold_s)
    except ValueError as error:
        raise FlagInvalid(str(error)) from None
    return fields["boot_id"], spec


Flag = TypeVar("Flag")


def read_this_boots_flag(
    argv: Sequence[str] | None,
    parse: Callable[[bytes], tuple[str, Flag]],
    *,
    module: str,
    unreadable_tail: str,
    invalid_tail: str,
    boot_id_path: Path,
) -> tuple[int, Flag | None]:
    """The first half of each half of the system-shutdown hook: ``python3 -m MODULE FLAG`` -> (exit status, the
    parsed flag if it is this boot's, else None and the hook exits with that status). ``parse`` gives the
    flag's boot id and what it says.

    No flag, or an earlier boot's: (0, None), nothing to do. Unreadable or not one piclusterd wrote: (1, None),
    said on stderr (systemd-shutdown shows it on the console) with the caller's tail ("; UPS not told")."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print(f"usage: python3 -m {module} FLAG", file=sys.stderr)
        return 2, None
    flag = Path(args[0])
    try:
        raw = flag.read_bytes()
    except FileNotFoundError:
        return 0, None
    except OSError as error:
        print(f"piclusterd-power-cut: cannot read {flag}: {error.strerror}{unreadable_tail}", file=sys.stderr)
        return 1, None
    try:
        boot_id, parsed = parse(raw)
        this_boot = read_boot_id(boot_id_path, environ={})
    except (OSError, ValueError) as error:  # FlagInvalid and UnicodeDecodeError are ValueErrors
        print(f"piclusterd-power-cut: {flag}: {error}{invalid_tail}", file=sys.stderr)
        return 1, None
    if boot_id.replace("-", "").lower() != this_boot:
        return 0, None  # left from an earlier boot: not this power-off
    return 0, parsed


def main(
    argv: Sequence[str] | None = None,
    *,
    gpio_factory: Callable[[], GpioModule] = open_gpio,
    sleep: Callable[[float], None] = time.sleep,
    boot_id_path: Path = BOOT_ID_PATH,
) -> int:
    """``python3 -m piclusterd.drivers.power_cut FLAG``: pulse the pin the flag names if it is from this boot.

    Exit 0 when there is nothing to do (no flag, an earlier boot's flag) or the pulse was sent (on a real HAT
    the power goes during it); 1 when the flag or the GPIO is unusable (said on stderr, which systemd-shutdown
    shows on the console).
    """
    code, spec = read_this_boots_flag(
        argv,
        parse_flag,
        module="piclusterd.drivers.power_cut",
        unreadable_tail="",
        invalid_tail="; power not cut",
        boot_id_path=boot_id_path,
    )
    if spec is None:
        return code
    print(f"piclusterd-power-cut: GPIO{spec.pin} {spec.active_level.name} for {spec.hold_s:g} s", file=sys.stderr)
    try:
        output = PowerCutOutput(gpio_factory(), spec)
        try:
            output.cut(sleep)
        finally:
            output.close()
    except PiclusterError as error:
        print(f"piclusterd-power-cut: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
