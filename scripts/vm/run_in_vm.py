#!/usr/bin/env python3
"""Run ONE command inside a throw-away qemu VM that has kernel ESP, and return its output.

    scripts/vm/run_in_vm.py [--timeout S] [--memory MB] [--cpus N] -- COMMAND [ARG...]

This host's kernel has XFRM netlink but no ESP (docs: /work/shared/NOTES.md "Kernel"), so the
kernel data plane is tested in a VM running Debian's stock kernel (package linux-image-amd64):

* qemu-system-x86_64 with TCG (`-M pc -accel tcg -cpu max -nodefaults -nic none`; KVM does not
  work on these machines), no network card: everything runs in namespaces inside the guest;
* a tiny initramfs built here from busybox-static and the kernel's own modules (virtio_pci, 9p,
  overlay and what they depend on), cached under $CYGNET_VM_CACHE (default /var/cache/cygnet-vm);
* the host's root file system shared read-only over 9p, with a tmpfs overlay on top, so the
  guest runs the same Python, venv, strongSwan and this work tree as the host;
* a second, writable 9p share (a temporary "job" directory) carrying the command, its output
  and exit code back; the guest powers off when the command ends.

The guest loads esp4, esp6, xfrm_user, xfrm_interface, aesni_intel, … itself (no udev).
Output is streamed while the command runs; the exit code is the command's (or 124 on a
timeout, 125 if the VM did not report one). Importable: `run(argv, timeout=…)` returns
(exit code, output text, console log text).
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CACHE = Path(os.environ.get("CYGNET_VM_CACHE", "/var/cache/cygnet-vm"))
BUSYBOX = "/bin/busybox"
# Modules the initramfs needs to reach the host root (their dependencies are added from
# modules.dep). Any of them may be built into the kernel instead: then it is not in the tree.
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")
# Modules the guest loads once it runs on the shared root (modprobe resolves dependencies).
GUEST_MODULES = ("virtio_rng esp4 esp6 xfrm_user xfrm_interface aesni_intel ghash_clmulni_intel "
                 "chacha20poly1305 chacha_x86_64 poly1305_x86_64 gcm ccm seqiv echainiv authenc "
                 "authencesn cbc sha256_ssse3 sha512_ssse3 veth tun nf_tables nft_nat nft_masq "
                 "nft_chain_nat ip6_tables tcp_diag udp_diag")

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /lower /upper /newroot
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.order); do insmod /modules/$m 2>/dev/null; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /lower || { echo "cygnet-vm: cannot mount the host root"; reboot -f; }
mount -t tmpfs -o size=75% upper /upper
mkdir -p /upper/data /upper/work
mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work overlay /newroot || { echo "cygnet-vm: overlay failed"; reboot -f; }
mkdir -p /newroot/cygnet-job
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 job /newroot/cygnet-job
umount /proc /sys 2>/dev/null
mount --move /dev /newroot/dev 2>/dev/null || umount /dev
exec switch_root /newroot /bin/sh /cygnet-job/stage2.sh
"""

# Runs as PID 1 on the overlay root. The command's output goes to the job directory (the
# console carries kernel messages too); the exit code goes to /cygnet-job/rc.
STAGE2 = r"""#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /run
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
# /tmp and /var/tmp stay the host's (read-only below, writable in the overlay): files the host
# prepared there (pytest's temporary PKI) are visible; what the guest writes stays in RAM.
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
mkdir -p /run/netns /run/lock
echo "cygnet-vm: stage 2 at $(cut -d' ' -f1 /proc/uptime) s" > /dev/console
modprobe -a -q __MODULES__ 2>/dev/null
ip link set lo up
echo "cygnet-vm: modules loaded at $(cut -d' ' -f1 /proc/uptime) s" > /dev/console
hostname cygnet-vm
echo "cygnet-vm: up $(cut -d' ' -f1 /proc/uptime) s after boot" > /cygnet-job/console-note
cd __CWD__
( __COMMAND__ ) > /cygnet-job/output 2>&1 < /dev/null
echo $? > /cygnet-job/rc.tmp
mv /cygnet-job/rc.tmp /cygnet-job/rc
sync
reboot -f
"""


