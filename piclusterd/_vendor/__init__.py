"""Third-party code shipped inside piclusterd, so the Debian package needs nothing from PyPI.

``PyNUT.py``: PyNUTClient 1.9.0 from the ``pynutclient`` 2.8.5 distribution (Network UPS Tools,
GPL-3.0-or-later, Copyright 2008 David Goncalves, 2021-2026 Jim Klimov), socket-based. See ``README.md``
here for why it is vendored and what was changed.
"""
