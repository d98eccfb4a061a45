"""The configuration file: the TOML schema, its validation and the settings each part is built from.

``model`` holds the frozen ``Config`` dataclasses; ``schema`` the table of sections and keys (type, bounds,
default, the field each fills); ``parse`` turns ``/etc/piclusterd/piclusterd.toml`` into a ``Config`` (every
problem in one pass, each naming its key); ``settings`` turns a ``Config`` into the pure settings values each
part of the daemon takes (``settings_for``). It reads only the files it is given (the config and the password
files it names).

May import: ``piclusterd.core`` and ``piclusterd.drivers`` (the HAT profiles a ``[hat]`` table names).
"""
