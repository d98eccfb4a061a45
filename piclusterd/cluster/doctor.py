"""``piclusterctl doctor``: the first thing to run on a real cluster. Read-only.

It checks this node (the power source answers with plausible values, the EEPROM's power-off-on-halt
setting, the clock, the SSH fallback's files) and, with ``[cluster] enabled``, the cluster through the
daemon's own kubeconfig (the API answers, the Lease can be read, and the rules of
:mod:`piclusterd.core.doctor_rules` on a fresh snapshot). Nothing is written: no Lease, no annotation, no
eviction. Each probe that cannot run says so as ``info`` rather than guessing.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

from piclusterd.cluster.api_calls import DAEMON_API_CALLS, Permission, needed_permissions
from piclusterd.cluster.drain import DrainAction, DrainOptions, drain_action
from piclusterd.cluster.election import KubeLeaseStore
from piclusterd.cluster.kube_api import ApiCallFailed, EvictionOutcome, KubeClusterApi, can_i
from piclusterd.config.model import Config
from piclusterd.config.settings import ClusterSettings, Settings
from piclusterd.core.cluster_view import ClusterView, parse_kubectl_list
from piclusterd.core.doctor_rules import Finding, Level, cluster_findings
from piclusterd.core.last_minute_budget import ReserveVerdict
from piclusterd.core.ports import PowerSource
from piclusterd.core.reading import UpsFlag

__all__ = ["run_doctor"]

SourceFactory = Callable[[Config], PowerSource]
ClientFactory = Callable[[ClusterSettings], object]
_COMMAND_TIMEOUT_S = 10.0


def run_doctor(
    config: Config, settings: Settings, source_factory: SourceFactory, client_factory: ClientFactory
) -> list[Finding]:
    """Every finding, this node's first, then the cluster's."""
    findings = [
        *_power_source(config, source_factory),
        *_ups_restart(config),
        *_last_minute(config),
        *_eeprom(config),
        *_clock(),
    ]
    if settings.cluster is not None:
        findings += _ssh_files(settings.cluster)
        findings += _cluster(config, settings.cluster, client_factory)
    return findings


def _power_source(config: Config, source_factory: SourceFactory) -> list[Finding]:
    subject = f"[ups] driver {' + '.join(config.ups.drivers)}"
    try:
        source = source_factory(config)
    except Exception as error:  # the daemon would not start either: say why, as it would
        return [Finding(Level.PROBLEM, "power_source", subject, f"cannot be opened: {error}", "fix [ups]/[hat]")]
    try:
        parsed = source.poll()
    except Exception as error:  # SourceUnavailable, or a driver's bug: no answer either way
        return [
            Finding(
                Level.PROBLEM,
                "power_source",
                source.name,
                f"does not answer: {error}",
                "check that upsd runs (systemctl status nut-server) and [ups] host, port, name",
            )
        ]
    finally:
        source.close()
    reading = parsed.reading
    if reading is None:
        why = "; ".join(f"{r.variable}={r.value!r}: {r.reason}" for r in parsed.rejections) or "no data yet (WAIT)"
        return [
            Finding(
                Level.PROBLEM,
                "power_source",
                source.name,
                f"answers, but with no usable reading: {why}",
                "check the UPS driver (upsc <ups>) and its cable",
            )
        ]
    out = [
        Finding(
            Level.INFO,
            "power_source",
            source.name,
            f"answers: status {' '.join(sorted(f.value for f in reading.flags)) or '(none)'}, "
            f"charge {reading.charge_pct}, runtime {reading.runtime_s}",
        )
    ]
    if UpsFlag.OB in reading.flags:
        out.append(Finding(Level.WARNING, "on_battery", source.name, "the UPS says it is on battery now"))
    if reading.charge_pct is None:
        out.append(
            Finding(
                Level.WARNING,
                "no_charge",
                source.name,
                "reports no battery.charge: restores wait for restore_min_charge that cannot be known",
                "set [restore] restore_if_charge_unknown = true, or use a UPS driver that reports it",
            )
        )
    if reading.runtime_s is None and config.battery.capacity_wh is None:
        out.append(
            Finding(
                Level.WARNING,
                "no_runtime",
                source.name,
                "reports no battery.runtime and [battery] capacity_wh is not set: no runtime estimate, "
                "so the plan cannot aim at target_runtime",
                "set [battery] capacity_wh (the battery's Wh, from its label)",
            )
        )
    for rejection in parsed.rejections:
        out.append(
            Finding(
                Level.WARNING,
                "value_refused",
                source.name,
                f"{rejection.variable}={rejection.value!r} refused: {rejection.reason}",
            )
        )
    return out


def _ups_restart(config: Config) -> list[Finding]:
    """When the UPS turns its output back on after a full shutdown (``battery.charge.restart``,
    ``ups.delay.start``), judged as the daemon judges it at start (:mod:`piclusterd.node.ups_restart_check`).
    Read only: doctor never sets them."""
    if "nut" not in config.ups.drivers:
        return []
    from piclusterd.drivers.nut import read_ups_variables
    from piclusterd.node.ups_restart_check import judge_restart_settings

    ups = config.ups
    subject = f"UPS {ups.name}@{ups.host}:{ups.port}"
    try:
        variables = read_ups_variables(
            ups.host, ups.port, ups.name, ups.username, None if ups.password is None else ups.password.value,
            ups.timeout_s,
        )  # fmt: skip
        settings, checks = judge_restart_settings(config, variables)
    except Exception as error:  # the power_source finding already says the UPS does not answer
        return [Finding(Level.INFO, "ups_restart", subject, f"restart settings not read: {error}"[:400])]
    out = []
    for check in checks:
        if check.key == "battery.charge.restart" and settings.charge_restart_pct is None:
            delay = (
                "nor ups.delay.start"
                if settings.delay_start_s is None
                else f"(ups.delay.start is {settings.delay_start_s:g} s)"
            )
            out.append(
                Finding(
                    Level.INFO,
                    "ups_restart",
                    subject,
                    f"the UPS does not report battery.charge.restart {delay}: whether it restores its output "
                    "with enough charge for the next orderly shutdown cannot be checked (many UPSes restore "
                    "at any charge)",
                    "see the UPS's manual for its restart charge",
                )
            )
        elif check.verdict is ReserveVerdict.WARN:
            out.append(
                Finding(
                    Level.WARNING,
                    "ups_restart",
                    f"{subject} {check.key}",
                    check.message,
                    "raise the UPS's restart charge: [ups] set_charge_restart (the daemon sets it at start where "
                    "upsd allows), upsrw -s battery.charge.restart=<percent>, or the UPS's own settings",
                )
            )
        else:
            out.append(Finding(Level.INFO, "ups_restart", f"{subject} {check.key}", check.message))
    return out


def _last_minute(config: Config) -> list[Finding]:
    """How this node's pods end before a halt and whether critical_runtime covers its last minute: what
    check-config says (config/last_minute.py), as findings."""
    from piclusterd.config.last_minute import last_minute_report
    from piclusterd.node.kubelet_config import read_kubelet_shutdown

    report = last_minute_report(config, read_kubelet_shutdown(Path(config.shutdown.k3s_config)))
    hints = " ".join(note.strip() for note in report.notes)
    out = [Finding(Level.INFO, "pods_before_halt", "this node", report.method, hints)]
    for check in report.checks:
        if check.verdict is ReserveVerdict.WARN:
            out.append(Finding(Level.WARNING, "last_minute", check.key, check.message, "see docs/last-minute.md"))
        else:
            out.append(Finding(Level.INFO, "last_minute", check.key, check.message))
    return out


def _run(argv: list[str]) -> str | None:
    """A command's output, or None when it is not there or fails (a probe that cannot run is not a finding)."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _eeprom(config: Config) -> list[Finding]:
    """POWER_OFF_ON_HALT=1 lets a halted Pi 4/5 draw almost nothing (hardware.md); the planner counts it only
    where ``[cluster] power_off_on_halt`` says so, so the two should agree."""
    text = _run(["rpi-eeprom-config"]) or _run(["vcgencmd", "bootloader_config"])
    if text is None:
        return [
            Finding(
                Level.INFO,
                "eeprom",
                "this node",
                "POWER_OFF_ON_HALT unknown (no rpi-eeprom-config or vcgencmd: not a Pi 4/5, or not installed)",
            )
        ]
    on = any(line.strip().replace(" ", "") == "POWER_OFF_ON_HALT=1" for line in text.splitlines())
    if on == config.cluster.power_off_on_halt:
        return [Finding(Level.INFO, "eeprom", "this node", f"POWER_OFF_ON_HALT={int(on)}, as configured")]
    return [
        Finding(
            Level.WARNING,
            "eeprom",
            "this node",
            f"the EEPROM has POWER_OFF_ON_HALT={int(on)} but [cluster] power_off_on_halt = "
            f"{str(config.cluster.power_off_on_halt).lower()}: the plan's power figures are off",
            "make them agree: sudo rpi-eeprom-config --edit, or the config key",
        )
    ]


