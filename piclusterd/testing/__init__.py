"""Real-part fixtures and emulators for piclusterd's tests, shipped for users' tests too.

The real upsd + dummy-ups wrapper (``nut_server``), the real sshd wrapper, the NUT protocol emulator, the
I2C chip, GPIO and HAT emulators, ``DaemonProcess``, the cluster builders, and the receiving ends of the
notification sinks (a real SMTP server, an HTTPS webhook server, a throw-away CA). The fakes the demo also runs
(fake API server, cluster world, scripted UPS, fake clock) live in ``piclusterd.sim``.

May import: anything in piclusterd. Nothing in piclusterd imports ``testing``.
"""
