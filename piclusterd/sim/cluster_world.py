"""Several piclusterd nodes in one process, on one fake clock, against the fake API server.

Each :class:`SimulatedPi` runs the real code of a node: its :class:`~piclusterd.node.daemon.PowerDaemon` (reading
a shared scripted UPS), its elector, node agent, drainer, power-off and :class:`ClusterController`. Its
"shutdown command" powers the node off in the fake cluster (NotReady) and stops its ticks, so the leader
sees it go away. :meth:`ClusterWorld.step` is one poll of every live node; the leader's long steps (a drain)
advance the same clock through :meth:`ClusterWorld.sleep`, during which every node keeps polling its power,
its agent answers and its elector renews or watches the lease (as ``keep_alive`` does in the daemon).

A node's last minute is wired as the daemon wires it (issue 19): before its shutdown command its self-drain
(:func:`~piclusterd.cluster.self_drain.build_self_drain`) ends its pods, the node blocked meanwhile; the
leader's UPS step arms the real :class:`~piclusterd.cluster.ups_kill.UpsKillFlag`; and once a node has halted,
the system-shutdown hook's UPS half (:func:`piclusterd.cluster.ups_kill.main`) reads that flag and tells the
scripted UPS. :attr:`ClusterWorld.timeline` holds all of it in order.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes.client import ApiClient

from piclusterd.cluster.agent import NodeAgent
from piclusterd.cluster.authority import RequestSigner, RequestVerifier
from piclusterd.cluster.controller import ClusterController
from piclusterd.cluster.drain import FULL_SHUTDOWN_DRAIN_MAX_S, Drainer, DrainOptions
from piclusterd.cluster.election import KubeLeaseStore, LeaseElector
from piclusterd.cluster.kube_api import EventRecorder, KubeClusterApi
from piclusterd.cluster.outage_coordinator import OutageCoordinator
from piclusterd.cluster.power_off_request import PeerPowerOff
from piclusterd.cluster.power_on import PowerOnBackends
from piclusterd.cluster.power_on_backends import PowerOutcome, PowerResult
from piclusterd.cluster.self_drain import build_self_drain, self_drain_groups
from piclusterd.cluster.ups_kill import UpsKillFlag
from piclusterd.cluster.ups_kill import main as ups_kill_hook
from piclusterd.config.parse import load_config
from piclusterd.config.settings import (
    FullShutdownSettings,
    ShedSettings,
    self_drain_settings,
    ups_return_settings,
)
from piclusterd.core.authority import KEY_BYTES, ClusterKeys
from piclusterd.core.errors import NotLeader
from piclusterd.node.daemon import PowerDaemon
from piclusterd.node.systemd_notify import SystemdNotifier
from piclusterd.notify.notifier import Notifier
from piclusterd.sim.captured_audit import CapturedAudit
from piclusterd.sim.fake_api_server import DAEMON_TOKEN, FakeKubeServer
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scripted_ups import ScriptedUps

__all__ = ["FULL_SHUTDOWN_WAIT_S", "BootInWorld", "ClusterWorld", "SimulatedPi"]


@dataclass
class SimulatedPi:
    name: str
    world: ClusterWorld
    audit: CapturedAudit
    alive: bool = True
    shutdowns: list[str] = field(default_factory=list)
    daemon: PowerDaemon | None = None
    controller: ClusterController | None = None
    #: The drainer its controller sheds with (tests wrap or retune it).
    drainer: Drainer | None = None
    agent: NodeAgent | None = None
    outage: OutageCoordinator | None = None
    elector: LeaseElector | None = None
    #: What its agent checks every request with (a custom ``node_agent`` builder passes it on).
    verifier: RequestVerifier | None = None
    #: The full-shutdown hook's argv, each time this node ran it as leader.
    hook_runs: list[list[str]] = field(default_factory=list)
    #: The UPS kills this node armed (their delay in seconds), as leader.
    ups_requests: list[float] = field(default_factory=list)
    ups_request_peers: list[dict[str, str]] = field(default_factory=list)  # how the leader knew each peer went

    #: This boot's id (the kernel's), which its kubelet reports as ``status.nodeInfo.bootID``; a daemon restart
    #: keeps it, a reboot makes a new one.
    boot_id: str = ""
    #: How often this node's outage coordinator kept itself alive inside a long wait, as leader.
    long_step_ticks: int = 0
    #: Set non-zero to make this node's shutdown command fail: it is recorded, and the node stays up.
    shutdown_exit_status: int = 0
    #: Its notifier, when the world was given ``notifiers`` (pumped after each of its steps while alive).
    notifier: Notifier | None = None
    #: Its UPS-kill flag (the daemon's :class:`UpsKillFlag`), when ``ups_shutdown_return`` is on.
    ups_kill: UpsKillFlag | None = None
    #: What its system-shutdown hook said on the console at each halt (systemd-shutdown shows its stderr).
    console: list[str] = field(default_factory=list)
    #: The pods still to end on it (not DaemonSet, mirror or finished) at each of its halts.
    pods_at_halt: list[list[str]] = field(default_factory=list)

    def require_verifier(self) -> RequestVerifier:
        """Its verifier, for a ``node_agent`` builder (built before the agent)."""
        if self.verifier is None:
            raise RuntimeError(f"{self.name}: no verifier yet")
        return self.verifier

    def run(self, argv: Sequence[str]) -> int:
        """The node's shutdown command: record it, then the node really goes away, and at the very end of its
        halt the system-shutdown hook runs (the UPS half of ``piclusterd-power-cut``)."""
        self.shutdowns.append(" ".join(argv))
        if self.shutdown_exit_status != 0:
            return self.shutdown_exit_status
        world = self.world
        critical = world.settings.policy.critical_priority_threshold
        on_node = [p for p in world.server.list_objects("Pod") if (p.get("spec") or {}).get("nodeName") == self.name]
        normal, important, _left = self_drain_groups(on_node, critical)
        self.pods_at_halt.append(sorted(t.pod.key for t in (*normal, *important)))
        world.shutdown_order.append(self.name)
        self.alive = False
        world.server.power_off_node(self.name)
        world.note(self.name, "halted")
        self._system_shutdown_hook()
        return 0

    def _system_shutdown_hook(self) -> None:
        """``piclusterd-power-cut poweroff`` after the unmount loop: the flag, if any, decides; its stderr is
        the console."""
        if self.ups_kill is None:
            return
        console = io.StringIO()
        with contextlib.redirect_stderr(console):
            ups_kill_hook(
                [str(self.ups_kill.path)],
                send=self.world.send_ups_kill,
                boot_id_path=self.world.boot_id_path(self.name),
                mounts=self.world.halted_mounts,
                sync=lambda: None,
            )
        self.console.extend(console.getvalue().splitlines())

    def run_hook(self, argv: Sequence[str]) -> int:
        """The full-shutdown hook: blocks this node for ``world.hook_duration_s`` (the others poll), then exits."""
        self.hook_runs.append(list(argv))
        end = self.world.clock.monotonic() + self.world.hook_duration_s
        while self.world.clock.monotonic() < end:
            self.world.sleep(1.0, stalled=self.name)
        return self.world.hook_exit_status

    def request_ups_return(self, delay_s: float, peers: Mapping[str, str]) -> PowerResult:
        """The full shutdown's UPS step: the daemon's own flag decides, this only records what it was asked."""
        if self.ups_kill is None:
            raise RuntimeError(f"{self.name}: ups_shutdown_return is off")
        self.ups_request_peers.append(dict(peers))
        result = self.ups_kill(delay_s, peers)
        if result.outcome is PowerOutcome.SENT:
            self.ups_requests.append(delay_s)
            self.world.note(self.name, "ups-kill armed")
        return result


class _PiTerm:
    """A node's identity and Lease term, looked up when a request is signed (its elector is built later)."""

    def __init__(self, world: ClusterWorld, name: str) -> None:
        self._world = world
        self._name = name

    @property
    def identity(self) -> str:
        return self._name

    def term(self) -> int:
        pi = self._world.pis.get(self._name)
        if pi is None or pi.elector is None or not pi.alive:
            raise NotLeader(f"{self._name} is not running")
        return pi.elector.term()