# ------------------------------------------------------------------------------ the kernel


def find_kernel() -> tuple[Path, str]:
    """Debian's newest /boot/vmlinuz-* that has its modules in /lib/modules."""
    candidates = []
    for image in Path("/boot").glob("vmlinuz-*"):
        version = image.name[len("vmlinuz-"):]
        if (Path("/lib/modules") / version / "modules.dep").exists():
            candidates.append((image.stat().st_mtime, image, version))
    if not candidates:
        raise FileNotFoundError("no kernel image with modules (install Debian's linux-image-amd64)")
    _, image, version = max(candidates)
    return image, version


def module_closure(version: str, names) -> list[str]:
    """Paths (relative to /lib/modules/VERSION) of `names` and what they depend on, in load
    order. Names the kernel has built in are skipped (modules.builtin)."""
    base = Path("/lib/modules") / version
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (base / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        stem = Path(path).name.split(".ko")[0]
        by_name[stem.replace("-", "_")] = path
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    for name in names:
        path = by_name.get(name.replace("-", "_"))
        if path is not None:
            visit(path)
    return order


def _newc(entries) -> bytes:
    """A cpio archive in the "newc" format the kernel unpacks (entries: name, mode, data)."""
    out = io.BytesIO()
    for inode, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], start=1):
        encoded = name.encode() + b"\0"
        header = "070701" + "".join(f"{v:08x}" for v in (
            inode, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0))
        out.write(header.encode() + encoded)
        out.write(b"\0" * (-(110 + len(encoded)) % 4))
        out.write(data)
        out.write(b"\0" * (-len(data) % 4))
    return out.getvalue()


def build_initramfs(version: str) -> Path:
    """Busybox + the boot modules + /init, cached per kernel version."""
    target = CACHE / f"initramfs-{version}.cpio.gz"
    source_stamp = f"{INIT}{BOOT_MODULES}{os.path.getmtime(BUSYBOX)}"
    stamp = target.with_suffix(".stamp")
    if target.exists() and stamp.exists() and stamp.read_text() == source_stamp:
        return target
    if not os.access(BUSYBOX, os.X_OK):
        raise FileNotFoundError(f"{BUSYBOX} missing (install Debian's busybox-static)")
    modules = module_closure(version, BOOT_MODULES)
    base = Path("/lib/modules") / version
    entries = [("bin", 0o40755, b""), ("modules", 0o40755, b""),
               ("bin/busybox", 0o100755, Path(BUSYBOX).read_bytes()),
               ("init", 0o100755, INIT.encode())]
    names = []
    for path in modules:
        data = (base / path).read_bytes()
        name = Path(path).name
        if name.endswith(".xz"):
            import lzma
            data, name = lzma.decompress(data), name[:-3]
        elif name.endswith(".zst"):
            raise RuntimeError("zstd-compressed modules are not supported; use Debian's kernel")
        entries.append((f"modules/{name}", 0o100644, data))
        names.append(name)
    entries.append(("modules.order", 0o100644, ("\n".join(names) + "\n").encode()))
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(_newc(entries), compresslevel=6))
    os.replace(tmp, target)
    stamp.write_text(source_stamp)
    return target


# ------------------------------------------------------------------------------ running


def qemu_argv(kernel: Path, initramfs: Path, job: Path, memory: int, cpus: int) -> list[str]:
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        raise FileNotFoundError("qemu-system-x86_64 missing (install Debian's qemu-system-x86)")
    cmdline = ("console=ttyS0 panic=-1 random.trust_cpu=on quiet loglevel=4 "
               "mitigations=off tsc=unstable")
    return [
        qemu, "-M", "pc", "-accel", "tcg", "-cpu", "max", "-nodefaults", "-nic", "none",
        "-m", str(memory), "-smp", str(cpus), "-display", "none", "-no-reboot",
        "-serial", "stdio", "-monitor", "none",
        "-kernel", str(kernel), "-initrd", str(initramfs), "-append", cmdline,
        "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
        "-fsdev", f"local,id=job,path={job},security_model=none",
        "-device", "virtio-9p-pci,fsdev=job,mount_tag=job",
        "-device", "virtio-rng-pci",
    ]


