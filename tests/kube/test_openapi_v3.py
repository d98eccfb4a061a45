"""``/openapi/v3`` in the fake API server, as k8s.io/kube-openapi pkg/handler3 serves it, read by real kubectls.

kubectl 1.27 and later read ``/openapi/v3`` for ``kubectl explain`` (run with ``-v=6``: ``GET /openapi/v3``, then
the group-version's ``serverRelativeURL``; the kind is found through the ``x-kubernetes-group-version-kind`` of
its resource's ``get`` path). Debian's kubectl (1.20) never asks for it: it reads only ``/openapi/v2``, which
stays empty so that its client-side validation stays off (see fake_api_server.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from piclusterd.sim.fake_api_server import DAEMON_TOKEN, FakeKubeServer

DEBIAN_KUBECTL = Path(
    os.environ.get("PICLUSTERD_TEST_KUBECTL", "/var/cache/piclusterd-test/kubectl/root/usr/bin/kubectl")
)
WAIT_S = 60.0  # generous real-time bound for kubectl to answer; never a speed assertion


def _kubectl_1_27_or_later() -> Path | None:
    """A kubectl that reads /openapi/v3 for explain: $PICLUSTERD_TEST_KUBECTL_V3, else one on this machine."""
    named = os.environ.get("PICLUSTERD_TEST_KUBECTL_V3")
    candidates = [Path(named)] if named else []
    on_path = shutil.which("kubectl")
    candidates += [Path(on_path)] if on_path else []
    candidates += sorted(Path("/usr/lib/google-cloud-sdk/bin").glob("kubectl.1.*"), reverse=True)
    for binary in candidates:
        try:
            done = subprocess.run(
                [str(binary), "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=WAIT_S
            )
            minor = int(re.sub(r"\D.*", "", json.loads(done.stdout)["clientVersion"]["minor"]))
        except (OSError, ValueError, KeyError, subprocess.SubprocessError):
            continue
        if minor >= 27:
            return binary
    return None


def _run(binary: Path, server: FakeKubeServer, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    kubeconfig = server.write_kubeconfig(home / "kubeconfig")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    return subprocess.run(
        [str(binary), "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True, env=env, timeout=WAIT_S
    )


def test_the_root_lists_each_group_version_piclusterd_uses_with_its_hash() -> None:
    """handler3's OpenAPIV3Discovery: ``{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=H"}}}``,
    H being the upper-case hex SHA-512 of the document, which is also its ETag. Readable with the daemon's token
    (the system:discovery ClusterRole grants /openapi/* to every authenticated user)."""
    with FakeKubeServer() as server:
        root = server.call("GET", "/openapi/v3", token=DAEMON_TOKEN)
        assert root.status == 200
        paths = root.body["paths"]
        assert {
            "api/v1",
            "apis/coordination.k8s.io/v1",
            "apis/policy/v1",
            "apis/apps/v1",
            "apis/storage.k8s.io/v1",
            "apis/authorization.k8s.io/v1",
        } <= set(paths)
        url = paths["apis/coordination.k8s.io/v1"]["serverRelativeURL"]
        assert url.startswith("/openapi/v3/apis/coordination.k8s.io/v1?hash=")
        request = urllib.request.Request(server.url + url, headers={"Authorization": f"Bearer {DAEMON_TOKEN}"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=30) as response:
            body = response.read()
            etag = response.headers["ETag"]
        digest = hashlib.sha512(body).hexdigest().upper()
        assert url.endswith(f"hash={digest}") and etag == f'"{digest}"'
        document = json.loads(body)
        assert document["openapi"] == "3.0.0"
        lease = document["components"]["schemas"]["io.k8s.api.coordination.v1.Lease"]
        assert lease["x-kubernetes-group-version-kind"] == [
            {"group": "coordination.k8s.io", "kind": "Lease", "version": "v1"}
        ]
        assert server.call("GET", "/openapi/v3/apis/batch/v1").status == 404  # not served, not described


def test_debian_kubectl_reads_the_documents_and_its_discovery_does_not_error(tmp_path: Path) -> None:
    """Debian's kubectl 1.20 talks to /openapi/v3 only through ``get --raw``; its discovery (api-resources) is
    unaffected."""
    if not os.access(DEBIAN_KUBECTL, os.X_OK):
        pytest.fail(f"Debian's kubectl is not at {DEBIAN_KUBECTL}: run `sudo tools/get-test-kubectl`")
    with FakeKubeServer() as server:
        resources = _run(DEBIAN_KUBECTL, server, tmp_path, "api-resources")
        assert resources.returncode == 0, resources.stderr
        assert "leases" in resources.stdout
        raw = _run(DEBIAN_KUBECTL, server, tmp_path, "get", "--raw", "/openapi/v3")
        assert raw.returncode == 0, raw.stderr
        url = json.loads(raw.stdout)["paths"]["api/v1"]["serverRelativeURL"]
        core = _run(DEBIAN_KUBECTL, server, tmp_path, "get", "--raw", url)
        assert "io.k8s.api.core.v1.PodSpec" in json.loads(core.stdout)["components"]["schemas"]


@pytest.fixture(scope="module")
def kubectl_v3() -> Path:
    found = _kubectl_1_27_or_later()
    if found is None:
        pytest.skip(
            "no kubectl 1.27 or later here (Debian's is 1.20 and reads only /openapi/v2): set "
            "PICLUSTERD_TEST_KUBECTL_V3 to one to check kubectl explain"
        )
    return found


def test_kubectl_explain_lease_shows_its_fields(kubectl_v3: Path, tmp_path: Path) -> None:
    with FakeKubeServer() as server:
        done = _run(kubectl_v3, server, tmp_path, "explain", "lease")
    assert done.returncode == 0, done.stderr
    assert "GROUP:      coordination.k8s.io" in done.stdout and "KIND:       Lease" in done.stdout
    assert re.search(r"^\s+spec\s+<LeaseSpec>", done.stdout, re.M)


def test_kubectl_explain_pods_spec_shows_the_grace_period(kubectl_v3: Path, tmp_path: Path) -> None:
    with FakeKubeServer() as server:
        done = _run(kubectl_v3, server, tmp_path, "explain", "pods.spec")
        renew = _run(kubectl_v3, server, tmp_path, "explain", "lease.spec.renewTime")
    assert done.returncode == 0, done.stderr
    assert re.search(r"^\s+terminationGracePeriodSeconds\s+<integer>", done.stdout, re.M)
    assert re.search(r"^\s+nodeName\s+<string>", done.stdout, re.M)
    assert renew.returncode == 0 and "FIELD: renewTime <string>" in renew.stdout, renew.stderr
