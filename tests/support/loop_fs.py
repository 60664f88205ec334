"""A disk whose power a test can cut: ext4 on a loop device, captured as it was at one instant.

Layout (everything under the test's own directory; nothing of the host is frozen or mounted over):

    host file outer.img ── loop ── "outer" ext4, mounted noatime at <workdir>/outer
                                    └── device.img ── loop ── the disk under test: ext4 (defaults:
                                                              data=ordered, delalloc, commit=5),
                                                              mounted at <workdir>/disk

The disk under test is a block device like any other to the filesystem on it: what that
filesystem has not yet sent to it (dirty page cache, uncommitted journal) is not in device.img.
`cut_power()` takes the device's content at one instant:

1. FIFREEZE on the *outer* filesystem. From that instant every write of the loop driver into
   device.img waits (the loop worker writes it as a file, through `file_start_write`, which a
   frozen filesystem holds back), so device.img stops changing while the inner filesystem, its
   journal thread and the kernel's flusher keep issuing writes that now never arrive. Every write
   the device completed before the instant is in device.img (in the outer page cache or on the
   host disk: both are "the device"); nothing completed after it is. An `fdatasync` the process
   under test started cannot return any more, so no append is acknowledged on data the device
   lacks.
2. SIGKILL of the processes using the disk (the caller's `kill`): they die as they would when the
   power goes; one stuck in fdatasync dies when the freeze ends, without returning to user code.
3. `cp --sparse=always` of the frozen device.img: a consistent copy, since nothing can write it.
4. FITHAW; the old mount is then unmounted (its late writes land on the old image, already copied).

Why not the simpler ways: copying device.img while writes continue (after a SIGKILL the flusher
and the journal thread still write) combines blocks from different moments, a disk no power cut
produces. Measured here (two threads creating, fsyncing and deleting files, 12 captures 0.3 s
apart): 4 of 12 plain copies needed repairs beyond an unclean shutdown's ("Block bitmap
differences", group free counts wrong), 0 of 12 frozen ones. `fsfreeze` of the disk under test
itself would first write back its whole page cache (the opposite of a power cut); `drop_caches`
discards only clean pages, never dirty ones; there is no device-mapper here (dm-flakey,
dm-snapshot) nor nbd/ublk for a device of our own; `losetup --direct-io` changes how the loop
driver writes, not when a copy may be taken.

What the model is: a device that keeps every write it completed (no volatile write cache, or one
with power-loss protection). It drops exactly what a power cut drops from the operating system:
dirty pages and journal transactions not yet written. It does not model a disk whose volatile
cache loses writes it had completed but not yet flushed: here a completed write counts, flush or
not (so a missing fdatasync is caught, a missing cache flush of a write already sent is not).

`recover()` is what the next boot does: `e2fsck -f -y` replays the journal and checks the whole
filesystem. The only repairs accepted are those of a normal unclean shutdown (the superblock's
free block and inode totals, which ext4 does not journal; orphaned inodes); anything else means
the capture produced a disk no power cut could produce, and fails with e2fsck's output.

Needs root, loop devices, ext4, and e2fsprogs, mount and coreutils (`missing_tools()`);
`require(missing_tools())` skips without them, and fails under CI=true (scripts/install --test
provides them).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

#: ioctl numbers of linux/fs.h: _IOWR('X', 119, int) and _IOWR('X', 120, int).
FIFREEZE = 0xC0045877
FITHAW = 0xC0045878
TOOLS = ("losetup", "mkfs.ext4", "e2fsck", "mount", "umount", "cp", "sync")
#: What e2fsck does after an unclean shutdown of a consistent ext4: replay the journal, fix the
#: superblock's free totals (not journaled: the kernel recounts them at mount) and release orphans
#: (files that were open or truncating when the power went).
NORMAL_REPAIRS = re.compile(
    r"\Ajournal replayed\Z|\AFree (blocks|inodes) count wrong \(|\A(Clearing|Truncating) orphaned inode|\AOrphan file"
)
#: Where the tools live, also when the caller's PATH lacks the sbin directories (a non-login shell).
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin", "/bin"])
QUESTION = re.compile(r"\? yes\s*\Z")


class LoopFsError(RuntimeError):
    """A loop device, mount, freeze or e2fsck step failed; the message carries the tool's output."""


def missing_tools() -> str | None:
    """Why no loop-mounted ext4 can be built here, or None when everything is in place."""
    if os.geteuid() != 0:
        return "the power-loss disk needs root (loop devices, mount, FIFREEZE)"
    if not Path("/dev/loop-control").exists():
        return "no /dev/loop-control: this kernel or container offers no loop devices"
    for tool in TOOLS:
        if shutil.which(tool, path=SEARCH_PATH) is None:
            return f"{tool} is not installed (Debian packages e2fsprogs, mount, coreutils)"
    if "ext4" not in Path("/proc/filesystems").read_text():
        return "the kernel does not offer ext4"
    return None


