"""examples/piclusterd.toml documents every [notify] key, and its examples, uncommented, are a valid config."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from piclusterd.config.notify import COMMON_KEYS, NOTIFY_KEYS, SINK_KEYS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "piclusterd.toml"


def notify_part() -> str:
    text = EXAMPLE.read_text()
    return text[text.index("# [notify]\n") :]


def test_every_notify_key_is_documented() -> None:
    part = notify_part()
    keys = {*NOTIFY_KEYS, *COMMON_KEYS, *(key for keys in SINK_KEYS.values() for key in keys)}
    for key in sorted(keys):
        assert re.search(rf"^# {key} = ", part, re.MULTILINE), f"[notify] {key} is not in examples/piclusterd.toml"
    for kind in SINK_KEYS:
        assert f'# type = "{kind}"' in part


def test_the_examples_are_toml_with_the_keys_the_parser_knows() -> None:
    uncommented = "\n".join(line[2:] if line.startswith("# ") else "" for line in notify_part().splitlines())
    data = tomllib.loads(re.sub(r"^( +)", "", uncommented, flags=re.MULTILINE).replace("\n          ", " "))
    notify = data["notify"]
    assert set(notify) - {"phone", "mail", "chat", "pager"} == set(NOTIFY_KEYS)
    for name in ("phone", "mail", "chat", "pager"):
        table = notify[name]
        assert set(table) <= {*COMMON_KEYS, *SINK_KEYS[table["type"]]}, name
