"""The configuration file: the TOML schema, its validation and the settings each part is built from.

``parse`` turns ``/etc/piclusterd/piclusterd.toml`` into a frozen ``Config`` (every problem in one pass, each
naming its key); ``settings`` turns a ``Config`` into the pure settings values each part of the daemon takes.
It reads only the files it is given (the config and the password files it names).

May import: ``piclusterd.core`` and ``piclusterd.drivers`` (the HAT profiles a ``[hat]`` table names).
"""