def run(argv, *, timeout: float = 900, memory: int = 2048, cpus: int = 2, cwd: str | None = None,
        stream=None) -> tuple[int, str, str]:
    """Boot, run `argv` (a list, or one shell string) as root in the guest, power off.

    Returns (exit code, command output, console log). `stream`: a text file that receives
    the command's output as it appears (e.g. sys.stdout)."""
    kernel, version = find_kernel()
    initramfs = build_initramfs(version)
    command = argv if isinstance(argv, str) else shlex.join(argv)
    job = Path(tempfile.mkdtemp(prefix="cygnet-vm-job-"))
    try:
        stage2 = (STAGE2.replace("__MODULES__", GUEST_MODULES)
                  .replace("__CWD__", shlex.quote(cwd or os.getcwd()))
                  .replace("__COMMAND__", command))
        (job / "stage2.sh").write_text(stage2)
        (job / "output").touch()
        console_path = job / "console.log"
        with open(console_path, "wb") as console:
            process = subprocess.Popen(qemu_argv(kernel, initramfs, job, memory, cpus),
                                       stdin=subprocess.DEVNULL, stdout=console,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            done = threading.Event()
            streamer = threading.Thread(target=_follow, args=(job / "output", stream, done),
                                        daemon=True) if stream is not None else None
            if streamer:
                streamer.start()
            try:
                process.wait(timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(process.pid, signal.SIGKILL)  # qemu leads its own process group
                process.wait()
            finally:
                done.set()
                if streamer:
                    streamer.join(5)
        output = (job / "output").read_text(errors="replace")
        console_text = console_path.read_text(errors="replace")
        if timed_out:
            return 124, output, console_text
        rc_file = job / "rc"
        code = int(rc_file.read_text().strip()) if rc_file.exists() else 125
        return code, output, console_text
    finally:
        shutil.rmtree(job, ignore_errors=True)


def _follow(path: Path, stream, done: threading.Event) -> None:
    """Copy what the guest appends to `path` to `stream` until `done`."""
    position = 0
    while True:
        finished = done.is_set()
        try:
            with open(path, "rb") as f:
                f.seek(position)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            position += len(chunk)
            stream.write(chunk.decode(errors="replace"))
            stream.flush()
        if finished:
            return
        time.sleep(0.2)


def missing_requirements() -> list[str]:
    """Why a VM cannot be booted here (empty: it can)."""
    reasons = []
    if os.geteuid() != 0:
        reasons.append("not root")
    if shutil.which("qemu-system-x86_64") is None:
        reasons.append("qemu-system-x86_64 missing (Debian package qemu-system-x86)")
    try:
        find_kernel()
    except FileNotFoundError as error:
        reasons.append(str(error))
    if not os.access(BUSYBOX, os.X_OK):
        reasons.append(f"{BUSYBOX} missing (Debian package busybox-static)")
    return reasons


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--memory", type=int, default=2048, help="MB")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--console", action="store_true", help="print the console log at the end")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    reasons = missing_requirements()
    if reasons:
        print("run_in_vm: cannot boot a VM: " + "; ".join(reasons), file=sys.stderr)
        return 125
    started = time.monotonic()
    code, _output, console = run(command, timeout=args.timeout, memory=args.memory,
                                 cpus=args.cpus, stream=sys.stdout)
    if args.console or code in (124, 125):
        print("--- console ---\n" + re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", console), file=sys.stderr)
    print(f"run_in_vm: exit code {code} after {time.monotonic() - started:.1f} s", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
