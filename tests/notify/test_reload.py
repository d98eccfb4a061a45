"""A reload that changes [notify] is refused, naming it: the running notifier was built at start."""

from __future__ import annotations

from pathlib import Path

from piclusterd.config.parse import load_config
from piclusterd.node.daemon import PowerDaemon
from piclusterd.node.systemd_notify import SystemdNotifier
from piclusterd.sim.captured_audit import CapturedAudit
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scripted_ups import ScriptedUps


def test_a_reload_changing_notify_is_refused_and_names_it(tmp_path: Path) -> None:
    path = tmp_path / "piclusterd.toml"
    base = f'[node]\nname = "pi1"\n[daemon]\nruntime_dir = "{tmp_path}/run"\n[shutdown]\ncommand = ["/bin/true"]\n'
    path.write_text(base)
    clock = FakeClock()
    ups = ScriptedUps(clock)
    audit = CapturedAudit("pi1")
    daemon = PowerDaemon(
        load_config(path),
        source_factory=lambda _config: ups,
        clock=clock,
        log=audit.logger,
        notifier=SystemdNotifier({}),
        shutdown=lambda: None,  # type: ignore[arg-type,return-value]
    )
    path.write_text(base + '[notify.pager]\ntype = "exec"\ncommand = ["/bin/true"]\n')
    assert not daemon.reload(lambda: load_config(path))
    (failed,) = audit.named("config.reload_failed")
    assert failed["error"].startswith(f"{path}: notify: changed") and "restart piclusterd" in failed["error"]
