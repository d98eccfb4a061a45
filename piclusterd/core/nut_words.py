"""What upsd can be told: the grammar of a NUT host, UPS name, user name and password.

upsd reads every request line with NUT's own parser (``common/parseconf.c``; ``docs/net-protocol.txt``: "This
protocol is intended to be interpreted with parseconf"). That parser splits words at whitespace and ``=``,
ends the line at an unquoted ``#``, treats ``"`` and ``\\`` as quoting, silently *discards* every byte outside
0x20-0x7E (``addchar``, CVE-2012-2944) and cuts a word at 512 bytes (``PCONF_DEFAULT_WORDLEN_LIMIT``).
PyNUTClient sends the UPS name and the user name unquoted, and the password unquoted first (quoted, without
escaping, only after ``ERR INVALID-ARGUMENT``). So a value outside these rules is not refused by upsd: it
arrives changed (``pass#word`` becomes ``pass``, ``passwörd`` becomes ``passwrd``), and the login fails later,
far from its cause, or the client refuses to send it at all. The configuration checks each value here, once,
so that ``check-config``, ``run`` and a reload refuse the same files, and the NUT clients check the same rules.

Pure: each ``*_problem`` function returns None for a good value, or what was expected (the end of an error
message).
"""

from __future__ import annotations

import ipaddress
import re

__all__ = ["MAX_WORD", "host_problem", "password_problem", "word_problem"]

#: upsd keeps at most 512 bytes of a word (parseconf.h PCONF_DEFAULT_WORDLEN_LIMIT); longer is cut, not refused.
MAX_WORD = 512

# One DNS label (RFC 1123; '_' as well, which resolvers accept in /etc/hosts and mDNS names).
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")

# What PyNUTClient can send unquoted and upsd reads back unchanged: printable ASCII without space, and none of
# parseconf's specials (quote, backslash, comment, the '=' word).
_WORD_SPECIALS = frozenset('"\\#=')


def host_problem(host: str) -> str | None:
    """None for an IP address literal or a DNS host name; else what is expected."""
    expected = 'a host name or IP address such as "127.0.0.1" or "ups.local" (ASCII, no spaces or quotes)'
    if not host or len(host) > 253 or not host.isascii():
        return expected
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return None
    labels = host.removesuffix(".").split(".")
    if all(_LABEL.fullmatch(label) for label in labels) and not host.replace(".", "").isdigit():
        return None
    return expected


def word_problem(word: str) -> str | None:
    """None for a UPS name or user name upsd reads back unchanged when sent as one unquoted word."""
    if (
        word
        and len(word) <= MAX_WORD
        and all(0x21 <= ord(c) <= 0x7E for c in word)
        and not _WORD_SPECIALS.intersection(word)
    ):
        return None
    return (
        'one word as in ups.conf / upsd.users: ASCII letters, digits and punctuation such as "." "-" "_", '
        'without spaces, quotes, "\\", "#" or "="'
    )


def password_problem(password: str) -> str | None:
    """None for a password PyNUTClient can send and upsd stores unchanged (as written in upsd.users)."""
    if (
        password
        and len(password) <= MAX_WORD
        and all(0x20 <= ord(c) <= 0x7E for c in password)
        and not set('"\\#').intersection(password)
        and password == password.strip(" ")
    ):
        return None
    return (
        'printable ASCII on one line, at most 512 characters, without "\\", quotes, "#" or spaces at either '
        "end (upsd drops other characters, and the client cannot quote these)"
    )