def _clock() -> list[Finding]:
    text = _run(["timedatectl", "show", "--property=NTPSynchronized", "--value"])
    if text is None:
        return [Finding(Level.INFO, "clock", "this node", "clock synchronisation unknown (timedatectl unavailable)")]
    if text.strip() == "yes":
        return [Finding(Level.INFO, "clock", "this node", "the clock is synchronised")]
    return [
        Finding(
            Level.WARNING,
            "clock",
            "this node",
            "the clock is not synchronised: records and request freshness are judged by wall clocks",
            "enable NTP: sudo timedatectl set-ntp true (a Pi without RTC needs the network at boot)",
        )
    ]


def _ssh_files(cluster: ClusterSettings) -> list[Finding]:
    off = cluster.power_off
    key, known = Path(off.ssh_key), Path(off.ssh_known_hosts)
    if not key.exists():
        return [
            Finding(
                Level.WARNING,
                "ssh_fallback",
                str(key),
                "no SSH key: a peer whose agent does not answer cannot be powered off",
                "see deploy/README.md (piclusterctl authorized-keys) or accept agent-only power-off",
            )
        ]
    out = []
    mode = stat.S_IMODE(key.stat().st_mode)
    if mode & 0o077:
        out.append(
            Finding(
                Level.PROBLEM,
                "ssh_key_mode",
                str(key),
                f"is readable by others (mode {mode:o})",
                f"sudo chmod 600 {key}",
            )
        )
    if not known.exists():
        out.append(
            Finding(
                Level.WARNING,
                "ssh_known_hosts",
                str(known),
                "is missing: strict host key checking refuses every peer",
                f"ssh-keyscan <each node's address> | sudo tee {known}",
            )
        )
    return out


