"""Adapter: read this node's kubelet graceful-shutdown settings from k3s's files, locally and with bounds.

Never through the API server's ``nodes/proxy`` (``/configz``), a permission too powerful to grant a daemon on
every node. What the files mean is pure, in :mod:`piclusterd.core.kubelet_shutdown`; here they are read:
each file at most :data:`MAX_FILE_BYTES`, at most :data:`MAX_DROP_INS` drop-ins per directory, parsed with
``yaml.safe_load`` (no Python objects) and never raising: an unreadable file is a problem in the answer.

Files, as k3s (v1.32+: docs.k3s.io "Kubelet Configuration Files") and the kubelet read them:
``/etc/rancher/k3s/config.yaml`` and ``config.yaml.d/*.yaml``; the kubelet's ``--config`` file; k3s's own
drop-in directory ``<data-dir>/agent/etc/kubelet.conf.d/*.conf`` (``data-dir`` defaults to
``/var/lib/rancher/k3s``) and a ``--config-dir`` given in ``kubelet-arg``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from piclusterd.core.kubelet_shutdown import KubeletShutdown, config_paths, k3s_kubelet_args, kubelet_shutdown

__all__ = ["K3S_CONFIG", "MAX_DROP_INS", "MAX_FILE_BYTES", "read_kubelet_shutdown"]

K3S_CONFIG = Path("/etc/rancher/k3s/config.yaml")
K3S_DATA_DIR = "/var/lib/rancher/k3s"
MAX_FILE_BYTES = 256 * 1024
MAX_DROP_INS = 64


def _load(path: Path, problems: list[str], sources: list[str]) -> Any:
    """The parsed YAML of ``path``; None if absent (not a problem) or unreadable (said in ``problems``)."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as error:
        problems.append(f"{path}: cannot read: {error.strerror or error}")
        return None
    if len(raw) > MAX_FILE_BYTES:
        problems.append(f"{path}: larger than {MAX_FILE_BYTES} bytes: not read")
        return None
    try:
        document = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        problems.append(f"{path}: not YAML: {str(error).splitlines()[0][:200]}")
        return None
    except RecursionError:
        problems.append(f"{path}: nested too deeply: not read")
        return None
    sources.append(str(path))
    return document


def _drop_ins(directory: Path, suffix: str, problems: list[str]) -> list[Path]:
    try:
        names = sorted(p for p in directory.iterdir() if p.name.endswith(suffix))
    except FileNotFoundError:
        return []
    except OSError as error:
        problems.append(f"{directory}: cannot list: {error.strerror or error}")
        return []
    if len(names) > MAX_DROP_INS:
        problems.append(f"{directory}: more than {MAX_DROP_INS} files: only the first {MAX_DROP_INS} read")
    return names[:MAX_DROP_INS]


def read_kubelet_shutdown(k3s_config: Path = K3S_CONFIG) -> KubeletShutdown:
    """This node's kubelet graceful-shutdown settings as k3s would start the kubelet with them. Never raises."""
    problems: list[str] = []
    sources: list[str] = []
    k3s_docs = [(str(k3s_config), _load(k3s_config, problems, sources))]
    for path in _drop_ins(k3s_config.with_name(k3s_config.name + ".d"), ".yaml", problems):
        k3s_docs.append((str(path), _load(path, problems, sources)))
    args, arg_problems = k3s_kubelet_args(k3s_docs)
    problems.extend(arg_problems)
    data_dir = K3S_DATA_DIR
    for _where, document in k3s_docs:
        if isinstance(document, dict) and isinstance(document.get("data-dir"), str) and document["data-dir"]:
            data_dir = document["data-dir"]
    config_file, config_dir = config_paths(args)
    kubelet_docs: list[tuple[str, Any]] = []
    if config_file:
        kubelet_docs.append((config_file, _load(Path(config_file), problems, sources)))
    directories = [Path(data_dir) / "agent" / "etc" / "kubelet.conf.d"]
    if config_dir and Path(config_dir) != directories[0]:
        directories.append(Path(config_dir))
    for directory in directories:
        for path in _drop_ins(directory, ".conf", problems):
            kubelet_docs.append((str(path), _load(path, problems, sources)))
    return kubelet_shutdown(args, kubelet_docs, sources=sources, problems=problems)
