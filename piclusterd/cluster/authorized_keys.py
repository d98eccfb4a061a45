"""The ``authorized_keys`` line that lets the leader's SSH key do nothing but ask a node to power off.

``piclusterctl authorized-keys --from CIDR [--key PUBKEYFILE]`` prints it (:func:`authorized_keys_line`):

    restrict,command="/usr/bin/piclusterd remote-poweroff",from="10.0.0.0/24" ssh-ed25519 AAAA... comment

``restrict`` turns off forwarding, ptys, X11 and the user's rc (sshd(8), AUTHORIZED_KEYS FILE FORMAT);
``command=`` forces the command whatever the caller asked to run; ``from=`` accepts the key only from the
cluster's own addresses, so a copy of the key is useless outside it. Pure, apart from reading the key file.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import stat
from collections.abc import Sequence

__all__ = ["FORCED_COMMAND", "AuthorizedKeysError", "authorized_keys_line", "parse_cidrs", "read_public_key"]

FORCED_COMMAND = "/usr/bin/piclusterd remote-poweroff"
_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "sk-ssh-ed25519@openssh.com",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ecdsa-sha2-nistp256@openssh.com",
        "ssh-rsa",
    }
)
_MAX_KEY_FILE = 16 * 1024
_COMMENT = re.compile(r"[A-Za-z0-9@._+-]{1,100}")


class AuthorizedKeysError(ValueError):
    """A CIDR or a key file that cannot go into the line; ``str()`` says which and how to fix it."""


def parse_cidrs(values: Sequence[str]) -> tuple[str, ...]:
    """Each ``--from`` value (a network, or several separated by commas) as canonical networks."""
    networks: list[str] = []
    for value in values:
        for part in value.split(","):
            text = part.strip()
            try:
                network = ipaddress.ip_network(text, strict=True)
            except ValueError:
                try:
                    loose = ipaddress.ip_network(text, strict=False)
                except ValueError:
                    raise AuthorizedKeysError(
                        f"--from {text!r} is not a network: give the cluster's, e.g. 10.0.0.0/24"
                    ) from None
                raise AuthorizedKeysError(f"--from {text!r} has host bits set: did you mean {loose}?") from None
            networks.append(str(network))
    if not networks:
        raise AuthorizedKeysError("--from needs the cluster's network, e.g. 10.0.0.0/24")
    return tuple(networks)


def read_public_key(path: str) -> str:
    """The one public key in ``path`` (``type base64 [comment]``), checked; only a small regular file is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise AuthorizedKeysError(f"--key {path}: {error.strerror}: make it with ssh-keygen -t ed25519") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise AuthorizedKeysError(f"--key {path} is not a regular file: give the .pub file")
        data = os.read(fd, _MAX_KEY_FILE + 1)
    finally:
        os.close(fd)
    if len(data) > _MAX_KEY_FILE:
        raise AuthorizedKeysError(f"--key {path} is larger than {_MAX_KEY_FILE} bytes: give the .pub file")
    try:
        lines = [line for line in data.decode("ascii").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise AuthorizedKeysError(
            f"--key {path} is not an OpenSSH public key (not ASCII): give the .pub file"
        ) from None
    if len(lines) != 1:
        raise AuthorizedKeysError(f"--key {path} must hold exactly one public key, not {len(lines)} lines")
    fields = lines[0].split()
    if len(fields) < 2 or fields[0] not in _KEY_TYPES:
        raise AuthorizedKeysError(f"--key {path} is not an OpenSSH public key (e.g. ssh-ed25519 AAAA...)")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except binascii.Error:
        raise AuthorizedKeysError(f"--key {path}: the key is not valid base64") from None
    # The blob starts with its own type (RFC 4253 6.6): a string, 4-byte length first.
    kind = fields[0].encode()
    if blob[:4] != len(kind).to_bytes(4, "big") or blob[4 : 4 + len(kind)] != kind:
        raise AuthorizedKeysError(f"--key {path}: the key does not match its type {fields[0]}")
    comment = fields[2] if len(fields) > 2 and _COMMENT.fullmatch(fields[2]) else "piclusterd@cluster"
    return f"{fields[0]} {fields[1]} {comment}"


def authorized_keys_line(networks: Sequence[str], public_key: str) -> str:
    """The line for ``/root/.ssh/authorized_keys`` on every node."""
    return f'restrict,command="{FORCED_COMMAND}",from="{",".join(networks)}" {public_key}'
