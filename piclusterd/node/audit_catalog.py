"""Every event the daemon can write to its audit trail, documented once.

The same list renders ``docs/audit.md``'s event table and the journald catalog
(``systemd/piclusterd.catalog``, installed to ``/usr/lib/systemd/catalog/`` so ``journalctl -x`` explains each
line). ``tools/gen_audit_docs.py`` writes both; a test checks that they are current and that this list names
exactly the events the code emits. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from piclusterd.node.audit import message_id

__all__ = ["EVENTS", "EventDoc", "render_catalog", "render_markdown_table"]

DOCUMENTATION = "man:piclusterd(8) file:///usr/share/doc/piclusterd/audit.md"


@dataclass(frozen=True, slots=True)
class EventDoc:
    """One audit event: its name, journald priority, ``PICLUSTER_*`` fields, meaning and what to do."""

    name: str
    level: str
    subject: str
    fields: tuple[str, ...]
    meaning: str
    action: str

    @property
    def message_id(self) -> str:
        return message_id(self.name)


EVENTS: tuple[EventDoc, ...] = (
    EventDoc(
        "daemon.started",
        "info",
        "piclusterd started",
        ("VERSION", "CONFIG", "MODE", "UPS_HOST", "UPS_NAME", "POLICY_CRITICAL_RUNTIME_S", "SHUTDOWN_COMMAND", "..."),
        "The daemon started with the configuration shown (one field per key, secrets left out).",
        'Check MODE: "dry-run" powers no other node off, but this node still shuts itself down when critical '
        "unless SHUTDOWN_LOCAL_PROTECTION is false.",
    ),
    EventDoc(
        "daemon.stopped",
        "info",
        "piclusterd stopped",
        ("STATE",),
        "The daemon stopped cleanly (systemctl stop, or the machine is shutting down), in power state STATE.",
        "None.",
    ),
    EventDoc(
        "daemon.failed",
        "critical",
        "piclusterd failed",
        ("ERROR",),
        "The daemon stopped on an error it cannot recover from; systemd restarts it (Restart=on-failure).",
        "Read ERROR and the lines before it; systemctl status piclusterd.",
    ),
    EventDoc(
        "daemon.status_file_failed",
        "warning",
        "piclusterd cannot write its status file",
        ("PATH", "ERROR"),
        "The live status for piclusterctl status could not be written under PATH ([daemon] runtime_dir). "
        "Logged once; protection goes on.",
        "Fix the directory or runtime_dir, then systemctl restart piclusterd.",
    ),
    EventDoc(
        "metrics.serving",
        "info",
        "piclusterd serves Prometheus metrics",
        ("ADDRESS",),
        "[metrics] listen is set: the metrics of docs/metrics.md are served at ADDRESS.",
        "Point Prometheus at ADDRESS (deploy/prometheus/ has the alert rules).",
    ),
    EventDoc(
        "metrics.textfile_failed",
        "warning",
        "piclusterd cannot write its metrics textfile",
        ("ERROR",),
        "The file for node_exporter's textfile collector ([metrics] textfile) could not be written. Logged once "
        "until a write works again; it is retried every 30 s and protection goes on.",
        "Create the directory (apt install prometheus-node-exporter makes /var/lib/prometheus/node-exporter) "
        "or fix textfile.",
    ),
    EventDoc(
        "power.state_changed",
        "info (online), critical (critical), warning (the others)",
        "power state changed",
        (
            "OLD",
            "NEW",
            "STATE",
            "REASON",
            "CHARGE_PCT",
            "CHARGE",
            "RUNTIME_S",
            "RUNTIME",
            "RUNTIME_SOURCE",
            "LOAD_W",
            "ON_BATTERY",
            "UPS_STATUS",
        ),
        "The node's power state moved from OLD to NEW (unknown, online, on_battery, low_battery, critical) "
        "for REASON. STATE, CHARGE (%) and RUNTIME (s) repeat NEW, CHARGE_PCT and RUNTIME_S for short queries.",
        "None on online; on critical the node shuts itself down (see shutdown.local_started).",
    ),
    EventDoc(
        "power.reading_rejected",
        "warning",
        "a UPS value was refused",
        ("VARIABLE", "VALUE", "REASON", "WHOLE_READING"),
        "The UPS sent a value that cannot be true (VALUE of VARIABLE); it was not used. WHOLE_READING=True: the "
        "whole reading was refused (ups.status missing or saying neither OL nor OB). Repeated at most every 5 min. "
        "With several sources ([ups] driver = [...]), VARIABLE starts with the source's name; VARIABLE = a source "
        "name alone: that source gave no reading (REASON), and if it was on battery it is held as on battery.",
        "Check the UPS and its NUT driver (upsc UPS@HOST).",
    ),
    EventDoc(
        "power.unknown_status_word",
        "warning",
        "unknown word in ups.status",
        ("WORD",),
        "ups.status held a word piclusterd does not know; it was ignored. Logged once per word and daemon life.",
        "Report it if it matters (NUT documents the status words of each driver).",
    ),
    EventDoc(
        "power.poll_failed",
        "debug",
        "one poll of the UPS failed",
        ("ERROR",),
        "One poll got no answer (only with --log-level debug). A lasting failure is reported as power.source_lost.",
        "None.",
    ),
    EventDoc(
        "power.source_failed",
        "error",
        "the power source failed unexpectedly",
        ("ERROR", "TRACEBACK"),
        "Reading the UPS or HAT raised an error its driver did not expect (a bug, or bytes no sane upsd sends); "
        "said once per kind of error, with its traceback. The poll counts as no answer and the connection is "
        "reopened: a lasting failure becomes power.source_lost, and on battery the DEADTIME rule still applies.",
        "Report it with the traceback; check what answers at [ups] host and port (upsc UPS@HOST).",
    ),
    EventDoc(
        "power.source_lost",
        "warning",
        "the UPS cannot be read",
        ("ERROR", "LAST_STATE", "STALE_AFTER_S"),
        "No usable reading. After STALE_AFTER_S the state becomes unknown, or critical if the last state was on "
        "battery (NUT's DEADTIME rule: this node then shuts down).",
        "Check upsd and the network: upsc UPS@HOST.",
    ),
    EventDoc(
        "power.source_restored",
        "info",
        "the UPS can be read again",
        ("SILENT_S",),
        "Readings are back after SILENT_S seconds without one.",
        "None.",
    ),
    EventDoc(
        "shutdown.local_started",
        "critical",
        "piclusterd is powering this node off",
        ("REASON", "COMMAND", "MODE", "BY"),
        "COMMAND ([shutdown] command) runs now, once per daemon life, for REASON. BY says who asked: "
        '"local_protection" (this node is critical: its own last-resort protection, in every MODE, dry-run too) '
        'or "cluster" (the leader\'s power-off request, or an rtc-wake check-in: only in enforce).',
        "After power returns: journalctl -b -1 -u piclusterd shows what led here.",
    ),
    EventDoc(
        "shutdown.local_skipped",
        "warning",
        "piclusterd would have powered this node off",
        ("REASON", "WOULD_RUN", "MODE", "BY", "WHY"),
        'WOULD_RUN was not run (said once per daemon life), for WHY: BY is "cluster" (a power-off the cluster '
        'asked for, while mode is "dry-run") or "local_protection" (this node is critical, but [shutdown] '
        "local_protection = false: another tool, such as NUT's upsmon, must power it off).",
        'cluster: once the journal of an outage reads right, set mode = "enforce" and systemctl reload piclusterd. '
        "local_protection: check that upsmon (or the tool that replaces it) is running on this node.",
    ),
    EventDoc(
        "shutdown.self_drain_started",
        "warning",
        "this node ends its pods before powering off",
        ("REASON", "BUDGET_S", "NON_CRITICAL", "CRITICAL", "LEFT_ALONE"),
        "The kubelet's graceful node shutdown is off on this node, so before its shutdown command piclusterd "
        "cordons it and evicts its pods with their own grace periods: NON_CRITICAL first, then CRITICAL, within "
        "BUDGET_S seconds (the energy left, at most [shutdown] self_drain_timeout). DaemonSet and static pods "
        "(LEFT_ALONE) end with the OS.",
        "Nothing to do now. To let the kubelet do this itself, turn on its graceful shutdown "
        "(piclusterd check-config prints the k3s lines).",
    ),
    EventDoc(
        "shutdown.self_drained",
        "warning",
        "this node's pods were ended before its power-off",
        ("ENDED", "DELETED_PAST_BUDGET", "LEFT_RUNNING", "ELAPSED_S"),
        "The self-drain is over and the shutdown command runs next. ENDED pods were gone before it; "
        "DELETED_PAST_BUDGET were deleted with their grace period because a PodDisruptionBudget refused their "
        "eviction and the time left was down to their grace period (as the kubelet's own graceful shutdown "
        "does: the node goes off either way); LEFT_RUNNING were still terminating when the budget ran out and "
        "keep their SIGTERM through the OS's shutdown.",
        "If LEFT_RUNNING is not empty, raise critical_runtime (piclusterd check-config shows the last-minute "
        "budget) or shorten those pods' terminationGracePeriodSeconds.",
    ),
    EventDoc(
        "shutdown.self_drain_skipped",
        "info",
        "no self-drain before this power-off",
        ("WHY",),
        "The self-drain did not run: the kubelet's graceful node shutdown ends the pods itself, or there was no "
        "time left for it (the pods then end with the OS's shutdown).",
        "Nothing to do if WHY names the kubelet. Otherwise see critical_runtime in piclusterd check-config.",
    ),
    EventDoc(
        "shutdown.self_drain_failed",
        "error",
        "the self-drain failed; the power-off goes on",
        ("ERROR", "ENDED", "LEFT_RUNNING"),
        "The self-drain stopped on ERROR (usually the API server unreachable). The shutdown command runs anyway: "
        "a failed drain costs the pods' graceful end, never the node's protection.",
        "Check the API server and this node's kubeconfig; consider turning on the kubelet's graceful shutdown.",
    ),
    EventDoc(
        "shutdown.pre_shutdown_hook_failed",
        "error",
        "a step before the power-off failed; the power-off goes on",
        ("HOOK", "ERROR"),
        "A step piclusterd runs just before its shutdown command raised an error it did not expect.",
        "Report it as a bug with the journal lines around it.",
    ),
    EventDoc(
        "shutdown.last_minute",
        "info",
        "the last minute's budget at start",
        ("METHOD", "BUDGET_S", "PARTS", "WARNINGS"),
        "The seconds this node needs from critical to halted (PARTS: its pods by METHOD, the OS's shutdown, the "
        "UPS's delay), as check-config prints them. Logged as a warning when WARNINGS is not empty: "
        "critical_runtime leaves less than that, so the battery may end before the node has halted.",
        "For a warning, raise [policy] critical_runtime (or shorten what WARNINGS names); measure "
        "[shutdown] os_shutdown_time on your Pis.",
    ),
    EventDoc(
        "ups.restart_settings",
        "info",
        "when the UPS turns its output back on",
        ("CHARGE_RESTART", "DELAY_START_S", "CHARGE_LOW", "DELAY_SHUTDOWN_S", "WARNINGS"),
        "Read from upsd at start: after a shutdown the UPS restores its output DELAY_START_S (ups.delay.start) "
        "after mains returns, once the battery is back at CHARGE_RESTART % (battery.charge.restart; empty: "
        "not exposed). Logged as a warning when WARNINGS is not empty: it would restart below what an orderly "
        "shutdown needs (critical_runtime at [battery] load_w) or below its own low-battery level, so a "
        "flicker soon after could cost a hard power loss.",
        "Set battery.charge.restart on the UPS (upsrw), or [ups] set_charge_restart to have piclusterd set it "
        "at start (upsd.users: actions = SET).",
    ),
    EventDoc(
        "ups.restart_settings_unread",
        "warning",
        "the UPS's restart settings could not be read",
        ("ERROR",),
        "upsd did not answer the start-up read of battery.charge.restart and ups.delay.start; nothing was "
        "checked. The power loop is not affected (its own polls say whether upsd answers).",
        "Check upsd; the next start reads them again.",
    ),
    EventDoc(
        "ups.restart_setting_set",
        "info",
        "a UPS restart setting was set, as the config asks",
        ("VARIABLE", "VALUE"),
        "[ups] set_charge_restart or set_delay_start asked piclusterd to SET VARIABLE to VALUE through upsd at "
        "start, and upsd said OK.",
        "Nothing to do.",
    ),
    EventDoc(
        "ups.restart_setting_set_failed",
        "error",
        "a UPS restart setting could not be set",
        ("VARIABLE", "VALUE", "ERROR"),
        "upsd refused SET VAR VARIABLE (not writable on this UPS, or the user lacks actions = SET).",
        "Give the [ups] username actions = SET in upsd.users, or set the value on the UPS itself and remove "
        "the key.",
    ),
    EventDoc(
        "shutdown.button_pressed",
        "warning",
        "the HAT's shutdown button was pressed",
        ("PRESS", "PIN"),
        "The board raised its SHUTDOWN line (X728: GPIO5). As the vendor's xPWR.sh reads it: held more than "
        "600 ms is PRESS shutdown, this node's orderly local shutdown (its pods ended first); 200-600 ms is "
        "PRESS reboot (the pods ended first, the HAT's power left on). Honoured in every mode: a person asked.",
        "Nothing to do. [hat] shutdown_button = false ignores the button.",
    ),
    EventDoc(
        "shutdown.button_unavailable",
        "error",
        "the HAT's shutdown button is not read",
        ("PIN", "ERROR"),
        "The button's GPIO line could not be set up (often Geekworm's x728-pwr.service holds it). Power "
        "protection is not affected; pressing the button does what the vendor's service (if any) does.",
        "systemctl disable --now x728-pwr, then restart piclusterd; or [hat] shutdown_button = false.",
    ),
    EventDoc(
        "node.graceful_shutdown",
        "info",
        "how this node's pods end before a halt",
        ("METHOD", "GRACE_S", "CRITICAL_S", "SOURCES", "PROBLEMS"),
        'Read at start from k3s\'s files: METHOD "kubelet" means the kubelet\'s graceful node shutdown is on '
        '(shutdownGracePeriod GRACE_S, CRITICAL_S of it for critical pods) and piclusterd relies on it; '
        '"self-drain" means it is off and piclusterd evicts the pods itself before powering off. PROBLEMS lists '
        "files or values that could not be read (counted as off).",
        "For METHOD self-drain, consider the kubelet's own graceful shutdown: piclusterd check-config prints the "
        "k3s lines.",
    ),
    EventDoc(
        "node.self_drain_undone",
        "info",
        "uncordoned after this node's own self-drain",
        ("CORDONED_AT",),
        "The last power-off's self-drain cordoned this node (it was not cordoned before); the daemon's start "
        "uncordons it again. A node cordoned by the leader or by hand stays as it was.",
        "Nothing to do.",
    ),
    EventDoc(
        "node.self_drain_undo_failed",
        "warning",
        "could not uncordon after this node's own self-drain",
        ("ERROR",),
        "The API server did not answer at start; the node stays cordoned until the next start or by hand.",
        "kubectl uncordon this node once the API server answers, or restart piclusterd.",
    ),
    EventDoc(
        "shutdown.power_cut_armed",
        "info",
        "the HAT's power will be cut after this power-off",
        ("PIN", "HOLD_S", "PATH"),
        "piclusterd wrote PATH before powering this node off for power reasons; once the Pi has halted, "
        "/usr/lib/systemd/system-shutdown/piclusterd-power-cut holds GPIO PIN active for HOLD_S seconds so the "
        "HAT stops feeding the halted Pi. A manual poweroff or a reboot leaves the HAT's power alone.",
        "Nothing to do.",
    ),
    EventDoc(
        "shutdown.power_cut_flag_failed",
        "error",
        "the HAT's power will not be cut after this power-off",
        ("PATH", "ERROR"),
        "The flag at PATH could not be written (ERROR). The node powers off all the same, but the HAT keeps "
        "feeding the halted Pi, draining the battery until it is empty or someone presses the HAT's button.",
        "Press the HAT's power button after the Pi halts; check that /var/lib/piclusterd is writable.",
    ),
    EventDoc(
        "shutdown.local_failed",
        "critical",
        "the shutdown command failed",
        ("COMMAND", "EXIT_STATUS"),
        "COMMAND exited with EXIT_STATUS (127: not found, 124: timed out after 120 s): this node may still be up "
        "when the battery ends.",
        "Run COMMAND by hand as root and fix it; check [shutdown] command.",
    ),
    EventDoc(
        "shutdown.local_deferred",
        "warning",
        "critical, waiting for the leader's ordered full shutdown",
        ("WHY", "WAIT_S"),
        "The node is critical but a live leader runs an orderly full shutdown (WHY), so it waits to be asked in "
        "turn (workers first, control-plane nodes one at a time, the leader last). It powers itself off anyway "
        "after WAIT_S ([shutdown] full_shutdown_wait), or at once if it loses the API server or the leader.",
        "None. shutdown.local_started follows; its REASON says how long it waited.",
    ),
    EventDoc(
        "shutdown.gate_failed",
        "error",
        "could not ask the cluster whether to wait: powering off now",
        ("ERROR",),
        "Checking for the leader's full shutdown raised ERROR, or got no answer within 5 s (the API server hangs"
        " rather than refuses): the node protects itself at once instead of waiting.",
        "A hang: check the API server (kubectl get --raw /readyz). Anything else: report ERROR as a bug, with the"
        " journal lines around it.",
    ),
    EventDoc(
        "shutdown.self_protection_unreported",
        "warning",
        "could not tell the cluster this node powered itself off",
        ("ERROR",),
        "The node waited full_shutdown_wait for the leader, powered itself off, and the Kubernetes Event saying so"
        " (LocalShutdownAfterWait) could not be sent: the journal is the only record.",
        "None for the shutdown (it went ahead). Afterwards read this node's journal for why the leader never asked.",
    ),
    EventDoc(
        "config.reloaded",
        "info",
        "configuration reloaded",
        ("CONFIG", "MODE", "UPS_HOST", "UPS_NAME", "..."),
        "systemctl reload piclusterd (SIGHUP) applied the file shown; fields as in daemon.started.",
        "None.",
    ),
    EventDoc(
        "config.reload_failed",
        "error",
        "configuration reload refused",
        ("ERROR", "KEPT"),
        "The new file is invalid, or changes cluster settings a running daemon cannot take (ERROR names the "
        "file, the keys and the fix); the daemon goes on with all of the configuration it had (KEPT). Only mode "
        "and the node's own settings can be reloaded; the rest of [cluster], [restore], [node_power] and what the "
        "planner reads needs a restart.",
        "Fix the file (piclusterd check-config), then systemctl reload piclusterd; or systemctl restart piclusterd "
        "when ERROR says the change needs one.",
    ),
    EventDoc(
        "cluster.mode_changed",
        "warning",
        "The cluster side took a reloaded mode",
        ("MODE", "LEADER"),
        "systemctl reload changed mode: from its next poll the leader (LEADER: whether this node leads now) plans "
        "and reports only (dry-run), or acts (enforce). A drain or power-off a dry-run leader left half-done stays "
        "recorded on its Node and is resumed by an enforce leader.",
        "None; to undo a half-done shed by hand: kubectl uncordon the node named in its picluster.io/shed record.",
    ),
    EventDoc(
        "node.cordoned",
        "info",
        "Leader cordoned a node to shed it",
        ("TARGET", "WAS_UNSCHEDULABLE"),
        "The leader recorded its intent (picluster.io/shed) and cordoned TARGET in one patch, before draining it.",
        "None. piclusterd uncordons only nodes it cordoned itself.",
    ),
    EventDoc(
        "node.drain_started",
        "info",
        "Drain of a node started",
        ("TARGET", "TIMEOUT_S"),
        "Pods on TARGET are being evicted through the Eviction API (PodDisruptionBudgets hold).",
        "None; kubectl get pods -o wide -w shows them move.",
    ),
    EventDoc(
        "node.drained",
        "info",
        "Node drained",
        ("TARGET", "EVICTED", "ELAPSED_S"),
        "Every pod that had to move left TARGET, and critical pods have a Ready replacement on another node.",
        "None: a power-off request follows.",
    ),
    EventDoc(
        "node.drain_failed",
        "warning",
        "Drain did not finish: node left on",
        ("TARGET", "REASON", "BLOCKING_PODS", "BUDGETS", "ELAPSED_S"),
        "The drain could not finish (a PodDisruptionBudget, an unreplicated pod, a timeout). TARGET stays on, "
        "its cordon state is restored as it was, and the planner tries the next candidate.",
        "Look at BLOCKING_PODS and BUDGETS: kubectl get pdb -A; a pod with no controller needs a Deployment.",
    ),
    EventDoc(
        "node.rolled_back",
        "info",
        "Leader undid its cordon and record",
        ("TARGET", "UNCORDONED"),
        "After a drain that could not finish, piclusterd removed its record and uncordoned TARGET if it had "
        "cordoned it (an operator's cordon is kept).",
        "None.",
    ),
    EventDoc(
        "node.poweroff_requested",
        "warning",
        "Leader asked a drained node to power off",
        ("TARGET", "REQUEST_ID", "REASON"),
        "The request is written on TARGET's Node (picluster.io/poweroff-request); its own piclusterd acknowledges "
        "and shuts down cleanly.",
        "None.",
    ),
    EventDoc(
        "node.poweroff_no_ack",
        "warning",
        "No answer to a power-off request, no SSH fallback",
        ("TARGET", "REQUEST_ID", "SSH"),
        "TARGET's piclusterd did not acknowledge in time, and SSH is not configured or TARGET has no InternalIP.",
        "Check piclusterd on TARGET (systemctl status piclusterd); configure the SSH fallback (deploy/README.md).",
    ),
    EventDoc(
        "node.poweroff_ssh",
        "warning",
        "Power-off sent over SSH",
        ("TARGET", "ADDRESS", "OUTCOME", "DETAIL"),
        "TARGET's piclusterd did not answer, so the leader used the SSH fallback. OUTCOME host_key_mismatch or "
        "auth_failed stops the power-off (never retried without verification).",
        "On host_key_mismatch: check TARGET really is that machine, then update the known_hosts file.",
    ),
    EventDoc(
        "node.poweroff_ssh_refused",
        "error",
        "SSH power-off refused: the node's address is not an IP address",
        ("TARGET", "ADDRESS", "WHY"),
        "TARGET's InternalIP (Node status) is not an IP address literal, so the leader did not run ssh to it: "
        "whoever can write a Node's status could otherwise pass options to the leader's ssh. Said once per value, "
        "with a PowerOffRefused Warning Event; TARGET stays cordoned, asked to power off by its own piclusterd.",
        "Check TARGET's Node (kubectl get node TARGET -o wide) and the kubelet's --node-ip on TARGET.",
    ),
    EventDoc(
        "node.powered_off",
        "warning",
        "Node powered off to save battery",
        ("TARGET", "REQUEST_ID", "VIA"),
        "TARGET went NotReady after the request (VIA agent or ssh): it is shed.",
        "None. It comes back when mains has been stable (or press its button, if its power-on path is manual).",
    ),
    EventDoc(
        "node.poweroff_unconfirmed",
        "error",
        "Node asked to power off is still Ready",
        ("TARGET", "REQUEST_ID", "VIA"),
        "TARGET was drained and asked to power off but is still Ready: it stays cordoned and keeps drawing power.",
        "Check TARGET's shutdown command and journal (journalctl -u piclusterd on TARGET).",
    ),
    EventDoc(
        "node.poweroff_request_invalid",
        "error",
        "A power-off request on this node cannot be read",
        ("VALUE", "WHY"),
        "The picluster.io/poweroff-request annotation on this node is not a valid record (edited by hand?). "
        "It is never obeyed.",
        "kubectl annotate node NODE picluster.io/poweroff-request- (remove it).",
    ),
    EventDoc(
        "outage.full_shutdown_unremembered",
        "warning",
        "The leader cannot note the full shutdown it carries on",
        ("PATH", "ERROR"),
        "The leader notes the full shutdown it runs in PATH (under [daemon] runtime_dir, on tmpfs), so that after "
        "a restart of its daemon it goes on with it even on mains. That write failed: if the daemon restarts "
        "on mains now, it will not resume the full shutdown (outage.full_shutdown_refused) and a person must.",
        "Fix the runtime directory ([daemon] runtime_dir).",
    ),
    EventDoc(
        "outage.full_shutdown_refused",
        "error",
        "A recorded full shutdown was not resumed: this node is not on battery",
        ("STARTED_AT", "LEADER_WAS", "WHY"),
        "The outage record (ConfigMap piclusterd-outage) says a full shutdown is under way, but this leader did "
        "not start it (nor take it over on battery) and its own power is not on battery. A full shutdown this "
        "leader carries on goes on whatever mains does; one found recorded is resumed only on battery, so a "
        "forged record (a startedAt in the future, say) never powers a cluster on mains off. Nothing is done; "
        "a Warning Event FullShutdownRefused says the same. Said once per record.",
        "kubectl -n piclusterd get configmap piclusterd-outage -o yaml; if no full shutdown was meant, delete it "
        "and uncordon the nodes it cordoned. A record nobody wrote means someone can write that ConfigMap.",
    ),
    EventDoc(
        "node.shed_refused_on_resume",
        "error",
        "A recorded shed was not finished: a safety rule forbids it now",
        ("TARGET", "PHASE", "LEADER_WAS", "RULE", "WHY", "ROLLED_BACK"),
        "TARGET carries a picluster.io/shed record (PHASE, written by LEADER_WAS) whose next step (drain or "
        "power-off) RULE forbids on a fresh snapshot: etcd quorum, the last control plane, min_nodes, pods that "
        "would not fit, a PodDisruptionBudget. The leader re-checks every rule before each such step, so a "
        "record written on older facts, or forged, never bypasses one. ROLLED_BACK is true when this leader "
        "had cordoned TARGET itself and undid that; otherwise the node is left exactly as it is. A Warning "
        "Event ShedRefused says the same. Said once per node, phase and rule.",
        "kubectl describe node TARGET; if nobody meant to shed it: kubectl annotate node TARGET "
        "picluster.io/shed- and kubectl uncordon TARGET. A record nobody wrote means someone can write Node "
        "annotations: find out who.",
    ),
    EventDoc(
        "cluster.record_refused",
        "error",
        "A shed or outage record was refused",
        ("KIND", "TARGET", "SIGNER", "CHECK", "WHY"),
        "A picluster.io/shed record on Node TARGET (read by the leader, or by TARGET's own rtc-wake check-in), or "
        "the outage ConfigMap, failed CHECK: signature (not signed with the cluster key: unsigned, or another "
        "key), term (signed in a term the Lease has not reached) or leader (signed in the current term by a "
        "node that does not hold the Lease). It is never acted on: the node is not drained, powered off, powered "
        "on or uncordoned for it; a check-in reads it as no record; a forged full shutdown is not resumed. A "
        "Warning Event RecordRefused says the same. Said once per record and check.",
        "A forged record means someone can write Node annotations or ConfigMaps: check who (the API server's audit "
        "log), then remove it (kubectl annotate node TARGET picluster.io/shed-; or delete the ConfigMap). From "
        "the real leader: every Pi needs the same [cluster] key_file.",
    ),
    EventDoc(
        "node.request_refused",
        "error",
        "A request to this node was refused",
        ("KIND", "REQUEST_ID", "LEADER", "CHECK", "WHY"),
        "A picluster.io/poweroff-request or poweron-request on this node (or a remote-poweroff over SSH) failed "
        "CHECK: signature (not signed with the cluster key), replay (an id already obeyed), leader (the signer does "
        "not hold the Lease now), term (signed in an earlier term), freshness (older than the Lease's last renewal "
        "allows) or situation (a power-off while this node is on mains and no full shutdown is recorded). It is "
        "never obeyed; a Warning Event RequestRefused says the same on the Node. Said once per request and check.",
        "A forged request means someone can write Node annotations: check who (kubectl get events, the API server's "
        "audit log). Signature failures from the real leader: every Pi needs the same [cluster] key_file.",
    ),
    EventDoc(
        "shutdown.remote_requested",
        "warning",
        "Leader asked this node to power off",
        ("REQUEST_ID", "LEADER"),
        "This node acknowledged the leader's request and runs its local shutdown (once).",
        "None.",
    ),
    EventDoc(
        "shutdown.remote_refused",
        "error",
        "An SSH power-off request was refused",
        ("ORIGIN", "REQUEST", "REQUEST_ID", "ASKED_FOR", "WHY"),
        "The cluster's SSH key was used for something else than a power-off, for another node's name, or for "
        "a request id that is not a signed, current power-off request on this node's Node object (WHY names "
        "the check that failed, as node.request_refused does: signature, replay, leader, term, freshness, "
        "situation; or the API server could not be asked); or this node's [daemon] runtime_dir cannot be "
        "written (WHY), so a repeated request could not be told apart. Nothing is done.",
        "Check who connected from ORIGIN; a node's address may have changed. With [cluster] off or the API "
        "server unreachable from this node, the SSH fallback cannot verify a request and refuses it. For "
        "runtime_dir: fix the directory named in WHY (piclusterd check-config does not create it).",
    ),
    EventDoc(
        "shutdown.remote_duplicate",
        "info",
        "Repeated SSH power-off request",
        ("ORIGIN", "REQUEST_ID", "FIRST"),
        "A power-off is already under way on this node; the repeat does nothing.",
        "None.",
    ),
    EventDoc(
        "leader.acquired",
        "info",
        "This node leads the cluster",
        ("HOLDER",),
        "This node holds the Lease (piclusterd/piclusterd-leader by default): it plans and sheds nodes.",
        "None. kubectl -n piclusterd get lease piclusterd-leader shows the holder.",
    ),
    EventDoc(
        "leader.lost",
        "warning",
        "This node is no longer the leader",
        ("HOLDER", "WHY"),
        "The lease was not renewed within the renew deadline (API unreachable?) or another node holds it. "
        "Nothing destructive is done without a fresh lease.",
        "If it repeats, check the API server and this node's network.",
    ),
    EventDoc(
        "leader.released",
        "info",
        "Leader gave the lease up",
        (),
        "On a clean stop the leader released the lease so another node leads at once.",
        "None.",
    ),
    EventDoc(
        "leader.stepping_down",
        "info",
        "Leader handed over so its own node can be shed",
        ("WHY",),
        "The plan sheds the leader's own node; it released the lease so another node drains and powers it off.",
        "None.",
    ),
    EventDoc(
        "plan.decided",
        "info",
        "The leader decided what to shed",
        (
            "DECISION",
            "REASON",
            "SHED",
            "IN_PROGRESS",
            "PROJECTED_RUNTIME_S",
            "RUNTIME_WITHOUT_SHEDDING_S",
            "REFUSED",
            "POWER_ON",
            "GIVEN_UP",
            "TOPOLOGY",
            "SEARCH_CUT",
            "DRY_RUN",
        ),
        "Logged when the decision changes. SHED lists the nodes in order; REFUSED each node a safety rule kept on, "
        "with the rule (power_unknown: a node's own battery is unknown, so it is left alone). POWER_ON lists shed "
        "nodes to bring back first because their own battery kept its charge (rotation), each with the node it "
        "relieves (a PowerOnPlanned Event on each); the leader powers them on, one at a time and never within "
        "restore_after of their power-off (node.power_on_requested), and sheds the low node once they rejoined. "
        "GIVEN_UP lists each non-critical pod the plan leaves Pending so its node can go, with that node ([cluster] "
        "give_up_noncritical; a PodsGivenUp Event on the node): it runs again when the nodes are back. "
        "TOPOLOGY is shared, per-node or mixed. SEARCH_CUT true: the search ran out of its work budget (a fixed "
        "count, so a plan never blocks the leader), so the plan is the best safe one found within it, maybe not the "
        "best there is; REASON says so too. DRY_RUN true: nothing is done.",
        "piclusterctl plan --snapshot replays a decision on a saved cluster. POWER_ON with a manual [node_power] "
        "method: press the node's power button when the PowerOnNeeded Event asks.",
    ),
    EventDoc(
        "battery.node_capacity_unset",
        "warning",
        "Nodes publish their own batteries but node_capacity_wh is not set",
        ("NODES", "FIX"),
        "NODES publish a HAT battery of their own in their power record, but [battery] node_capacity_wh is not "
        "set: the leader plans with the shared battery only, so a node whose own battery runs low is not moved "
        "off in time. Said once per daemon start (also as a NodeCapacityUnset Event on the leader's Node).",
        'Set [battery] node_capacity_wh (one HAT battery in Wh), or topology = "shared" if that is meant.',
    ),
    EventDoc(
        "cluster.roles_disagree",
        "warning",
        "A node's role signals disagree; the safer reading is used",
        ("TARGET", "NOTES"),
        "TARGET's node-role.kubernetes.io labels, its k3s.io/node-args annotation (k3s's own command line) and "
        "its etcd.k3s.cattle.io/node-name annotation do not say the same thing. The leader counts TARGET as a "
        "server (control plane) or etcd member if any of them says so, so it is never shed as an agent and no "
        "quorum is broken; NOTES say which signal won. Said once per node and wording (also a Warning Event "
        "NodeRolesDisagree on TARGET).",
        "Fix the node's labels so they say what the node is (k3s sets node-role.kubernetes.io/control-plane and "
        "etcd on servers itself); picluster.io/etcd-member=true|false overrides etcd membership.",
    ),
    EventDoc(
        "battery.node_unknown",
        "warning",
        "A node's own battery is unknown to the leader",
        ("TARGET", "DETAIL", "TOPOLOGY"),
        "On a per-node or mixed cluster the leader cannot tell TARGET's own battery (DETAIL: no power record, "
        "unreadable, or stale: the node stopped publishing), so it neither sheds nor rotates TARGET, which may run "
        "out unseen. Said when TARGET turns unknown, not every poll (also a Warning Event NodeBatteryUnknown on "
        "TARGET); battery.node_known follows when it is known again.",
        "Check that piclusterd runs on TARGET and reads its HAT (piclusterctl status there; journalctl -u piclusterd).",
    ),
    EventDoc(
        "battery.node_known",
        "info",
        "A node's own battery is known to the leader again",
        ("TARGET",),
        "TARGET's own battery, said unknown (battery.node_unknown), is read again: the plan counts it once more.",
        "None.",
    ),
    EventDoc(
        "node.drain_resumed",
        "info",
        "Leader resumed a drain a previous leader started",
        ("TARGET", "LEADER_WAS"),
        "The shed record on TARGET says draining: the new leader finishes the drain (evictions are idempotent).",
        "None.",
    ),
    EventDoc(
        "node.poweroff_resumed",
        "info",
        "Leader resumed a power-off a previous leader started",
        ("TARGET", "PHASE"),
        "TARGET was drained or already asked to power off; the request keeps its id, so it is never obeyed twice.",
        "None.",
    ),
    EventDoc(
        "node.record_invalid",
        "error",
        "A node's shed record cannot be read",
        ("TARGET", "VALUE", "WHY"),
        "The picluster.io/shed annotation on TARGET is not a record piclusterd wrote (edited by hand?). The node "
        "is left alone: never drained, powered off or uncordoned by piclusterd.",
        "Fix or remove it: kubectl annotate node TARGET picluster.io/shed- (and uncordon it if you cordoned it).",
    ),
    EventDoc(
        "node.shed_incomplete",
        "warning",
        "A drained node was not powered off",
        ("TARGET", "OUTCOME"),
        "TARGET was drained but its power-off was refused or not confirmed; it stays cordoned.",
        "See the node.poweroff_* lines before it.",
    ),
    EventDoc(
        "cluster.api_failed",
        "warning",
        "A Kubernetes API call failed",
        ("STEP", "ERROR"),
        "The step is retried on the next poll; destructive steps are only taken with a fresh lease.",
        "Check the API server (kubectl get --raw /readyz) and the kubeconfig in [cluster] kubeconfig.",
    ),
    EventDoc(
        "leader.unavailable",
        "error",
        "The leader Lease cannot be read or written",
        ("DOING", "HTTP_STATUS", "ERROR"),
        "Reading, creating or replacing the Lease failed with HTTP_STATUS (403: the token may not use Leases "
        "there; 404: no such namespace; empty: no answer). No node can lead while this lasts, so nothing is "
        "shed; each node still protects itself. Said once per cause until the Lease works again.",
        "Check [cluster] lease_namespace and the RBAC in deploy/ (kubectl auth can-i update leases -n NAMESPACE "
        "--as system:serviceaccount:...).",
    ),
    EventDoc(
        "leader.lease_distrusted",
        "warning",
        "The Lease's holder or duration is not believed",
        ("HOLDER", "WHY", "COUNTED_S"),
        "The Lease names a holder that is not a Node of the cluster, or a leaseDurationSeconds outside 1 s..10x "
        "the configured one. It is counted as expiring COUNTED_S seconds (the configured duration) after it was "
        "last seen to change, then a real node takes it over. Said once per lease record.",
        "Find who wrote the Lease (kubectl get lease -n NAMESPACE piclusterd-leader -o yaml; the audit log "
        "of the API server).",
    ),
    EventDoc(
        "cluster.tick_failed",
        "error",
        "The cluster side failed unexpectedly; this node's power protection goes on",
        ("ERROR", "FAILURES", "TRACEBACK"),
        "An exception nobody expected in one poll of the cluster side (a bug, or data it could not handle). "
        "It is contained: this node's power loop and local shutdown keep running, and the next poll tries again. "
        "The traceback is logged once per place and kind of failure; FAILURES counts them all. Three failed polls "
        "in a row raise a ClusterTickFailing Warning Event.",
        "Report the TRACEBACK (it is a bug); meanwhile check the lines before it for the data involved.",
    ),
    EventDoc(
        "cluster.round_stalled",
        "warning",
        "The cluster side has been waiting STALLED_S seconds in one round; this node's power loop goes on",
        ("STALLED_S",),
        "One round of the cluster side (elect, obey, lead) has not ended for STALLED_S seconds: the API server "
        "hangs, or a call waits for an answer that does not come. The cluster side runs on a thread of its own, "
        "so this node's power polls, local shutdown and the systemd watchdog go on; its lease is not renewed, so "
        "another node leads meanwhile. Said once per stalled round.",
        "Check the API server (kubectl get --raw /readyz) and the network to it; the round ends when it answers "
        "or its calls time out.",
    ),
    EventDoc(
        "cluster.loop_failed",
        "error",
        "The cluster side's loop ended on an unexpected error; this node's power protection goes on",
        ("ERROR",),
        "An exception escaped the cluster side's own loop (a bug: each round contains its errors). This node "
        "keeps polling its power source and protecting itself, but takes no further part in the cluster until "
        "piclusterd restarts.",
        "Report the ERROR; restart piclusterd (systemctl restart piclusterd) to bring the cluster side back.",
    ),
    EventDoc(
        "cluster.watch_relisted",
        "info",
        "The watch of KIND started over with a fresh list: WHY",
        ("KIND", "WHY"),
        "piclusterd keeps the objects it reads (nodes, pods, PodDisruptionBudgets, the outage record, this "
        "node's own Node) by watching them. A watch that cannot go on from where it was (410 Gone: the API "
        "server compacted that version; or an event it could not read, too long or malformed) lists KIND "
        "again and watches from there. Routine after a long API server outage or an etcd compaction.",
        "None. Many in a row: check the API server's health and its --watch-cache settings.",
    ),
    EventDoc(
        "cluster.watch_failed",
        "warning",
        "The watch of KIND failed; it is tried again",
        ("KIND", "ERROR"),
        "Listing or watching KIND failed (API server down, hanging, or refusing). It is retried with a "
        "growing pause (1 s to 30 s); meanwhile the leader reads the cluster with plain LIST requests. Said "
        "once per kind of error until a watch works again.",
        "Check the API server (kubectl get --raw /readyz) and piclusterd's RBAC (list and watch on KIND).",
    ),
    EventDoc(
        "cluster.value_refused",
        "warning",
        "A pod's value could not be read; the pod keeps its default",
        ("OBJECT", "KEY", "VALUE", "WHY"),
        "A quantity on OBJECT (the picluster.io/cpu-usage annotation, a request or the overhead) is not one "
        "piclusterd reads (not a quantity, too long, out of range). The pod counts with its default (its CPU "
        "request for cpu-usage, 0 for a request) and the plan goes on. Said once per value.",
        "Fix the annotation: kubectl annotate pod -n NS NAME picluster.io/cpu-usage=250m --overwrite.",
    ),
    EventDoc(
        "node.power_publish_failed",
        "warning",
        "This node's power record could not be written",
        ("NODE", "STATE", "ERROR"),
        "The picluster.io/power annotation on this node's Node could not be patched; the leader plans on the "
        "last record it can read. Logged once until a write succeeds; retried on a state change or after 10 s. "
        "This node's own protection does not depend on it.",
        "Check the API server (kubectl get --raw /readyz) and that the RBAC allows patching nodes.",
    ),
    EventDoc(
        "node.power_publish_restored",
        "info",
        "This node's power record is written again",
        ("NODE", "STATE"),
        "The picluster.io/power annotation was written after a failure.",
        "None.",
    ),
    EventDoc(
        "cluster.ssh_fallback_off",
        "warning",
        "SSH fallback for power-offs is not configured",
        ("KEY", "KNOWN_HOSTS", "WHY"),
        "Without the key and known_hosts file, a node whose daemon does not answer cannot be powered off.",
        "Set up the key as deploy/README.md shows, or accept that such nodes stay on (cordoned).",
    ),
    EventDoc(
        "restore.waiting",
        "info",
        "Shed nodes are not powered on yet",
        ("WHY", "SHED"),
        "The leader holds the SHED nodes off, for reason WHY: on_battery or power_unknown (never during an outage, "
        "a new one's grace period included), mains_not_stable (mains not back for [restore] restore_after without a "
        "flicker), charge_low / charge_unknown (under restore_min_charge). Logged when the reason changes; the "
        "routine pacing (one node per restore_stagger, none within restore_after of its power-off) is not logged.",
        "None: they come back by themselves. If charge_unknown lasts, see restore_if_charge_unknown.",
    ),
    EventDoc(
        "restore.kept_off",
        "warning",
        "After a full shutdown, the nodes shed before it stay off while the charge is low",
        ("NODES", "WHY"),
        "The cluster booted from a full shutdown with the charge under [restore] restore_min_charge. The NODES, shed "
        "before the full shutdown, stay off: a node the power-on path did not boot is not woken, one that booted "
        "with the UPS's output is drained and powered off again (every safety rule applies; plan decision "
        "keep_off_after_full_shutdown). A flicker on that battery then costs the smallest safe set, not a second "
        "full shutdown. Logged, with a KeptOffAfterFullShutdown Event, when the set changes; NODES empty when that "
        "ends: the charge reached (the restore policy then brings them back), the outage record closed, or the "
        "battery critical (the full shutdown decides).",
        "None. To bring them back sooner, power them on by hand; the leader sheds them again until the charge is "
        "reached.",
    ),
    EventDoc(
        "node.power_on_requested",
        "info",
        "The leader powers a shed node back on",
        ("TARGET", "METHOD", "OUTCOME", "DETAIL", "REASON"),
        "Mains is back and stable, or (REASON starts with rotation:) on battery, a shed node that kept its own "
        "battery's charge comes back to relieve a running node whose own battery runs low, which a later plan then "
        "sheds. The leader marked TARGET's shed record restoring and asked its [node_power] METHOD "
        "to power it on. OUTCOME: done (switched), sent (a request left: magic packet, relay request), wakes_itself "
        "(rtc-wake: it wakes on its alarm), waiting_for_operator (manual: a Warning Event PowerOnNeeded says where). "
        "node.restored follows once it is Ready.",
        "For waiting_for_operator: press TARGET's power button (DETAIL says where). Otherwise none; if node.restored "
        "does not follow, check TARGET's power and its [node_power] table.",
    ),
    EventDoc(
        "node.power_on_failed",
        "warning",
        "A shed node could not be powered back on",
        ("TARGET", "METHOD", "ERROR"),
        "TARGET's [node_power] METHOD failed or cannot power it on (ERROR says why); its shed record is back to "
        "powered_off and a Warning Event PowerOnFailed is on the Node. The leader tries again 2 x restore_stagger "
        "later (30 s at least); the next shed node goes first.",
        "Fix what ERROR names (relay wiring, MAC address, the via node being down, upsd credentials), or press the "
        "button.",
    ),
    EventDoc(
        "node.power_on_withdrawn",
        "info",
        "A power-on request is withdrawn: mains failed again",
        ("TARGET", "METHOD", "WHY"),
        "Mains failed again while TARGET was asked back and nothing had been sent to it (METHOD manual: nobody "
        "pressed its button yet; rtc-wake: it had not woken yet). Its shed record is back to powered_off: piclusterctl "
        "status no longer asks for it, an rtc-wake node halts again when it wakes, an Event PowerOnWithdrawn says so. "
        "Once mains is back and stable the leader asks again.",
        "Do not power TARGET on now.",
    ),
    EventDoc(
        "node.power_on_unanswered",
        "warning",
        "A shed node asked to power on is still not Ready",
        ("TARGET", "METHOD", "WAITED_S"),
        "The leader asked TARGET's METHOD to power it on WAITED_S seconds ago (10 min, plus the recheck period for "
        "rtc-wake) and it is not Ready (a Warning Event PowerOnUnanswered says so too). piclusterd does not ask "
        "again by itself: a second relay pulse or button press on a node that did boot could switch it off.",
        "Look at TARGET: is it powered (LEDs), did it boot (console, ping), is k3s running (systemctl status k3s)?",
    ),
    EventDoc(
        "node.relay_pulsed",
        "info",
        "This node pulsed another node's power relay",
        ("TARGET", "REQUEST_ID", "LEADER", "DETAIL"),
        "The leader asked this node (the via of TARGET's [node_power] gpio-relay table) to power TARGET on; it "
        "removed the request (so it is obeyed once) and pulsed the line its own configuration gives (DETAIL).",
        "None; node.restored follows on the leader once TARGET is Ready.",
    ),
    EventDoc(
        "node.relay_unavailable",
        "error",
        "This node cannot drive the power relays it is configured for",
        ("TARGETS", "ERROR"),
        "[node_power] gpio-relay tables name this node as via for TARGETS, but at start its GPIO lines could not "
        "be set up (ERROR: no GPIO module, no header chip, a pin in use). The daemon runs on without them; a "
        "power-on request for TARGETS is then refused (node.relay_failed) and they need their button pressed.",
        "Do what ERROR says (apt install python3-libgpiod; free the pin), then systemctl restart piclusterd.",
    ),
    EventDoc(
        "node.relay_failed",
        "error",
        "This node could not pulse another node's power relay",
        ("TARGET", "REQUEST_ID", "ERROR"),
        "A power-on request for TARGET reached this node but the relay was not pulsed: ERROR says why (no "
        "gpio-relay table names this node as via, the GPIO line failed, or TARGET is already Ready: a pulse would"
        " switch it off). The request is removed, not retried.",
        "Check the [node_power] table of TARGET (via, pin) on every node, and the wiring; press TARGET's button"
        " (not if it is Ready: it is up).",
    ),
    EventDoc(
        "node.poweron_request_invalid",
        "error",
        "A power-on request on this node cannot be read",
        ("VALUE", "WHY"),
        "picluster.io/poweron-request on this node's Node is not a request this piclusterd can read (edited by hand, "
        "or written by a newer version): no relay is pulsed. Logged once per distinct value.",
        "Remove the annotation: kubectl annotate node NODE picluster.io/poweron-request-",
    ),
    EventDoc(
        "node.wakealarm_armed",
        "info",
        "RTC wake alarm armed before halting",
        ("PATH", "WAKE_IN_S"),
        "This node's power-on method is rtc-wake: before halting it armed its RTC alarm (PATH) to wake in WAKE_IN_S "
        "seconds and check in.",
        "None.",
    ),
    EventDoc(
        "node.wakealarm_failed",
        "error",
        "RTC wake alarm could not be armed",
        ("PATH", "ERROR"),
        "rtc-wake: the wake alarm could not be armed (a Pi 4 has no RTC; wrong wakealarm path). On a power-off "
        "request the node halts anyway and needs its button pressed to come back; at a check-in it stays up.",
        "Check [node_power.<this node>] wakealarm and that the node is a Pi 5 (ls /sys/class/rtc/).",
    ),
    EventDoc(
        "node.checked_in",
        "info",
        "A node woken by its RTC alarm checked in",
        ("ACTION", "WHY", "POWER"),
        "rtc-wake, once after start: ACTION rejoin (the leader asked it back, or it is no longer shed: the leader "
        "rejoins it) or halt_and_rearm (still shed, mains out or back but not yet asked back: it re-arms its alarm "
        "and halts again).",
        "None.",
    ),
    EventDoc(
        "node.restored",
        "info",
        "A shed node is back in the cluster",
        ("TARGET", "UNCORDONED", "SHED_AT"),
        "TARGET was shed and is Ready again: piclusterd uncordoned it (only if it had cordoned it) and cleared "
        "its picluster.io/ records.",
        "None.",
    ),
    EventDoc(
        "node.shed_cancelled",
        "info",
        "Mains came back before a node was powered off",
        ("TARGET", "PHASE", "WHY"),
        "TARGET was being drained or was drained but not yet off: the shedding is undone and it stays on.",
        "None.",
    ),
    EventDoc(
        "outage.started",
        "warning",
        "the leader opened an outage record",
        ("STARTED_AT", "CHARGE_PCT", "RUNTIME_S"),
        "Mains failed at STARTED_AT with the battery at CHARGE_PCT % and RUNTIME_S projected. The leader keeps "
        "what happens (energy, nodes shed, critical downtime, a full shutdown's progress, the messages sent) in "
        "the ConfigMap piclusterd-outage, in the lease's namespace, so that it outlives a full shutdown.",
        "None.",
    ),
    EventDoc(
        "outage.summary",
        "info",
        "an outage is over",
        (
            "STARTED_AT",
            "ENDED_AT",
            "DURATION_S",
            "MAINS_BACK_AT",
            "NODES_SHED",
            "FULL_SHUTDOWN",
            "FULL_SHUTDOWN_AT",
            "CHARGE_AT_START_PCT",
            "ENERGY_USED_WH",
            "CRITICAL_DOWNTIME_S",
        ),
        "Logged once per outage, when mains has held for a minute (a flapping mains is one outage) and every node "
        "is back without piclusterd's cordons and records (or 10 min after mains returned): DURATION_S from "
        "STARTED_AT to MAINS_BACK_AT, ENDED_AT when the cluster was back to normal, ENERGY_USED_WH drawn from the "
        "battery as the leader measured it, CRITICAL_DOWNTIME_S during which some critical workload had no Ready "
        "replica (the dark hours of a full shutdown included). A Kubernetes Event OutageSummary says the same.",
        "Compare ENERGY_USED_WH with the battery's capacity: much less than expected means the battery is ageing.",
    ),
    EventDoc(
        "outage.mains_back",
        "info",
        "mains is back during an outage",
        ("STARTED_AT", "MAINS_BACK_AT", "DURATION_S", "NODES_SHED", "FULL_SHUTDOWN"),
        "The leader saw mains return at MAINS_BACK_AT, DURATION_S after the outage began. The outage goes on "
        "until shed nodes are back (outage.summary); if mains fails again first, it is the same outage. With "
        "nodes shed or a full shutdown behind it, this is the [notify] message mains_back.",
        "None.",
    ),
    EventDoc(
        "notify.sent",
        "info",
        "a message went out through a [notify] sink",
        ("SINK", "KIND", "ATTEMPTS"),
        "The sink SINK took the message of kind KIND (its text is in the notify.* lines' TEXT when it fails), on "
        "attempt ATTEMPTS.",
        "None.",
    ),
    EventDoc(
        "notify.failed",
        "warning",
        "a [notify] sink did not take a message; it is tried again",
        ("SINK", "ERROR", "ATTEMPTS", "RETRY_IN_S"),
        "SINK failed (ERROR: the SMTP server, HTTP status, gammu's or the command's last line). The message waits "
        "in the queue on disk ([notify] queue_dir) and is tried again in RETRY_IN_S (30 s, doubling, at most 30 "
        "min), also after a restart.",
        "If it goes on: piclusterctl notify-test shows each sink's answer now; fix what ERROR names.",
    ),
    EventDoc(
        "notify.undeliverable",
        "error",
        "a message could not be delivered and is given up",
        ("SINK", "TEXT", "ATTEMPTS", "WHY"),
        "TEXT never reached SINK: refused for good (an HTTP 4xx, recipients refused), not taken within [notify] "
        "give_up_after, the queue full ([notify] queue_max: the oldest goes), or the sink is no longer configured. "
        "This line is the message now.",
        "Read TEXT; fix the sink (piclusterctl notify-test).",
    ),
    EventDoc(
        "notify.held_back",
        "info",
        "a message held back by its sink's rate limit",
        ("SINK", "KIND", "KEY"),
        "SINK already sent max_messages within per: this one is counted, and one message says how many were held "
        "back once the window has room (a storm sends a few messages, then a summary).",
        "None; raise max_messages or shorten per if the summaries hide what you need.",
    ),
    EventDoc(
        "notify.queue_unreadable",
        "warning",
        "a file in the notification queue could not be read and was removed",
        ("PROBLEM",),
        "A file in [notify] queue_dir was not a message piclusterd wrote (edited, truncated by a full disk): it is "
        "removed; the other messages are sent.",
        "None, unless it repeats: check the disk.",
    ),
    EventDoc(
        "notify.queue_failed",
        "warning",
        "the notification queue cannot be written",
        ("ERROR",),
        "Messages could not be written to [notify] queue_dir (ERROR: a full disk, a read-only or missing "
        "directory); tried again each second. Protection goes on.",
        "Fix the directory (under systemd: StateDirectory=piclusterd, /var/lib/piclusterd/notify).",
    ),
    EventDoc(
        "work.stopped",
        "info",
        "non-critical work stopped to reach the target runtime",
        ("WORKLOAD", "REPLICAS_FROM", "REPLICAS_TO", "PODS"),
        "The plan gives up non-critical pods whose nodes it sheds ([cluster] give_up_noncritical): piclusterd "
        "scaled WORKLOAD (a Deployment, a bare ReplicaSet or a StatefulSet, through its scale subresource) from "
        "REPLICAS_FROM to REPLICAS_TO, or suspended it (a Job). The counts before are in the ConfigMap "
        "piclusterd-stopped-work, written first; an Event WorkStopped is on the workload.",
        "None: the work comes back with the restore (work.restored). To keep a workload running during an "
        "outage, give it a PriorityClass at or above [cluster] critical_priority.",
    ),
    EventDoc(
        "work.stop_planned",
        "info",
        "non-critical work would be stopped (dry-run)",
        ("WORKLOAD", "REPLICAS_FROM", "REPLICAS_TO", "DRY_RUN"),
        "In dry-run, the plan would scale WORKLOAD from REPLICAS_FROM to REPLICAS_TO (a Job: suspend it). "
        "Nothing was changed or written.",
        "None; in enforce mode this is work.stopped.",
    ),
    EventDoc(
        "work.stop_refused",
        "warning",
        "a workload was not stopped",
        ("WORKLOAD", "WHY"),
        "piclusterd could not read what it needs to stop WORKLOAD (its scale, its Job, its ReplicaSet's owner: "
        "WHY), or the stopped-work record cannot be used: that workload (or all, for the record) is left "
        "running. Its pods are drained like any other.",
        "Look at the workload (kubectl get -o yaml); for the record, see work.record_invalid or "
        "cluster.record_refused.",
    ),
    EventDoc(
        "work.restored",
        "info",
        "stopped work put back",
        ("WORKLOAD", "REPLICAS_FROM", "REPLICAS_TO"),
        "The cluster restores (or the outage ended): WORKLOAD, stopped during the outage, was scaled back from "
        "REPLICAS_FROM to REPLICAS_TO, its count before (a Job resumed). Event WorkRestored on the workload.",
        "None.",
    ),
    EventDoc(
        "work.left_changed",
        "warning",
        "stopped work left as someone changed it",
        ("WORKLOAD", "REPLICAS_SET", "REPLICAS_NOW", "REPLICAS_BEFORE"),
        "piclusterd set WORKLOAD to REPLICAS_SET during the outage and now finds REPLICAS_NOW: someone changed "
        "it since, so it is left as it is (the user wins) and its entry is cleared. It had REPLICAS_BEFORE "
        "before the outage. Event WorkLeftAsChanged on the workload.",
        "Scale it to what you want (kubectl scale).",
    ),
    EventDoc(
        "work.already_back",
        "info",
        "stopped work found back already",
        ("WORKLOAD", "REPLICAS_NOW"),
        "WORKLOAD is at its count before the outage already (a leader put it back and stopped before clearing "
        "the entry, or someone did): the entry is cleared.",
        "None.",
    ),
    EventDoc(
        "work.gone",
        "info",
        "stopped work deleted meanwhile",
        ("WORKLOAD",),
        "WORKLOAD, stopped during the outage, no longer exists: nothing to put back; the entry is cleared.",
        "None.",
    ),
    EventDoc(
        "work.record_invalid",
        "error",
        "the stopped-work record cannot be read",
        ("VALUE", "WHY"),
        "The ConfigMap piclusterd-stopped-work holds something this piclusterd cannot read (edited by hand, or "
        "written by another version): no workload is stopped or put back from it.",
        "Read it (kubectl -n piclusterd get cm piclusterd-stopped-work -o yaml), put the workloads it lists back "
        "by hand (kubectl scale; kubectl patch job ... spec.suspend=false), then delete it.",
    ),
    EventDoc(
        "outage.record_invalid",
        "error",
        "the outage record cannot be read",
        ("VALUE", "WHY"),
        "The ConfigMap piclusterd-outage holds something this piclusterd cannot read (edited by hand, or written "
        "by another version): no full shutdown is led and nothing is undone from it.",
        "Read it (kubectl -n piclusterd get cm piclusterd-outage -o yaml), fix what it says by hand, delete it.",
    ),
    EventDoc(
        "shutdown.cluster_started",
        "critical",
        "the battery is about to end: orderly full shutdown",
        ("NODES", "REASON"),
        "The leader is critical (REASON) despite shedding: it powers the whole cluster off in order (cordon "
        "everything, workers, the hook, control-plane nodes one at a time, the UPS, itself last). It is not "
        "called off if mains returns half-way: the UPS's shutdown-return then power-cycles every Pi.",
        "None. Each step is logged as shutdown.cluster_step.",
    ),
    EventDoc(
        "shutdown.cluster_planned",
        "warning",
        "dry-run: the full shutdown piclusterd would run",
        ("DRY_RUN", "STEPS"),
        'The leader is critical but mode is "dry-run": STEPS is the order it would take (Cordon, PowerOffPeer '
        "node, RunHook, PowerOffLastMembers nodes, RequestUpsReturn, ShutDownLeader) if every node obeyed. Said "
        "once per critical spell; none of it is done, but each critical node still powers itself off on its own "
        "(shutdown.local_started BY local_protection), unordered, as upsmon would.",
        'Once the order reads right, set mode = "enforce" and systemctl reload piclusterd.',
    ),
    EventDoc(
        "shutdown.cluster_step",
        "warning",
        "next step of the full shutdown",
        ("PHASE", "STEP", "TARGET", "TARGETS"),
        "The leader takes STEP (Cordon, PowerOffPeer, WaitFor, RunHook, PowerOffLastMembers, RequestUpsReturn, "
        "ShutDownLeader) of PHASE, on TARGET or TARGETS if any. WaitFor: a control-plane node was asked and is "
        "not NotReady yet; the next one waits (one etcd member at a time). PowerOffLastMembers: etcd loses quorum "
        "with the next member, so all those left are asked at once and the leader follows.",
        "None.",
    ),
    EventDoc(
        "shutdown.cluster_cordoned",
        "warning",
        "every node cordoned for the full shutdown",
        ("NODES",),
        "NODES (those not cordoned already) were cordoned and recorded, so that the restart uncordons exactly them.",
        "None.",
    ),
    EventDoc(
        "shutdown.cluster_drain_incomplete",
        "warning",
        "a worker's drain did not finish: powered off anyway",
        ("TARGET", "REASON"),
        "During a full shutdown a drain gets [shutdown] drain_timeout; TARGET's did not finish (REASON), and it "
        "is powered off anyway, cordoned: the battery is ending and a clean filesystem comes first. Event "
        "FullShutdownDrainIncomplete on TARGET.",
        "None; if it happens every time, look at the pods that are slow to stop.",
    ),
    EventDoc(
        "shutdown.cluster_peer_unconfirmed",
        "warning",
        "a node was asked to power off but was not seen to",
        ("TARGET", "OUTCOME"),
        "TARGET did not go NotReady in time (OUTCOME); the full shutdown goes on, and TARGET powers itself off at "
        "the latest after its own full_shutdown_wait.",
        "After power returns, read TARGET's journal (journalctl -b -1 -u piclusterd).",
    ),
    EventDoc(
        "shutdown.hook_finished",
        "info",
        "the pre-shutdown hook ran",
        ("COMMAND",),
        "[shutdown] full_shutdown_hook ran on the leader and exited 0 (e.g. an etcd snapshot, taken while etcd "
        "still had quorum).",
        "None.",
    ),
    EventDoc(
        "shutdown.hook_failed",
        "error",
        "the pre-shutdown hook failed",
        ("COMMAND", "EXIT_STATUS"),
        "COMMAND exited with EXIT_STATUS (127: not found, 124: timed out); the full shutdown went on without it.",
        "Run COMMAND by hand as root and fix it.",
    ),
    EventDoc(
        "shutdown.ups_return",
        "warning",
        "the UPS's cut was armed for the end of this node's halt",
        ("OUTCOME", "DELAY_S", "DETAIL"),
        "OUTCOME requested: armed (/var/lib/piclusterd/ups-kill); this last node's system-shutdown hook tells the "
        "UPS, once its file systems are read-only, to cut its output DELAY_S later ([shutdown] ups_off_delay) and "
        "restore it when mains returns, so every Pi boots by itself; the hook's result is on the console. failed "
        "(logged as an error): not armed, because a peer was neither NotReady nor seen acknowledging its "
        "power-off (cutting it would cut that node mid-run) or the flag could not be written (DETAIL): the Pis "
        "stay halted until someone power-cycles them. disabled: [shutdown] ups_shutdown_return is off. Unless "
        "requested, a warning Event UpsShutdownReturnNotRequested says so on the leader's node.",
        "failed: check DETAIL, then that the named node is off; disabled: power the Pis on by hand.",
    ),
    EventDoc(
        "shutdown.leader_last",
        "critical",
        "every other node was asked: the leader powers off",
        ("REQUESTED",),
        "The last step of the full shutdown: REQUESTED were asked in this order; the leader now runs its own "
        "shutdown command (shutdown.local_started follows).",
        "After power returns the new leader undoes the full shutdown and logs outage.summary.",
    ),
)


def render_catalog(events: Iterable[EventDoc] = EVENTS) -> str:
    """The journald message catalog (systemd's catalog format: one ``-- MESSAGE_ID`` entry per event)."""
    entries = []
    for event in events:
        fields = ", ".join(f"PICLUSTER_{name}" if name != "..." else "..." for name in event.fields)
        entries.append(
            f"-- {event.message_id}\n"
            f"Subject: {event.subject} ({event.name})\n"
            f"Defined-By: piclusterd\n"
            f"Documentation: {DOCUMENTATION}\n"
            f"\n"
            f"{event.meaning}\n"
            f"\n"
            f"Fields: PICLUSTER_EVENT={event.name}, PICLUSTER_NODE, {fields}{'' if fields.endswith('...') else '.'}\n"
            f"Priority: {event.level}.\n"
            f"\n"
            f"What to do: {event.action}\n"
        )
    header = (
        "#  piclusterd's journald message catalog. Generated by tools/gen_audit_docs.py from\n"
        "#  piclusterd/node/audit_catalog.py: edit that, then run the tool.\n"
        "#  SPDX-License-Identifier: GPL-3.0-or-later\n\n"
    )
    return header + "\n".join(entries)


def render_markdown_table(events: Iterable[EventDoc] = EVENTS) -> str:
    """The event table of docs/audit.md."""
    lines = [
        "| event | priority | MESSAGE_ID | fields (`PICLUSTER_*`) | what it means | what to do |",
        "|---|---|---|---|---|---|",
    ]
    for event in events:
        fields = ", ".join(f"`{name}`" if name != "..." else "..." for name in event.fields)
        cells = (f"`{event.name}`", event.level, f"`{event.message_id}`", fields, event.meaning, event.action)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
