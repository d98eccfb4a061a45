"""A throw-away certificate authority and a server certificate for 127.0.0.1, made by Debian's ``openssl``.

For tests of the sinks' certificate checks: a server presents :attr:`SelfSignedCa.server_cert`, a client trusting
:attr:`SelfSignedCa.ca_file` accepts it, one trusting another :class:`SelfSignedCa` (or the system's CAs) refuses it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SelfSignedCa", "make_ca"]


@dataclass(frozen=True, slots=True)
class SelfSignedCa:
    ca_file: Path
    server_cert: Path
    server_key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, stdin=subprocess.DEVNULL)


def make_ca(directory: Path, name: str = "piclusterd test CA") -> SelfSignedCa:
    """A CA and a certificate it signed for ``127.0.0.1`` and ``localhost`` (one day), in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, request, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
        "-keyout", str(ca_key), "-out", str(ca_cert),
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(request)
    )
    extensions = directory / "server.ext"
    extensions.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", str(request), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "1", "-extfile", str(extensions), "-out", str(cert),
    )  # fmt: skip
    return SelfSignedCa(ca_cert, cert, key)