@dataclass
class _HookRunner:
    pi: SimulatedPi

    def run(self, argv: Sequence[str]) -> int:
        return self.pi.run_hook(argv)


class BootInWorld:
    """A :class:`~piclusterd.cluster.power_on_backends.NodePower` test double: ``power_on`` boots the node in the world
    ``boot_s`` later (its kubelet turns Ready, a fresh daemon starts), as a relay or a magic packet would.
    Every power-on is recorded in :attr:`power_ons` as (monotonic time, node)."""

    def __init__(self, world: ClusterWorld, boot_s: float = 30.0, name: str = "wol") -> None:
        self._world = world
        self.boot_s = boot_s
        self.name = name
        self.power_ons: list[tuple[float, str]] = []

    def power_on(self, node: str) -> PowerResult:
        if self._world.pis[node].alive:
            raise AssertionError(f"{node} powered on while it is running")
        self.power_ons.append((self._world.clock.monotonic(), node))
        self._world.boot_later(node, self.boot_s)
        return PowerResult(node, PowerOutcome.SENT, f"booting in the test world in {self.boot_s:g} s")

    def power_off(self, node: str) -> PowerResult:
        raise AssertionError("the leader powers nodes off through their daemons, never through NodePower")

    def is_powered(self, node: str) -> bool | None:
        return self._world.pis[node].alive