def attempt(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run a tool, whatever its exit code (its output captured)."""
    env = os.environ | {"PATH": SEARCH_PATH}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False, env=env)


def run(*args: str, timeout: float = 60.0) -> str:
    """Run a tool; its combined output, or LoopFsError with that output when it exits non-zero."""
    done = attempt(*args, timeout=timeout)
    if done.returncode != 0:
        raise LoopFsError(f"{' '.join(args)} exited with {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout + done.stderr


def make_ext4(image: Path, size_mib: int) -> None:
    """A sparse image file of `size_mib` MiB holding a fresh ext4 (tables written now: no lazy init later)."""
    with image.open("wb") as file:
        file.truncate(size_mib << 20)
    run("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", str(image))


def copy_image(source: Path, target: Path) -> None:
    run("cp", "--sparse=always", str(source), str(target))


def fsck_repairs(fsck_output: str) -> list[str]:
    """What e2fsck did: "journal replayed", then each problem it fixed (the line before each "...? yes")."""
    lines = fsck_output.splitlines()
    replayed = ["journal replayed"] if any(line.endswith("recovering journal") for line in lines) else []
    return replayed + [lines[i - 1].strip() for i, line in enumerate(lines) if i and QUESTION.search(line)]


class PowerCutDisk:
    """The disk under test (mounted at `mount_point` after `attach()`), its capture and its recovery."""

    def __init__(self, workdir: Path, size_mib: int = 128) -> None:
        self.workdir = workdir
        self.size_mib = size_mib
        self.outer_image = workdir / "outer.img"
        self.outer_mount = workdir / "outer"
        self.device_image = self.outer_mount / "device.img"
        self.mount_point = workdir / "disk"
        self.outer_loop: str | None = None
        self.loop: str | None = None
        self.mounted = False
        self.outer_mounted = False
        self.captures = 0

    def create(self) -> None:
        """Build the outer filesystem and a fresh, empty disk under test on it (not yet attached)."""
        self.outer_mount.mkdir()
        self.mount_point.mkdir()
        # Room for the disk's image however dense it gets, plus ext4's own overhead.
        make_ext4(self.outer_image, self.size_mib * 2 + 64)
        self.outer_loop = run("losetup", "--find", "--show", str(self.outer_image)).strip()
        run("mount", "-t", "ext4", "-o", "noatime", self.outer_loop, str(self.outer_mount))
        self.outer_mounted = True
        make_ext4(self.device_image, self.size_mib)

    def attach(self) -> Path:
        """Loop-attach device.img and mount it (the kernel replays any journal left); the mount point."""
        self.loop = run("losetup", "--find", "--show", str(self.device_image)).strip()
        run("mount", "-t", "ext4", self.loop, str(self.mount_point))
        self.mounted = True
        return self.mount_point

    def sync(self) -> None:
        """syncfs of the disk under test: everything written so far reaches the device."""
        run("sync", "--file-system", str(self.mount_point))

    def cut_power(self, kill: Callable[[], None]) -> Path:
        """Freeze the device, `kill` what runs on it, copy the device as it is: the captured image.

        `kill` must not wait for its processes: one blocked in fdatasync exits only after the thaw.
        """
        self.captures += 1
        captured = self.workdir / f"captured-{self.captures}.img"
        outer = os.open(self.outer_mount, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.ioctl(outer, FIFREEZE, 0)
            try:
                kill()
                copy_image(self.device_image, captured)
            finally:
                fcntl.ioctl(outer, FITHAW, 0)
        finally:
            os.close(outer)
        return captured

    def detach(self) -> None:
        """Unmount the disk under test and free its loop device (after its processes have exited)."""
        if self.mounted:
            run("umount", str(self.mount_point))
            self.mounted = False
        if self.loop is not None:
            run("losetup", "-d", self.loop)
            self.loop = None

    def recover(self, captured: Path) -> list[str]:
        """The next boot: e2fsck replays the journal and checks; the capture becomes the device.

        Returns what e2fsck did (fsck_repairs); LoopFsError if it repaired more than an unclean
        shutdown explains.
        """
        done = attempt("e2fsck", "-f", "-y", str(captured), timeout=120)
        output = done.stdout + done.stderr
        # 0: clean, 1: errors corrected; 2 and above: reboot needed, uncorrected errors, or failure.
        if done.returncode > 1:
            raise LoopFsError(f"e2fsck of the captured disk exited with {done.returncode}:\n{output}")
        repairs = fsck_repairs(output)
        unexpected = [repair for repair in repairs if not NORMAL_REPAIRS.search(repair)]
        if unexpected:
            raise LoopFsError(f"the captured disk needed repairs no power cut explains: {unexpected}\n{output}")
        self.detach()
        copy_image(captured, self.device_image)
        captured.unlink()
        return repairs

    def close(self) -> None:
        """Undo everything, whatever state a failure left (thawed, lazy unmounts, loop devices freed)."""
        if self.outer_mounted:
            outer = os.open(self.outer_mount, os.O_RDONLY | os.O_DIRECTORY)
            with suppress(OSError):  # EINVAL: it was not frozen (cut_power thaws on its own way out)
                fcntl.ioctl(outer, FITHAW, 0)
            os.close(outer)
        for mounted, point in ((self.mounted, self.mount_point), (self.outer_mounted, self.outer_mount)):
            if mounted:
                attempt("umount", "-l", str(point))
        self.mounted = self.outer_mounted = False
        # After a lazy unmount the device may still be busy: `losetup -d` then frees it when released.
        for loop in (self.loop, self.outer_loop):
            if loop is not None:
                attempt("losetup", "-d", loop)
        self.loop = self.outer_loop = None


@contextmanager
def power_cut_disk(workdir: Path, size_mib: int = 128) -> Iterator[PowerCutDisk]:
    """A created PowerCutDisk in `workdir` (not yet attached), closed when the block ends, even on failure."""
    disk = PowerCutDisk(workdir, size_mib)
    try:
        disk.create()
        yield disk
    finally:
        disk.close()
