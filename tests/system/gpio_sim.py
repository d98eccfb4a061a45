"""The kernel's gpio-sim driver for the VM's kernel, built out of tree from Debian's own kernel source; cached.

Debian does not build gpio-sim: ``CONFIG_GPIO_SIM`` (and ``GPIO_MOCKUP``, ``GPIO_PCA953X``...) is not set in
bookworm's 6.1 kernel, nor in trixie's 6.12 (generic, cloud and rt flavours; checked in their
``/boot/config-*``). It is the upstream way to get a real GPIO chip without hardware: a ``/dev/gpiochipN``
served by gpiolib's character device, whose label is set through configfs and whose input levels are
driven through sysfs (``Documentation/admin-guide/gpio/gpio-sim.rst``). So the system test builds it for the
exact kernel in the VM image, from that kernel's Debian source package, with that kernel's headers and
compiler (gcc-12 on bookworm), and loads it with ``insmod``.

One line differs from upstream: ``kernel/irq/irq_sim.c`` (which gpio-sim needs and Debian does not build
either) is compiled into the module, and its ``handle_simple_irq(irq_to_desc(irq))`` becomes
``generic_handle_irq(irq)``, because ``irq_to_desc`` is not exported to modules. ``generic_handle_irq`` looks
up the same descriptor and calls its flow handler, which irq_sim sets to ``handle_simple_irq``. Only edge
events go through it; piclusterd polls its pins and does not use them.
"""

from __future__ import annotations

import re
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from .vm import VmError, VmImage, _locked, _run_logged, build_env

__all__ = ["MODULE_NAME", "cached_gpio_sim_module", "kernel_version"]

MODULE_NAME = "gpio-sim-vm"
#: Bump when the way the module is built changes.
RECIPE_VERSION = "1"
_KBUILD = f"obj-m := {MODULE_NAME}.o\n{MODULE_NAME}-y := gpio-sim.o irq_sim.o\n"


def kernel_version(kernel: Path) -> tuple[str, str]:
    """(release, Debian package version) of a bzImage, from its header's version string.

    The x86 boot protocol puts a pointer to the version string at offset 0x20E (relative to 0x200); Debian's
    reads like ``6.1.0-57-amd64 (debian-kernel@...) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)``.
    """
    data = kernel.read_bytes()[:65536]
    offset = int.from_bytes(data[0x20E:0x210], "little") + 0x200
    text = data[offset : offset + 256].split(b"\0", 1)[0].decode("ascii", errors="replace")
    found = re.match(r"(\S+) .* Debian (\S+) ", text)
    if found is None:
        raise VmError(f"cannot read the Debian kernel version from {kernel}: {text!r}")
    return found.group(1), found.group(2)


def cached_gpio_sim_module(cache_root: Path, image: VmImage, *, timeout_s: float = 900) -> Path:
    """The gpio-sim module for ``image``'s kernel: from the cache, or built into it (a few minutes, once)."""
    release, version = kernel_version(image.kernel)
    found = re.match(r"(\d+\.\d+)\.\d+-\d+", release)
    if found is None:
        raise VmError(f"unexpected kernel release {release!r} in {image.kernel}")
    abi, series = found.group(0), found.group(1)
    final = cache_root / f"gpio-sim-{release}-{version}-{RECIPE_VERSION}"
    module = final / f"{MODULE_NAME}.ko"
    with _locked(cache_root / ".lock"):
        if module.exists():
            return module
        for tool in ("make", "gcc-12", "apt-get"):
            if shutil.which(tool, path=build_env()["PATH"]) is None:
                raise VmError(f"building gpio-sim for the VM needs {tool} on the host (.ci/run installs it)")
        work = Path(tempfile.mkdtemp(prefix="building-gpio-sim-", dir=cache_root))
        try:
            log = work / "build.log"
            packages = [
                f"linux-headers-{release}={version}",
                f"linux-headers-{abi}-common={version}",
                f"linux-kbuild-{series}={version}",
                f"linux-source-{series}={version}",
            ]
            started = time.monotonic()
            downloads = work / "debs"
            downloads.mkdir()
            downloads.chmod(0o777)  # apt's _apt user writes there
            _run_logged(
                ["sh", "-c", f"cd {downloads} && apt-get download {' '.join(packages)}"], log, 600, "apt-get download"
            )
            root = work / "root"
            for deb in sorted(downloads.glob("linux-headers-*.deb")) + sorted(downloads.glob("linux-kbuild-*.deb")):
                _run_logged(["dpkg-deb", "-x", str(deb), str(root)], log, 300, f"dpkg-deb -x {deb.name}")
            headers = root / "usr" / "src" / f"linux-headers-{release}"
            makefile = headers / "Makefile"  # "include /usr/src/linux-headers-...-common/Makefile": point it here
            makefile.write_text(makefile.read_text().replace("include /usr/src/", f"include {root}/usr/src/"))
            (source_deb,) = downloads.glob("linux-source-*.deb")
            _run_logged(["dpkg-deb", "-x", str(source_deb), str(work / "source")], log, 600, "dpkg-deb -x linux-source")
            (tarball,) = (work / "source").glob("usr/src/linux-source-*.tar.xz")
            wanted = {"drivers/gpio/gpio-sim.c", "drivers/gpio/gpiolib.h", "kernel/irq/irq_sim.c"}
            build = work / "module"
            build.mkdir()
            with tarfile.open(tarball) as archive:
                for member in archive:
                    relative = member.name.split("/", 1)[-1]
                    if relative in wanted:
                        extracted = archive.extractfile(member)
                        assert extracted is not None
                        (build / Path(relative).name).write_bytes(extracted.read())
                        wanted.discard(relative)
                    if not wanted:
                        break
            if wanted:
                raise VmError(f"{tarball.name} lacks {sorted(wanted)}")
            irq_sim = build / "irq_sim.c"
            text = irq_sim.read_text()
            if "handle_simple_irq(irq_to_desc(irqnum));" not in text:
                raise VmError("irq_sim.c changed: the one-line patch no longer applies (see tests/system/gpio_sim.py)")
            irq_sim.write_text(text.replace("handle_simple_irq(irq_to_desc(irqnum));", "generic_handle_irq(irqnum);"))
            (build / "Kbuild").write_text(_KBUILD)
            _run_logged(["make", "-C", str(headers), f"M={build}", "modules"], log, timeout_s, "building gpio-sim")
            final.mkdir(parents=True, exist_ok=True)
            shutil.copy2(build / f"{MODULE_NAME}.ko", module)
            (final / "build-seconds").write_text(f"{time.monotonic() - started:.1f}\n")
            for old in cache_root.glob("gpio-sim-*"):
                if old != final and old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
            return module
        finally:
            shutil.rmtree(work, ignore_errors=True)
