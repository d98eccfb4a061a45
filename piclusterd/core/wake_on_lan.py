"""Wake-on-LAN's pure part: a MAC address parsed from text, and the magic packet for it.

The ``wol`` power-on backend (:mod:`piclusterd.cluster.power_on_backends`) sends the packet; the config
validates ``[node_power.<node>] mac`` with the same parser.
"""

from __future__ import annotations

import re

__all__ = ["magic_packet", "parse_mac"]

_MAC = re.compile(r"[0-9a-fA-F]{2}([:-]?)[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}")


def parse_mac(text: str) -> bytes:
    """``"dc:a6:32:01:02:03"`` (or with ``-``, or bare hex) as 6 bytes; ``ValueError`` for anything else."""
    if _MAC.fullmatch(text.strip()) is None:
        raise ValueError(f"{text!r} is not a MAC address (like dc:a6:32:01:02:03)")
    return bytes.fromhex(re.sub(r"[:-]", "", text.strip()))


def magic_packet(mac: bytes) -> bytes:
    """The Wake-on-LAN magic packet: 6 x 0xFF, then the MAC 16 times (102 bytes)."""
    if len(mac) != 6:
        raise ValueError(f"a MAC is 6 bytes, not {len(mac)}")
    return b"\xff" * 6 + mac * 16