def _cluster(config: Config, cluster: ClusterSettings, client_factory: ClientFactory) -> list[Finding]:
    subject = f"[cluster] kubeconfig {cluster.kube.kubeconfig or '(in-cluster)'}"
    try:
        client = client_factory(cluster)
        api = KubeClusterApi(client)  # type: ignore[arg-type]
        view = parse_kubectl_list(api.snapshot())
    except Exception as error:  # the API server unreachable, refused, or an unreadable answer
        return [
            Finding(
                Level.PROBLEM,
                "api",
                subject,
                f"cannot list the cluster: {error}"[:400],
                "check the kubeconfig, the API server and deploy/rbac.yaml",
            )
        ]
    out = [
        Finding(Level.INFO, "api", subject, f"{len(view.nodes)} nodes, {len(view.pods)} pods, {len(view.pdbs)} PDBs")
    ]
    out += _lease(client, cluster)
    permissions, denied = _permissions(client, cluster)
    out += permissions
    out += _dry_run_drains(api, view, cluster, denied)
    out += _this_node(view, cluster.identity)
    methods = {name: method.method for name, method in config.node_power.items()}
    out += cluster_findings(
        view, critical_priority=config.cluster.critical_priority, power_methods=methods, this_node=cluster.identity
    )
    out += _known_hosts(view, cluster)
    return out


