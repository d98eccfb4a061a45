"""Several piclusterd nodes in one process, on one fake clock, against the fake API server.

Each :class:`SimulatedPi` runs the real code of a node: its :class:`~piclusterd.daemon.PowerDaemon` (reading
a shared scripted UPS), its elector, node agent, drainer, power-off and :class:`ClusterController`. Its
"shutdown command" powers the node off in the fake cluster (NotReady) and stops its ticks, so the leader
sees it go away. :meth:`ClusterWorld.step` is one poll of every live node; the leader's long steps (a drain)
advance the same clock through :meth:`ClusterWorld.sleep`, during which the other nodes' agents still answer.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes.client import ApiClient

from piclusterd.cluster_controller import ClusterController, ShedSettings
from piclusterd.config import load_config
from piclusterd.daemon import PowerDaemon
from piclusterd.drain import Drainer, DrainOptions
from piclusterd.kube_api import EventRecorder, KubeClusterApi
from piclusterd.leader import LeaseElector
from piclusterd.node_agent import NodeAgent
from piclusterd.notify import SystemdNotifier
from piclusterd.peer_power import PeerPowerOff
from piclusterd.testing.audit import CapturedAudit
from piclusterd.testing.clock import FakeClock
from piclusterd.testing.fake_kube import FakeKubeServer
from piclusterd.testing.fake_ups import ScriptedUps

__all__ = ["ClusterWorld", "SimulatedPi"]


@dataclass
class SimulatedPi:
    name: str
    world: ClusterWorld
    audit: CapturedAudit
    alive: bool = True
    shutdowns: list[str] = field(default_factory=list)
    daemon: PowerDaemon | None = None
    controller: ClusterController | None = None
    agent: NodeAgent | None = None

    def run(self, argv: Sequence[str]) -> int:
        """The node's shutdown command: record it, then the node really goes away."""
        self.shutdowns.append(" ".join(argv))
        self.alive = False
        self.world.server.power_off_node(self.name)
        return 0


class ClusterWorld:
    def __init__(
        self,
        server: FakeKubeServer,
        clock: FakeClock,
        names: Sequence[str],
        settings: ShedSettings,
        *,
        ups: ScriptedUps | None = None,
        drain_timeout_s: float = 300.0,
    ) -> None:
        self.server = server
        self.clock = clock
        self.ups = ups if ups is not None else ScriptedUps(clock)
        self.settings = settings
        self._directory = Path(tempfile.mkdtemp(prefix="piclusterd-world-"))
        self._clients: list[ApiClient] = []
        self._drain_timeout_s = drain_timeout_s
        self.pis: dict[str, SimulatedPi] = {}
        for name in names:
            self.pis[name] = self._build(name, drain_timeout_s)

    def reboot(self, name: str) -> SimulatedPi:
        """Power returns to a node: it boots, with a fresh daemon (its old one died with it)."""
        self.server.power_on_node(name)
        self.pis[name] = self._build(name, self._drain_timeout_s)
        return self.pis[name]

    def _build(self, name: str, drain_timeout_s: float) -> SimulatedPi:
        config_path = self._directory / f"{name}.toml"
        config_path.write_text(
            f'mode = "enforce"\n[node]\nname = "{name}"\n[ups]\npoll_interval = "1s"\n'
            f'[daemon]\nruntime_dir = "{self._directory}/{name}"\n'
        )
        config = load_config(config_path)
        pi = SimulatedPi(name, self, CapturedAudit(name, wall=self.clock.wall))
        api_client = self.server.api_client(retries=False)
        self._clients.append(api_client)
        api = KubeClusterApi(api_client)
        log = pi.audit.logger
        daemon = PowerDaemon(
            config,
            source_factory=lambda _c: self.ups,
            clock=self.clock,
            log=log,
            notifier=SystemdNotifier({}),
            shutdown=pi,
        )
        elector = LeaseElector.on_kubernetes(api_client, self.clock, name)
        events = EventRecorder(api_client, reporter=name)
        options = DrainOptions(
            timeout_s=drain_timeout_s, critical_priority_threshold=self.settings.policy.critical_priority_threshold
        )


        def keep_alive() -> None:
            elector.try_acquire_or_renew()  # as cli.build_cluster: a long step renews the lease while it waits

        drainer = Drainer(
            api, self.clock, sleep=self.sleep, options=options, fence=elector.ensure_leader, tick=keep_alive, log=log
        )
        power_off = PeerPowerOff(
            api,
            self.clock,
            leader=name,
            sleep=self.sleep,
            fence=elector.ensure_leader,
            tick=keep_alive,
            ack_timeout_s=30,
            off_timeout_s=120,
            events=events,
            log=log,
        )
        agent = NodeAgent(api, name, daemon, log)
        pi.daemon = daemon
        pi.agent = agent
        pi.controller = ClusterController(
            identity=name,
            api=api,
            elector=elector,
            agent=agent,
            drainer=drainer,
            power_off=power_off,
            events=events,
            settings=self.settings,
            clock=self.clock,
            log=log,
        )
        return pi

    def sleep(self, seconds: float) -> None:
        """Time passes inside a leader's long step: the cluster's controllers run, other nodes still answer."""
        self.clock.advance(seconds)
        self.server.run_controller_once()
        for pi in self.pis.values():
            if pi.alive and pi.agent is not None and pi.daemon is not None:
                pi.daemon.step()
                pi.agent.tick()

    def step(self, seconds: float = 1.0) -> None:
        for pi in list(self.pis.values()):
            if pi.alive and pi.daemon is not None and pi.controller is not None:
                pi.daemon.step()
                pi.controller.tick(pi.daemon.memory, pi.daemon.measured_load_w)
        self.clock.advance(seconds)
        self.server.run_controller_once()

    def run(self, seconds: float, step_s: float = 1.0) -> None:
        end = self.clock.monotonic() + seconds
        while self.clock.monotonic() < end:
            self.step(step_s)

    def run_until(self, done: Callable[[], bool], max_s: float, step_s: float = 2.0) -> float:
        """Step until ``done()``; returns the simulated seconds it took. Fails after ``max_s``."""
        start = self.clock.monotonic()
        while not done():
            if self.clock.monotonic() - start > max_s:
                raise AssertionError(f"not done after {max_s} simulated seconds")
            self.step(step_s)
        return self.clock.monotonic() - start

    def events(self, name: str) -> list[dict[str, object]]:
        """Every node's audit events called ``name``, in order per node, tagged with the node."""
        return [e for pi in self.pis.values() for e in pi.audit.named(name)]

    def close(self) -> None:
        for client in self._clients:
            client.close()  # type: ignore[no-untyped-call]
