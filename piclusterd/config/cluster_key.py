"""The cluster key file: made once by ``piclusterctl keygen``, copied to every Pi, read at start and by check-config.

The key signs the leader's requests (:mod:`piclusterd.core.authority`). Like the k3s token it is a secret
shared by the nodes: a root-only file (owner the user piclusterd runs as, mode 0600), hexadecimal on one line.
"""

from __future__ import annotations

import os
import secrets
import stat

from piclusterd.core.authority import KEY_BYTES, parse_key_text, render_key
from piclusterd.core.errors import ConfigError

__all__ = ["create_key_file", "read_key_file"]

#: A key file is one line; anything bigger is not one.
MAX_KEY_FILE_BYTES = 4096


def create_key_file(path: str) -> None:
    """Write a new random key to ``path``, mode 0600; never overwrites (FileExistsError), never widens a mode."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # whatever the umask
        os.write(descriptor, render_key(secrets.token_bytes(KEY_BYTES)).encode("ascii"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_key_file(file: str, key: str, path: str) -> bytes | ConfigError:
    """A cluster key file: root-only (owned by the user piclusterd runs as, no group or other access), hex.

    Checked and read through one open file (no swap between the check and the read); a FIFO or a device is
    refused without blocking on it."""
    fix = f"a root-only key file: piclusterctl keygen --out {path}, then copy it to every Pi (docs/security.md)"
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as error:
        return ConfigError(file, key, f"cannot read {path}: {error.strerror}", fix)
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            return ConfigError(file, key, f"{path} is not a regular file", fix)
        if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            return ConfigError(
                file,
                key,
                f"{path} is not root-only (owner uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):04o})",
                f"chown root:root {path} && chmod 600 {path}",
            )
        raw = os.read(descriptor, MAX_KEY_FILE_BYTES + 1)
    except OSError as error:
        return ConfigError(file, key, f"cannot read {path}: {error.strerror}", fix)
    finally:
        os.close(descriptor)
    try:
        if len(raw) > MAX_KEY_FILE_BYTES:
            raise ValueError(f"is larger than {MAX_KEY_FILE_BYTES} bytes")
        return parse_key_text(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as error:
        why = "is not ASCII" if isinstance(error, UnicodeDecodeError) else str(error)
        return ConfigError(file, key, f"{path} {why}", fix)
