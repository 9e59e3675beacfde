"""The share fixtures deliver what they promise, and leave nothing behind.

Each kind of share is one server mounted by two clients: what client A
writes, client B and the server's disk both see.  A pytest run using them
ends with nothing mounted, no process of theirs running and no temporary
directory left -- checked from outside, in a pytest run of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.mounts import REQUIRE_REAL_FS_ENV, mount_of, real_fs_required, skip_or_fail
from tests.shares import SHARE_FIXTURES, ShareDir

ROOT = Path(__file__).resolve().parents[2]


def test_what_a_writes_b_and_the_server_read(share: ShareDir) -> None:
    assert os.listdir(share.a) == os.listdir(share.b) == os.listdir(share.server) == []
    assert mount_of(share.a).mount_point != mount_of(share.b).mount_point

    (share.a / "note.txt").write_bytes(b"written through A\n")
    (share.a / "sub").mkdir()

    assert (share.b / "note.txt").read_bytes() == b"written through A\n"
    assert (share.server / "note.txt").read_bytes() == b"written through A\n"
    assert (share.b / "sub").is_dir()
    assert sorted(os.listdir(share.server)) == ["note.txt", "sub"]


def test_share_tests_are_marked(request: pytest.FixtureRequest, share: ShareDir) -> None:
    # The quick nox sessions deselect "realfs": share tests must carry it too.
    assert request.node.get_closest_marker("share") is not None
    assert request.node.get_closest_marker("realfs") is not None


# Runs a command as a "child subreaper": every process the command leaves
# orphaned is reparented to this one instead of init, so after the command
# those still alive are exactly the ones it leaked.  Reports them, then kills
# and reaps them all, so that this test itself leaks nothing.
SUBREAPER = textwrap.dedent(
    """
    import ctypes, json, os, signal, subprocess, sys, time
    PR_SET_CHILD_SUBREAPER = 36
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit(f"prctl: {os.strerror(ctypes.get_errno())}")
    status = subprocess.call(sys.argv[1:])

    def children():
        found = {}
        for name in os.listdir("/proc"):
            try:
                with open(f"/proc/{name}/stat", "rb") as handle:
                    stat = handle.read()
                with open(f"/proc/{name}/cmdline", "rb") as handle:
                    cmdline = handle.read().replace(b"\\0", b" ").decode(errors="replace")
            except (OSError, ValueError):
                continue
            fields = stat[stat.rindex(b")") + 2:].split()
            if int(fields[1]) == os.getpid() and fields[0] != b"Z":
                found[int(name)] = cmdline.strip()
        return found

    leaked = children()
    for pid in leaked:
        os.kill(pid, signal.SIGKILL)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break
    print(json.dumps({"status": status, "leaked": leaked}))
    """
)


@pytest.mark.share
@pytest.mark.realfs
@pytest.mark.slow
def test_a_run_leaves_nothing_behind(tmp_path: Path) -> None:
    import json

    scratch = tmp_path / "tmp"  # the inner run's TMPDIR: all its temporary files
    scratch.mkdir()
    report = tmp_path / "report.xml"
    env = {**os.environ, "TMPDIR": str(scratch)}
    if real_fs_required():
        env[REQUIRE_REAL_FS_ENV] = "1"
    inner = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        f"--junitxml={report}",
        f"{Path(__file__).relative_to(ROOT)}::test_what_a_writes_b_and_the_server_read",
    ]
    before = set(Path("/tmp").glob("lockkit-smbd-*"))  # where smbd goes if TMPDIR is deep
    result = subprocess.run(
        [sys.executable, "-c", SUBREAPER, *inner],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    inner_output = "\n".join(result.stdout.splitlines()[:-1])

    suite = ET.parse(report).getroot().find("testsuite")  # noqa: S314 - pytest just wrote it
    assert suite is not None
    skipped = suite.find("testcase/skipped")
    if skipped is not None:
        skip_or_fail(f"the inner run skipped: {skipped.get('message')}")
    assert outcome["status"] == 0, inner_output
    assert int(suite.get("tests", "0")) == len(SHARE_FIXTURES), inner_output

    assert outcome["leaked"] == {}, "processes outlived the run"
    under_scratch = [
        line
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if str(scratch) in line
    ]
    assert under_scratch == [], "mounts outlived the run"
    # pytest's own temporary directories stay (it keeps the last few runs).
    assert [path.name for path in scratch.iterdir() if path.name.startswith("lockkit-")] == []
    assert set(Path("/tmp").glob("lockkit-smbd-*")) <= before