#: The worlds' [shutdown] full_shutdown_wait, unless a test asks otherwise; with [policy] low_battery_confirm =
#: "auto" also how long their daemons confirm OB + LB.
FULL_SHUTDOWN_WAIT_S = 60.0


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
        full_shutdown_wait_s: float = FULL_SHUTDOWN_WAIT_S,
        full_shutdown_hook: Sequence[str] = ("k3s", "etcd-snapshot", "save"),
        ups_shutdown_return: bool = True,
        ups_off_delay_s: float | None = None,
        power_on: Callable[[ClusterWorld], PowerOnBackends] | None = None,
        node_agent: Callable[[SimulatedPi, KubeClusterApi, PowerDaemon], NodeAgent] | None = None,
        notifiers: Callable[[str, Callable[[], float]], Notifier] | None = None,
    ) -> None:
        """``power_on`` gives the leaders' power-on backends (default: ``manual`` for every node);
        ``node_agent`` builds a node's agent (default: a plain one; give a relay or a wake alarm here);
        ``notifiers(name, wall)`` builds each daemon's notifier (default: none), tapping its audit trail as
        cli.py does; the world pumps it after each of the node's steps. ``ups_off_delay_s`` is written into
        the nodes' configs as ``[shutdown] ups_off_delay`` (default: the config's own default)."""
        self._notifiers = notifiers
        self.server = server
        self.clock = clock
        self.ups = ups if ups is not None else ScriptedUps(clock)
        self.settings = settings
        #: The world's cluster key, in memory, as ``piclusterctl keygen`` would make it: every node holds it.
        self.keys = ClusterKeys(secrets.token_bytes(KEY_BYTES))
        # The nodes' runtime directories on tmpfs when there is one, like the daemon's /run/piclusterd: each
        # poll rewrites status.json, which on a disk was about a sixth of the demo's time (profiled).
        shm = Path("/dev/shm")
        on_tmpfs = shm.is_dir() and os.access(shm, os.W_OK)
        self._directory = Path(tempfile.mkdtemp(prefix="piclusterd-world-", dir=shm if on_tmpfs else None))
        self._clients: list[ApiClient] = []
        self._drain_timeout_s = drain_timeout_s
        self.full_shutdown_wait_s = full_shutdown_wait_s
        self.full_shutdown_hook = tuple(full_shutdown_hook)
        self.ups_shutdown_return = ups_shutdown_return
        self.ups_off_delay_s = ups_off_delay_s
        #: In order across the world: (monotonic time, node, what): each node's ``shutdown.*`` audit events,
        #: its halt (``halted``), the leader's ``ups-kill armed`` and the UPS's ``INSTCMD shutdown.return``.
        self.timeline: list[tuple[float, str, str]] = []
        self._stalled: set[str] = set()  # nodes blocked in a long step of their own (a self-drain, a hook)
        #: Called each time the clock moves inside a leader's long step (:meth:`sleep`), before the other
        #: nodes poll: a scripted world brings what they read up to the new time (the demo's UPS follows mains
        #: through a drain that lasts minutes).
        self.on_time_passed: Callable[[], object] | None = None
        #: /proc/self/mounts as the system-shutdown hook finds it: the root file system read-only.
        self.halted_mounts = self._directory / "mounts-at-halt"
        self.halted_mounts.write_text("/dev/mmcblk0p2 / ext4 ro,relatime 0 0\n", encoding="ascii")
        self.hook_exit_status = 0
        self.hook_duration_s = 0.0
        #: Every node's shutdown command, in the order they ran, across the whole world.
        self.shutdown_order: list[str] = []
        self._boots: dict[str, float] = {}  # node -> monotonic time it finishes booting
        self.power_on = power_on(self) if power_on is not None else PowerOnBackends({})
        self._node_agent = node_agent
        self.pis: dict[str, SimulatedPi] = {}
        for name in names:
            self.pis[name] = self._build(name, drain_timeout_s)

    def note(self, node: str, what: str) -> None:
        """Add to :attr:`timeline` at the world's time."""
        self.timeline.append((self.clock.monotonic(), node, what))

    def boot_id_path(self, name: str) -> Path:
        """Node ``name``'s /proc/sys/kernel/random/boot_id."""
        return self._directory / name / "boot_id"

    def send_ups_kill(
        self,
        host: str,
        port: int,
        ups: str,
        username: str | None,
        password: str | None,
        delay_s: int,
        timeout_s: float,
    ) -> PowerResult:
        """What the hook's ``send`` reaches: the scripted UPS (one UPS feeds every node of the world)."""
        if not self.ups.shutdown_return(delay_s):
            return PowerResult(ups, PowerOutcome.FAILED, f"{ups}@{host}:{port}: no answer (scripted)")
        for at, line in self.ups.commands[-2:]:
            self.timeline.append((at, "ups", line))
        return PowerResult(ups, PowerOutcome.SENT, f"{ups}@{host}:{port}: output off in {delay_s} s (scripted)")

    def signer_for(self, name: str) -> RequestSigner:
        """What node ``name`` signs its requests with, as leader (for power-on backends built per world)."""
        return RequestSigner(self.keys, _PiTerm(self, name))

    def boot_later(self, name: str, seconds: float) -> None:
        """Power is back at a node: it is Ready, with a fresh daemon, ``seconds`` from now."""
        self._boots.setdefault(name, self.clock.monotonic() + seconds)

    def _finish_boots(self) -> None:
        now = self.clock.monotonic()
        for name, at in sorted(self._boots.items()):
            if at <= now:
                del self._boots[name]
                self.reboot(name)

    def reboot(self, name: str) -> SimulatedPi:
        """Power returns to a node: it boots, with a fresh daemon (its old one died with it)."""
        self.server.power_on_node(name)
        (self._directory / name / "full-shutdown").unlink(missing_ok=True)  # the runtime directory is tmpfs
        self.pis[name] = self._build(name, self._drain_timeout_s, boot_id=secrets.token_hex(16))
        return self.pis[name]

    def restart_daemon(self, name: str) -> SimulatedPi:
        """piclusterd restarts on a Pi that stays up (watchdog, crash, upgrade): a fresh daemon, the same boot."""
        booted = self.pis[name].boot_id
        self.pis[name].alive = False  # the old process is gone
        self.pis[name] = self._build(name, self._drain_timeout_s, boot_id=booted)
        return self.pis[name]

    def _build(self, name: str, drain_timeout_s: float, boot_id: str | None = None) -> SimulatedPi:
        config_path = self._directory / f"{name}.toml"
        config_path.write_text(
            f'mode = "{"dry-run" if self.settings.dry_run else "enforce"}"\n'
            f'[node]\nname = "{name}"\n[ups]\npoll_interval = "1s"\n'
            f'[daemon]\nruntime_dir = "{self._directory}/{name}"\n'
            f'[shutdown]\nfull_shutdown_wait = "{self.full_shutdown_wait_s:g}s"\n'
            f"ups_shutdown_return = {'true' if self.ups_shutdown_return else 'false'}\n"
            # No k3s config: the kubelet's graceful shutdown is off, so the self-drain ends the pods.
            f'k3s_config = "{self._directory}/{name}/k3s-config.yaml"\n'
            + ("" if self.ups_off_delay_s is None else f'ups_off_delay = "{self.ups_off_delay_s:g}s"\n')
        )
        config = load_config(config_path)
        notifier = None if self._notifiers is None else self._notifiers(name, self.clock.wall)

        def tap(event: Mapping[str, Any]) -> None:  # the world's timeline, then the notifier as cli.py taps it
            if str(event.get("event", "")).startswith("shutdown."):
                self.note(name, str(event["event"]))
            if notifier is not None:
                notifier.observe(event)

        pi = SimulatedPi(name, self, CapturedAudit(name, wall=self.clock.wall, tap=tap), notifier=notifier)
        pi.boot_id = boot_id or secrets.token_hex(16)
        self.boot_id_path(name).parent.mkdir(parents=True, exist_ok=True)
        self.boot_id_path(name).write_text(pi.boot_id + "\n", encoding="ascii")

        def report_boot(node: dict[str, Any]) -> None:  # what its kubelet reports once this boot registers
            node.setdefault("status", {}).setdefault("nodeInfo", {})["bootID"] = pi.boot_id

        self.server.update_object("nodes", None, name, report_boot)
        api_client = self.server.api_client(retries=False, token=DAEMON_TOKEN)
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
        elector = LeaseElector.on_kubernetes(api_client, self.clock, name, holder_is_node=api.node_exists)
        ups = ups_return_settings(config)
        if ups is not None:  # the daemon's flag, in this node's own directory, checked against its boot id
            pi.ups_kill = UpsKillFlag(
                ups, name, path=self._directory / name / "ups-kill", boot_id_path=self.boot_id_path(name)
            )
        events = EventRecorder(api_client, reporter=name, wall=self.clock.wall)
        options = DrainOptions(
            timeout_s=drain_timeout_s, critical_priority_threshold=self.settings.policy.critical_priority_threshold
        )

        def keep_alive() -> None:
            elector.renew_when_due()  # as cli.build_cluster: a long step renews the lease while it waits

        signer = RequestSigner(self.keys, elector)
        drainer = Drainer(
            api,
            self.clock,
            sleep=self.sleep,
            options=options,
            fence=elector.ensure_leader,
            tick=keep_alive,
            log=log,
            signer=signer,
        )
        pi.verifier = RequestVerifier(self.keys, KubeLeaseStore(api_client), name, log=log, events=events)
        power_off = PeerPowerOff(
            api,
            self.clock,
            leader=name,
            signer=signer,
            sleep=self.sleep,
            fence=elector.ensure_leader,
            tick=keep_alive,
            ack_timeout_s=30,
            off_timeout_s=120,
            events=events,
            log=log,
        )
        build_agent = self._node_agent or (
            lambda pi, api, daemon: NodeAgent(api, pi.name, daemon, pi.audit.logger, verifier=pi.require_verifier())
        )
        agent = build_agent(pi, api, daemon)
        # The full shutdown drains with a short timeout and does not wait for replacements: nothing is left on.
        short = DrainOptions(
            timeout_s=30.0,
            max_timeout_s=FULL_SHUTDOWN_DRAIN_MAX_S,
            wait_for_critical_replacements=False,
            critical_priority_threshold=self.settings.policy.critical_priority_threshold,
        )
        outage = OutageCoordinator(
            identity=name,
            api=api,
            elector=elector,
            drainer=Drainer(
                api, self.clock, sleep=self.sleep, options=short, fence=elector.ensure_leader, log=log, signer=signer
            ),
            power_off=power_off,
            events=events,
            local=daemon,
            hook_runner=_HookRunner(pi),
            ups_return=pi.request_ups_return if pi.ups_kill is not None else None,
            settings=FullShutdownSettings(
                namespace="piclusterd",
                hook=self.full_shutdown_hook,
                ups_off_delay_s=config.shutdown.ups_off_delay_s,
                critical_priority=self.settings.policy.critical_priority_threshold,
                inverter_efficiency=self.settings.battery.inverter_efficiency,
                ups_overhead_w=self.settings.battery.ups_overhead_w,
                dry_run=self.settings.dry_run,
            ),
            clock=self.clock,
            sleep=self.sleep,
            log=log,
            tick=lambda: setattr(pi, "long_step_ticks", pi.long_step_ticks + 1),  # renewal is in self.sleep
            boot_id=pi.boot_id,
            verifier=pi.require_verifier(),
            carrying_file=self._directory / name / "full-shutdown",
        )
        daemon.defer_to(outage)
        # As cli.build_cluster: the node blocks in its self-drain while the rest of the world goes on.
        daemon.add_pre_shutdown_hook(
            build_self_drain(
                self_drain_settings(config),
                api,
                name,
                self.clock,
                runtime_left=lambda: daemon.memory.last_runtime_s,
                log=log,
                sleep=lambda seconds: self.sleep(seconds, stalled=name),
                tick=keep_alive,
            )
        )
        if notifier is not None:
            notifier.use_ledger(outage.ledger)
            notifier.start(log, thread=False)  # pumped by step(), on the world's clock
        pi.outage = outage
        pi.elector = elector
        pi.daemon = daemon
        pi.agent = agent
        pi.drainer = drainer
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
            outage=outage,
            power_on=self.power_on,
        )
        return pi

    def sleep(self, seconds: float, *, stalled: str | None = None) -> None:
        """Time passes inside a leader's long step: the cluster's controllers run, other nodes still answer.

        ``stalled`` names a node whose process is blocked meanwhile (a command that hangs, its self-drain): it
        does nothing, in this call and in any nested one (another node's self-drain inside it).
        """
        added = stalled is not None and stalled not in self._stalled
        if stalled is not None:
            self._stalled.add(stalled)
        try:
            self._pass_time(seconds)
        finally:
            if added and stalled is not None:
                self._stalled.discard(stalled)

    def _pass_time(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self._finish_boots()
        self.server.run_controller_once()
        if self.on_time_passed is not None:
            self.on_time_passed()
        for pi in list(self.pis.values()):
            if pi.name in self._stalled:
                continue
            if pi.alive and pi.agent is not None and pi.daemon is not None:
                pi.daemon.step()
                pi.agent.tick(pi.daemon.memory.state)
            if pi.alive and pi.elector is not None:
                # Every daemon keeps its own loop running: the leader renews from inside its long step (cli.py's
                # keep_alive), the others keep watching the lease.
                pi.elector.try_acquire_or_renew()

    def step(self, seconds: float = 1.0) -> None:
        for pi in list(self.pis.values()):
            if pi.alive and pi.daemon is not None and pi.controller is not None:
                pi.daemon.step()
                pi.controller.tick(pi.daemon.memory, pi.daemon.measured_load_w)
            if pi.alive and pi.notifier is not None:
                pi.notifier.pump()
        self.clock.advance(seconds)
        self._finish_boots()
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
        """Close the nodes' API clients and remove their configs and runtime directories (the demo runs
        this for users: it must not leave a directory in /tmp each time)."""
        for client in self._clients:
            client.close()  # type: ignore[no-untyped-call]
        shutil.rmtree(self._directory, ignore_errors=True)
