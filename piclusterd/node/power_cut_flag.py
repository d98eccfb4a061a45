"""Adapter: the flag that tells the system-shutdown hook to cut the HAT's power after this power-off.

A :class:`~piclusterd.node.daemon.PreShutdownHook`: just before piclusterd runs the shutdown command (battery
critical, or the leader's shed request: always a power reason), it writes the flag with the profile's
power-cut pin and this boot's id; ``/usr/lib/systemd/system-shutdown/piclusterd-power-cut`` then pulses the
pin once the file systems are read-only (:mod:`piclusterd.drivers.power_cut`). A flag from an earlier start
is removed when the daemon starts, so only the power-off piclusterd itself starts can cut the power.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from piclusterd.drivers.gpio_power import PowerCutPin
from piclusterd.drivers.power_cut import BOOT_ID_PATH, DEFAULT_FLAG_PATH, read_boot_id, render_flag
from piclusterd.node.audit import AuditLogger

__all__ = ["PowerCutFlag"]


class PowerCutFlag:
    """Writes (before the local shutdown) and clears (at start) the power-cut flag for one pin."""

    #: Never before a reboot: the HAT must keep feeding a Pi that comes back up.
    runs_before_reboot = False

    def __init__(
        self,
        spec: PowerCutPin,
        log: AuditLogger,
        *,
        path: Path = DEFAULT_FLAG_PATH,
        boot_id_path: Path = BOOT_ID_PATH,
    ) -> None:
        self.spec = spec
        self.path = path
        self._boot_id_path = boot_id_path
        self._log = log
        self.clear()

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def before_local_shutdown(self, reason: str) -> None:
        """Never raises: a flag that cannot be written costs battery, not the power-off."""
        try:
            boot_id = read_boot_id(self._boot_id_path)
            temporary = self.path.with_name(self.path.name + ".tmp")
            temporary.write_text(render_flag(self.spec, boot_id, reason), encoding="ascii")
            os.replace(temporary, self.path)
        except (OSError, ValueError) as error:
            self._log.error("shutdown.power_cut_flag_failed", path=str(self.path), error=str(error))
            return
        self._log.info("shutdown.power_cut_armed", pin=self.spec.pin, hold_s=self.spec.hold_s, path=str(self.path))