def _lease(client: object, cluster: ClusterSettings) -> list[Finding]:
    election = cluster.election
    where = f"Lease {election.namespace}/{election.name}"
    try:
        lease = KubeLeaseStore(client, namespace=election.namespace, name=election.name).get()  # type: ignore[arg-type]
    except Exception as error:
        return [
            Finding(
                Level.PROBLEM,
                "lease",
                where,
                f"cannot be read: {error}"[:400],
                "apply deploy/rbac.yaml; check [cluster] lease_namespace",
            )
        ]
    holder = "nobody yet (the first daemon creates it)" if lease is None else (lease.holder or "nobody")
    return [Finding(Level.INFO, "lease", where, f"readable; held by {holder}")]


def _this_node(view: ClusterView, identity: str) -> list[Finding]:
    if view.has_node(identity):
        return []
    return [
        Finding(
            Level.PROBLEM,
            "node_name",
            identity,
            "is not a node of this cluster: the daemon's identity must be its Kubernetes node name",
            "set [node] name to the name kubectl get nodes shows",
        )
    ]


def _known_hosts(view: ClusterView, cluster: ClusterSettings) -> list[Finding]:
    known = Path(cluster.power_off.ssh_known_hosts)
    if not known.exists() or not Path(cluster.power_off.ssh_key).exists() or shutil.which("ssh-keygen") is None:
        return []
    out = []
    for node in view.nodes:
        if node.name == cluster.identity or not node.address:
            continue
        if _run(["ssh-keygen", "-F", node.address, "-f", os.fspath(known)]) is None:
            out.append(
                Finding(
                    Level.WARNING,
                    "ssh_known_hosts",
                    f"node {node.name}",
                    f"{node.address} is not in {known}: the SSH fallback cannot reach it",
                    f"ssh-keyscan {node.address} | sudo tee -a {known}",
                )
            )
    return out


def _permissions(client: object, cluster: ClusterSettings) -> tuple[list[Finding], set[Permission]]:
    """A SelfSubjectAccessReview for every call the daemon makes (:data:`~piclusterd.cluster.api_calls.
    DAEMON_API_CALLS`), as this node's kubeconfig: one finding per missing rule, naming the rule to add."""
    needed = needed_permissions(
        DAEMON_API_CALLS,
        lease_namespace=cluster.election.namespace,
        lease_name=cluster.election.name,
        outage_namespace=cluster.full_shutdown.namespace,
    )
    out: list[Finding] = []
    denied: set[Permission] = set()
    for permission in needed:
        attributes = {
            "verb": permission.verb,
            "group": permission.group,
            "resource": permission.resource,
            "subresource": permission.subresource,
            "namespace": permission.namespace,
            "name": permission.name,
        }
        try:
            allowed = can_i(client, {k: v for k, v in attributes.items() if v})  # type: ignore[arg-type]
        except ApiCallFailed as error:
            return [
                Finding(
                    Level.INFO,
                    "rbac",
                    "SelfSubjectAccessReview",
                    f"the daemon's rights could not be checked: {error}"[:400],
                )
            ], set()
        if allowed:
            continue
        denied.add(permission)
        where = f' in namespace "{permission.namespace}"' if permission.namespace else ""
        named = f' "{permission.name}"' if permission.name else ""
        consequence = (
            "it carries on without it, and says what it could not check"
            if permission.optional
            else "that call fails with 403 Forbidden"
        )
        out.append(
            Finding(
                Level.WARNING if permission.optional else Level.PROBLEM,
                "rbac",
                f"{permission.verb} {permission.resource_path}{named}{where}",
                f"not allowed for this kubeconfig, and the daemon needs it for {permission.why}: {consequence}",
                f"{permission.rbac_rule()}; then kubectl apply -f deploy/rbac.yaml",
            )
        )
    if not out:
        out.append(
            Finding(Level.INFO, "rbac", "deploy/rbac.yaml", f"all {len(needed)} calls the daemon makes are allowed")
        )
    return out, denied


