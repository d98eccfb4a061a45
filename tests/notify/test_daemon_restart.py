"""The real ``piclusterd run`` process, a real upsd and a real HTTPS webhook: a message waits on disk while the
sink is down, across a daemon restart, and is delivered once when the sink returns."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from piclusterd.testing.daemon_process import DaemonProcess
from piclusterd.testing.nut_server import NutServer
from piclusterd.testing.tls import SelfSignedCa, make_ca
from piclusterd.testing.webhook_server import WebhookServer

pytestmark = pytest.mark.realnut

VARIABLES = {**NutServer.DEFAULT_VARIABLES, "ups.status": "OL", "battery.charge": "100", "battery.runtime": "3600"}


@pytest.fixture
def ups() -> Iterator[NutServer]:
    with NutServer(VARIABLES) as server:
        yield server


def write_config(directory: Path, ups: NutServer, url: str, ca: SelfSignedCa) -> Path:
    config = directory / "piclusterd.toml"
    config.write_text(
        f'mode = "dry-run"\n[node]\nname = "pi3"\n'
        f'[ups]\nhost = "{ups.host}"\nport = {ups.port}\nname = "{ups.ups_name}"\n'
        'poll_interval = "0.2s"\nstale_after = "2s"\n'
        f'[shutdown]\ncommand = ["/bin/true"]\n[daemon]\nruntime_dir = "{directory}/run"\n'
        f'[notify]\nqueue_dir = "{directory}/queue"\n'
        f'[notify.hook]\ntype = "webhook"\nurl = "{url}"\nca_file = "{ca.ca_file}"\nevents = ["ups_data_lost"]\n'
    )
    return config


def test_a_message_waits_on_disk_across_a_restart_and_is_sent_once_the_sink_is_back(
    tmp_path: Path, ups: NutServer
) -> None:
    ca = make_ca(tmp_path / "ca")
    with WebhookServer(ca.server_cert, ca.server_key) as hook:
        hook.status = 503  # the chat service is down (its uplink died with mains)
        config = write_config(tmp_path, ups, hook.url(), ca)
        with DaemonProcess(config) as daemon:
            daemon.wait_for("power.state_changed", lambda e: e.get("new") == "online")
            ups.kill_upsd()
            daemon.wait_for("power.source_lost")
            failed = daemon.wait_for("notify.failed")
            assert failed["sink"] == "hook" and "HTTP 503" in failed["error"] and failed["retry_in_s"] == 30.0
            daemon.signal(signal.SIGTERM)
            daemon.wait_for("daemon.stopped")
        assert len(list((tmp_path / "queue").glob("*.json"))) == 1  # waiting on disk
        ups.restart_upsd()
        hook.status = 200
        with DaemonProcess(config) as daemon:
            sent = daemon.wait_for("notify.sent", timeout_s=30)
            assert sent["sink"] == "hook" and sent["attempts"] == 2
        delivered = [json.loads(r.body) for r in hook.received if r.headers.get("Content-Type") == "application/json"]
        assert [d["event"] for d in delivered] == ["ups_data_lost", "ups_data_lost"]  # the 503'd try, then the one
        assert delivered[-1]["text"].startswith("pi3: lost contact with its UPS")
    assert list((tmp_path / "queue").glob("*.json")) == []