def _dry_run_drains(
    api: KubeClusterApi, view: ClusterView, cluster: ClusterSettings, denied: set[Permission]
) -> list[Finding]:
    """A server-side dry run of each node's drain: the cordon (``?dryRun=All``) and the eviction of each pod
    the drain would evict (``deleteOptions.dryRun: ["All"]``). The API server runs every check, the
    PodDisruptionBudgets' included, and persists nothing (KEP-576; pkg/registry/core/pod/storage/eviction.go
    propagates the eviction's dryRun to its checks and skips both the PDB's update and the deletion).
    A call RBAC does not allow is skipped: the ``rbac`` finding already names it."""
    refused = {(p.verb, p.resource_path) for p in denied}
    out: list[Finding] = []
    if ("patch", "nodes") not in refused:
        for node in view.nodes:
            try:
                api.patch_node(node.name, {"spec": {"unschedulable": True}}, dry_run=True)
            except ApiCallFailed as error:
                out.append(
                    Finding(
                        Level.PROBLEM,
                        "dry_run_cordon",
                        f"node {node.name}",
                        f"a dry-run cordon was refused: {error}"[:400],
                        "an admission webhook or policy refuses node patches: allow the piclusterd ServiceAccount",
                    )
                )
    if ("create", "pods/eviction") in refused:
        return out
    drain = cluster.drain
    options = DrainOptions(
        delete_emptydir_data=drain.delete_emptydir_data,
        allow_unreplicated=drain.allow_unreplicated,
        critical_priority_threshold=drain.critical_priority,
    )
    tried = 0
    for node in view.nodes:
        for pod in view.pods_on(node.name):
            if drain_action(pod, options)[0] is not DrainAction.EVICT or pod.is_finished:
                continue
            tried += 1
            try:
                result = api.evict(pod.namespace, pod.name, dry_run=True)
            except ApiCallFailed as error:
                out.append(
                    Finding(
                        Level.WARNING,
                        "dry_run_eviction",
                        f"pod {pod.namespace}/{pod.name}",
                        f"a dry-run eviction got no answer: {error}"[:400],
                    )
                )
                continue
            if result.outcome in (EvictionOutcome.EVICTED, EvictionOutcome.GONE):
                continue
            pdbs = view.pdbs_for(pod)
            names = ", ".join(f"PodDisruptionBudget {p.key}" for p in pdbs) or "no PodDisruptionBudget known"
            why = "; ".join(result.blocking_pdbs) or result.message
            if result.outcome is EvictionOutcome.BLOCKED:
                fix = (
                    f"let {names} allow a disruption (maxUnavailable: 1, or a minAvailable below the "
                    "replicas) or add a replica; otherwise draining "
                    f"{node.name} waits until its timeout and the node is not shed"
                )
            elif len(pdbs) > 1:
                fix = f"a pod under more than one budget cannot be evicted at all: leave it one ({names})"
            else:
                fix = f"the drain of {node.name} would be refused the same way: see the message"
            out.append(
                Finding(
                    Level.PROBLEM,
                    "dry_run_eviction",
                    f"pod {pod.namespace}/{pod.name}",
                    f"on {node.name}: a dry-run eviction was refused by {names}: {why}"[:500],
                    fix,
                )
            )
    if not out:
        out.append(
            Finding(
                Level.INFO,
                "dry_run_drain",
                "cluster",
                f"dry runs: {len(view.nodes)} cordons and {tried} evictions accepted, nothing changed",
            )
        )
    return out
