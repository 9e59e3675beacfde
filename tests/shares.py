"""Real network shares on loopback, each mounted twice: two clients of one server.

A pytest plugin (``pytest_plugins = ["tests.shares"]``).  Every share is served
by a private server process started for the session and mounted by two
independent clients, A and B, each standing for one host.  A lock that holds
across hosts must hold between A and B, through their caches.

``smb_share``
    A private ``smbd`` exporting one directory, mounted twice with
    ``smbnetfs`` (a FUSE client on libsmbclient).  Kind ``smb-smbnetfs``.
``sftp_share``
    A private ``sshd`` (``internal-sftp``), mounted twice with ``sshfs``.
    Kind ``sftp-sshfs``.
``smb_cifs_share``
    The same ``smbd`` mounted twice by the kernel's CIFS client, offered only
    where the kernel has ``cifs``.  Kind ``smb-cifs``.
``share``
    Parametrised over the kinds above (ids ``smb``, ``sftp`` and, where
    offered, ``smb-cifs``): a fresh empty directory for one test, as a
    ``ShareDir`` -- ``.a`` and ``.b`` (the directory through each client),
    ``.server`` (the same directory on the server's disk) and ``.kind``.

The session fixtures yield a ``Share``: ``kind``, ``clients`` (the share's
root through A and through B), ``server_dir`` (the exported directory on
local disk) and ``mount_options`` (for reports).  ``smb_server`` and
``sftp_server`` are the servers on their own.

Both clients of a kind mount with the options a user would typically use,
so tests see the caching a user gets; ``SMBNETFS_OPTIONS``, ``SSHFS_OPTIONS``
and ``CIFS_OPTIONS`` hold them.  An NFS kind would need the kernel's nfsd and
the system-wide export table, which a test session cannot keep private, so
there is none; a kind is a session fixture plus a ``_mount_*`` function
mounting one client, and ``SHARE_FIXTURES`` lists them.

Servers and mounts need root, ``/dev/fuse`` and the tools (Debian packages
``samba``, ``samba-common-bin``, ``smbnetfs``, ``fuse3``, ``openssh-server``,
``openssh-client``, ``sshfs``).  Without them the tests skip, or fail under
``LOCKKIT_REQUIRE_REAL_FS=1`` (see ``tests.mounts.skip_or_fail``).

Nothing outlives the session: teardown unmounts both clients, stops the
server, waits for every process each of them started (``sshfs`` double-forks
its ``ssh``, ``sshd`` and ``smbd`` fork one process per connection) and
deletes the temporary directories.  Every process is started in its own
session with default signal dispositions, and is sent SIGTERM should pytest
die first.  Tests using these fixtures get the ``share`` and ``realfs``
markers.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import fcntl
import functools
import os
import pwd
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Literal, NamedTuple

import pytest

from tests.mounts import (
    _COMMAND_TIMEOUT,
    _EXIT_TIMEOUT,
    _MOUNT_TIMEOUT,
    _describe,
    _log_tail,
    _report,
    _require_fuse_device,
    _require_root,
    _require_tool,
    _run,
    _setup_step,
    _unmount,
    _wait_for_mount,
    mount_at,
    skip_or_fail,
)

__all__ = [
    "CIFS_OPTIONS",
    "SHARE_FIXTURES",
    "SMBNETFS_OPTIONS",
    "SSHFS_OPTIONS",
    "SftpServer",
    "Share",
    "ShareDir",
    "SmbServer",
    "sftp_server",
    "sftp_share",
    "share",
    "smb_cifs_share",
    "smb_server",
    "smb_share",
]

# -- what the clients mount with -----------------------------------------------

# smbnetfs: its defaults, as a user gets them (FUSE 2 attribute and entry
# timeouts of 1 s, smbnetfs's 3 s negative cache).  Each client adds its
# config= and log_file=; use_libsecret=false keeps it off any desktop keyring,
# and its smbnetfs.conf turns off network browsing (there is no network).
SMBNETFS_OPTIONS = "use_libsecret=false"
# sshfs: its defaults, as a user gets them -- attribute, directory and symlink
# caches on, 20 s timeout.  These are ssh options only: log in with the
# session's key (IdentityFile= is added per share) and nothing else (no agent,
# no ~/.ssh/id_*), never prompt, accept the throw-away host key, and keep the
# log for errors.  "-F /dev/null" also keeps ~/.ssh/config and
# /etc/ssh/ssh_config out of it.
SSHFS_OPTIONS = (
    "BatchMode=yes,IdentitiesOnly=yes,StrictHostKeyChecking=no,"
    "UserKnownHostsFile=/dev/null,LogLevel=ERROR"
)
# Kernel CIFS: defaults (cache=strict, actimeo=1) but a fixed dialect, and
# nosharesock so the two mounts get a TCP connection and SMB session each, as
# two hosts would.  credentials= is added per client.
CIFS_OPTIONS = "vers=3.0,nosharesock"

# Samba wants a Unix account behind each SMB user.  The share forces root for
# file access, so any existing account serves; base-passwd guarantees "daemon"
# on Debian, and a test suite should not add accounts to /etc/passwd.
SMB_USER = "daemon"
SMB_SHARE_NAME = "lk"
# libsmbclient ignores a client port setting, so smbd must listen on 445; a
# private address of 127/8 keeps it apart from any other smbd.
SMB_PORT = 445
SMB_ADDRESSES = tuple(f"127.0.0.{host}" for host in range(2, 21))
# Per-address locks, shared by every session of the machine whatever its TMPDIR.
_ADDRESS_LOCK_DIR = Path("/run/lock") if os.path.isdir("/run/lock") else None

_FOLLOW_TIMEOUT = 5.0  # s: for the processes a daemon started to exit after it
_LISTEN_TIMEOUT = 15.0  # s: for a server to listen
# The deepest $TMPDIR smbd's directory may go in: a Unix socket path has at
# most 107 bytes, and smbd's are "/lockkit-smbd-XXXXXXXX" (22) plus
# "/state/lock/msg.sock/" (21) plus a pid of up to 7 digits below it.
_SHORT_PARENT = 107 - 22 - 21 - 7
_SSHD_ATTEMPTS = 3  # another process may take the free port before sshd binds it

_PR_SET_PDEATHSIG = 1
# Loaded now: dlopen() between fork and exec can deadlock on the loader's lock.
_LIBC = ctypes.CDLL(None, use_errno=True)


class Share(NamedTuple):
    """One exported directory, mounted by two clients."""

    kind: str
    clients: tuple[Path, Path]
    server_dir: Path
    mount_options: str


@dataclasses.dataclass(frozen=True)
class ShareDir:
    """One directory on a share: through client A, through client B and on the server."""

    kind: str
    a: Path
    b: Path
    server: Path
    mount_options: str


class SmbServer(NamedTuple):
    """The session's smbd: ``//address/share_name``, exporting ``share_dir``."""

    address: str
    share_name: str
    user: str
    password: str
    share_dir: Path


class SftpServer(NamedTuple):
    """The session's sshd: ``user@address:port`` with ``client_key``, exporting ``export_dir``."""

    address: str
    port: int
    user: str
    client_key: Path
    export_dir: Path


# -- processes -----------------------------------------------------------------


def _child_setup(parent: int) -> None:
    """Run in each started process between fork and exec.

    Ignored signals and the signal mask survive exec: pytest started under
    ``nohup``, or by a runner that ignores SIGTERM, would hand them on, and
    libfuse only installs its SIGTERM handler where the disposition is the
    default.  So every disposition is reset and nothing stays blocked.
    PDEATHSIG then stops the process (FUSE clients unmount on SIGTERM) if
    pytest dies without its teardown.
    """
    for signum in signal.valid_signals():
        if signum not in {signal.SIGKILL, signal.SIGSTOP}:
            with contextlib.suppress(OSError, ValueError):  # glibc reserves 32 and 33
                signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # pytest died before prctl()
        os.kill(os.getpid(), signal.SIGTERM)


def _spawn(
    argv: list[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a daemon in the foreground, in a new session, logging to ``log_path``."""
    with log_path.open("ab") as log:
        # A file, not a pipe: nobody reads a pipe during the session, and a
        # full one would block the daemon the moment it logs too much.
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd="/",
            env=env,
            # Out of the terminal's process group: Ctrl-C must reach pytest
            # only, so that teardown still finds the daemon running.  Also
            # the session id marks what the daemon starts (_tracked_tree).
            start_new_session=True,
            preexec_fn=functools.partial(_child_setup, os.getpid()),  # noqa: PLW1509
        )


class _ProcStat(NamedTuple):
    ppid: int
    session: int
    state: str
    start: int  # clock ticks after boot: with the pid, names one process for good


def _proc_stat(pid: int) -> _ProcStat | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold any.
    fields = data[data.rindex(b")") + 2 :].split()
    return _ProcStat(int(fields[1]), int(fields[3]), fields[0].decode(), int(fields[19]))


class _Tracked:
    """A process we did not start ourselves but must see exit: a pidfd, or pid and start time."""

    def __init__(self, pid: int, start: int) -> None:
        self.pid = pid
        self.start = start
        self.fd = -1
        with contextlib.suppress(OSError):  # gone already, or no pidfd_open (Linux < 5.3)
            self.fd = os.pidfd_open(pid)
        if not self.alive():  # the pid may have been reused before pidfd_open
            self.close()

    def alive(self) -> bool:
        stat = _proc_stat(self.pid)
        return stat is not None and stat.start == self.start and stat.state not in {"Z", "X"}

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self.fd >= 0:
                signal.pidfd_send_signal(self.fd, signum)
            elif self.alive():
                os.kill(self.pid, signum)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _tracked_tree(leader: int, known: dict[int, _Tracked], *, running: bool) -> None:
    """Add to ``known`` the live processes ``leader`` (started by ``_spawn``) brought along.

    Those still in its session (the session id is the leader's pid), including
    orphans such as the ``ssh`` that ``sshfs`` double-forks; and, while their
    parents live, descendants that left it with ``setsid()``, such as the
    per-connection processes of ``sshd``.  The leader's own children only
    while it is ``running`` (not yet reaped): a reaped leader's pid may
    already name another process.
    """
    table = {pid: stat for pid in _pids() if (stat := _proc_stat(pid)) is not None}
    members = {pid for pid, stat in table.items() if stat.session == leader}
    if running:
        members.add(leader)
    grown = True
    while grown:
        children = {pid for pid, stat in table.items() if stat.ppid in members} - members
        members |= children
        grown = bool(children)
    for pid in members - {leader}:
        stat = table[pid]
        if pid not in known and stat.state not in {"Z", "X"}:
            tracked = _Tracked(pid, stat.start)
            if tracked.alive():
                known[pid] = tracked


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _wait_gone(processes: list[_Tracked], timeout: float) -> list[_Tracked]:
    """Wait until ``processes`` have exited; return those that have not by ``timeout``.

    A pidfd polls readable when its process exits, so this sleeps only
    without pidfds.
    """
    deadline = time.monotonic() + timeout
    while True:
        alive = [process for process in processes if process.alive()]
        remaining = deadline - time.monotonic()
        if not alive or remaining <= 0:
            return alive
        poller = select.poll()
        for process in alive:
            if process.fd >= 0:
                poller.register(process.fd, select.POLLIN)
        if any(process.fd < 0 for process in alive):
            remaining = min(remaining, 0.05)
        poller.poll(remaining * 1000)


def _stop_tree(
    process: subprocess.Popen[bytes],
    name: str,
    problems: list[str],
    follow_timeout: float = _FOLLOW_TIMEOUT,
) -> bool:
    """Stop ``process`` (SIGTERM, then SIGKILL), reap it, and see everything it started exit.

    Its followers normally exit with it (a daemon ends its workers, a closed
    connection ends ``ssh``); those left after ``follow_timeout`` get SIGTERM,
    then SIGKILL, and a line in ``problems``.  The followers are no children
    of ours, so init reaps them.  Returns whether ``process`` had to be
    signalled.
    """
    known: dict[int, _Tracked] = {}
    signalled = False
    try:
        # Before the leader dies: sshd's children have sessions of their own.
        _tracked_tree(process.pid, known, running=process.poll() is None)
        if process.returncode is None:
            signalled = True
            process.terminate()
            try:
                process.wait(timeout=_EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                problems.append(f"{name} ignored SIGTERM and was killed")
        _tracked_tree(process.pid, known, running=False)  # what it started meanwhile
        left = _wait_gone(list(known.values()), follow_timeout)
        if left:
            problems.append(
                f"{name} left {len(left)} processes running (pids "
                f"{', '.join(str(process.pid) for process in left)}); stopped them"
            )
            for signum in (signal.SIGTERM, signal.SIGKILL):
                for follower in left:
                    follower.signal(signum)
                left = _wait_gone(left, _EXIT_TIMEOUT)
                if not left:
                    break
    finally:
        for tracked in known.values():
            tracked.close()
    return signalled


# -- listening sockets ---------------------------------------------------------


def _listening_inodes(address: str, port: int) -> set[int]:
    """Inodes of the TCP sockets listening on ``address:port``, whoever holds them."""
    # /proc/net/tcp prints the address as the 32-bit word in host order.
    wanted = f"{int.from_bytes(socket.inet_aton(address), sys.byteorder):08X}:{port:04X}"
    inodes = set()
    with open("/proc/net/tcp", encoding="ascii") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[1] == wanted and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(int(fields[9]))
    return inodes


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def _wait_for_listener(
    process: subprocess.Popen[bytes], address: str, port: int, timeout: float = _LISTEN_TIMEOUT
) -> Literal["ready", "shared", "exited", "timeout"]:
    """Wait until ``process`` listens on ``address:port``.

    "shared" if another socket listens there too: smbd sets SO_REUSEPORT, so
    a second smbd on the same address does not fail to bind but silently
    takes half of the connections.  Polled: nothing announces a listen().
    """
    outcome: Literal["ready", "shared", "exited", "timeout"] = "timeout"

    def settled() -> bool:
        nonlocal outcome
        if process.poll() is not None:
            outcome = "exited"
            return True
        listening = _listening_inodes(address, port)
        if listening & _socket_inodes(process.pid):
            outcome = "ready" if len(listening) == 1 else "shared"
            return True
        return False

    _wait_until(settled, timeout)
    return outcome


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` passes (False).

    For conditions nothing announces: a socket starting to listen, an entry
    appearing through a network share's caches.
    """
    deadline = time.monotonic() + timeout
    delay = 0.002
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(*paths: Path) -> str:
    return " | ".join(text for path in paths if (text := _log_tail(path, 2000)))


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read: it holds a password."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


# -- the SMB server ------------------------------------------------------------


def _claim_address(address: str) -> int | None:
    """Lock ``address`` for this session and check that port 445 is free there.

    Returns the locked file's descriptor (held until teardown), or None.
    The lock keeps two test sessions apart -- smbd's SO_REUSEPORT would let
    both listen -- and the trial bind finds any other smbd.
    """
    lock_dir = _ADDRESS_LOCK_DIR or Path(tempfile.gettempdir())
    # Never deleted: removing a lock file races with the next one to open it.
    fd = os.open(
        lock_dir / f"lockkit-smbd-{address}.lock",
        os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW,
        0o600,
    )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with socket.socket() as probe:
            # Sockets in TIME_WAIT do not keep smbd (SO_REUSEADDR) off the port.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((address, SMB_PORT))
    except OSError:
        os.close(fd)
        return None
    return fd


def _short_tempdir(prefix: str) -> Path:
    """A new temporary directory, in ``/tmp`` if ``$TMPDIR`` is deep.

    smbd's messaging sockets are ``BASE/state/lock/msg.sock/PID``, and a Unix
    socket's path has at most 107 bytes: under a deep ``$TMPDIR`` (pytest's
    ``tmp_path``, say) smbd exits with "File name too long".
    """
    parent = tempfile.gettempdir()
    if len(parent) > _SHORT_PARENT:
        parent = "/tmp"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def _smb_conf(base: Path, address: str) -> str:
    state = base / "state"
    # Every directory smbd writes is private, so it neither touches nor meets
    # the system's Samba; no NetBIOS, printing or guest access.
    return f"""\
[global]
  netbios name = LKTEST
  workgroup = WORKGROUP
  interfaces = {address}/8
  bind interfaces only = yes
  smb ports = {SMB_PORT}
  disable netbios = yes
  server role = standalone server
  lock directory = {state}/lock
  state directory = {state}/state
  cache directory = {state}/cache
  private dir = {state}/private
  pid directory = {state}/pid
  ncalrpc dir = {state}/ncalrpc
  log file = {state}/log/smbd.log
  passdb backend = tdbsam:{state}/private/passdb.tdb
  map to guest = never
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
[{SMB_SHARE_NAME}]
  path = {base}/share
  read only = no
  force user = root
  valid users = {SMB_USER}
"""


@pytest.fixture(scope="session")
def smb_server() -> Iterator[SmbServer]:
    """A private ``smbd`` on a loopback address of its own, port 445, for the session.

    The first of 127.0.0.2 .. 127.0.0.20 where no other smbd listens and no
    other session has a lock.  One share, ``lk``, for the user ``daemon``
    with a random password.  smbd runs in the foreground under this process,
    which stops it with SIGTERM.
    """
    _require_root()
    smbd = _require_tool("smbd", "samba")
    smbpasswd = _require_tool("smbpasswd", "samba-common-bin")
    try:
        pwd.getpwnam(SMB_USER)
    except KeyError:
        skip_or_fail(f"no Unix account {SMB_USER!r} to stand behind the SMB user")

    base = _short_tempdir("lockkit-smbd-")
    config = base / "smb.conf"
    password = secrets.token_hex(16)
    problems: list[str] = []
    yielded = False
    try:
        with contextlib.ExitStack() as stack:
            (base / "share").mkdir()
            for name in ("lock", "state", "cache", "private", "pid", "log", "ncalrpc"):
                (base / "state" / name).mkdir(parents=True)
            config.write_text(_smb_conf(base, SMB_ADDRESSES[0]))  # for its passdb
            _add_smb_user(smbpasswd, config, password)
            address = _start_smbd(smbd, base, stack, problems)
            yielded = True
            yield SmbServer(address, SMB_SHARE_NAME, SMB_USER, password, base / "share")
    finally:
        shutil.rmtree(base, ignore_errors=True)  # nothing is mounted in there
        if yielded:  # after a failed setup, the skip/fail reason says it all
            _report(problems)


def _start_smbd(  # noqa: RET503 - ends in skip_or_fail(), which never returns
    smbd: str, base: Path, stack: contextlib.ExitStack, problems: list[str]
) -> str:
    """Start smbd on the first address it can have to itself; return the address.

    Its teardown (stop smbd, then give up the address) goes on ``stack``.
    """
    smbd_log = base / "state" / "log" / "smbd.log"
    for address in SMB_ADDRESSES:
        lock_fd = _claim_address(address)
        if lock_fd is None:
            continue
        with contextlib.ExitStack() as attempt:
            attempt.callback(os.close, lock_fd)
            (base / "smb.conf").write_text(_smb_conf(base, address))
            process = _spawn(
                [smbd, "-s", str(base / "smb.conf"), "--foreground", "--no-process-group"],
                base / "smbd.out",
            )
            attempt.callback(_stop_smbd, process, smbd_log, problems)
            outcome = _wait_for_listener(process, address, SMB_PORT)
            if outcome == "ready":
                stack.push(attempt.pop_all())  # both for the session's teardown
                return address
        if outcome != "shared":  # "shared": another smbd took the address meanwhile
            skip_or_fail(
                f"smbd {outcome} instead of listening on {address}:{SMB_PORT}: "
                f"{_tail(base / 'smbd.out', smbd_log)}"
            )
    skip_or_fail(
        f"port {SMB_PORT} is taken on every address {SMB_ADDRESSES[0]} .. {SMB_ADDRESSES[-1]}"
    )


def _stop_smbd(process: subprocess.Popen[bytes], log_path: Path, problems: list[str]) -> None:
    _stop_tree(process, "smbd", problems)
    if process.returncode not in {0, -signal.SIGTERM}:
        problems.append(f"smbd exited with {process.returncode}: {_tail(log_path)}")


def _add_smb_user(smbpasswd: str, config: Path, password: str) -> None:
    try:
        result = subprocess.run(
            [smbpasswd, "-c", str(config), "-s", "-a", SMB_USER],
            input=f"{password}\n{password}\n",
            capture_output=True,
            text=True,
            timeout=_COMMAND_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        skip_or_fail("smbpasswd timed out")
    if result.returncode != 0:
        skip_or_fail(_describe(result))


# -- the SFTP server -----------------------------------------------------------


def _sshd_config(base: Path, port: int) -> str:
    # Key login as root only, everything in base; sftp served in-process.
    return f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {base}/hostkey
PidFile {base}/sshd.pid
AuthorizedKeysFile {base}/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
"""


@pytest.fixture(scope="session")
def sftp_server() -> Iterator[SftpServer]:
    """A private ``sshd`` on a free port of 127.0.0.1, serving SFTP, for the session.

    Throw-away host and client keys; root logs in with the client key.  sshd
    runs in the foreground (``-D``) under this process, which stops it with
    SIGTERM once the clients have disconnected.
    """
    _require_root()
    sshd = _require_tool("sshd", "openssh-server")
    keygen = _require_tool("ssh-keygen", "openssh-client")

    base = Path(tempfile.mkdtemp(prefix="lockkit-sshd-"))
    config = base / "sshd_config"
    log_path = base / "sshd.log"
    process: subprocess.Popen[bytes] | None = None
    problems: list[str] = []
    yielded = False
    try:
        (base / "export").mkdir()
        for key in ("hostkey", "clientkey"):
            _setup_step([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(base / key)])
        shutil.copyfile(base / "clientkey.pub", base / "authorized_keys")
        # sshd refuses to start without its privilege separation directory,
        # which the system's sshd service would create.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        for _ in range(_SSHD_ATTEMPTS):
            port = _free_port()
            config.write_text(_sshd_config(base, port))
            # An absolute path: sshd re-executes itself for each connection.
            process = _spawn([sshd, "-D", "-f", str(config), "-E", str(log_path)], log_path)
            outcome = _wait_for_listener(process, "127.0.0.1", port)
            if outcome == "ready":
                break
            _stop_tree(process, "sshd", [])
            process = None
            if outcome != "exited" or "Address already in use" not in _tail(log_path):
                skip_or_fail(f"sshd {outcome} instead of listening: {_tail(log_path)}")
        else:
            skip_or_fail(f"sshd found no free port in {_SSHD_ATTEMPTS} attempts")
        yielded = True
        yield SftpServer("127.0.0.1", port, "root", base / "clientkey", base / "export")
    finally:
        if process is not None:
            _stop_tree(process, "sshd", problems)
        shutil.rmtree(base, ignore_errors=True)  # nothing is mounted in there
        if yielded:
            _report(problems)


# -- clients -------------------------------------------------------------------

# A client kind mounts one client in its own empty directory ("workdir"),
# yields the share's root as that client sees it, and unmounts on exit,
# adding to the list what went wrong there.
_MountOne = Callable[[Path, list[str]], AbstractContextManager[Path]]


@contextlib.contextmanager
def _fuse_client(
    argv: list[str],
    *,
    mountpoint: Path,
    root: Path,
    log_path: Path,
    problems: list[str],
    env: dict[str, str] | None = None,
) -> Iterator[Path]:
    """Run the FUSE client ``argv`` (foreground) until it serves ``root``; stop it on exit."""
    name = Path(argv[0]).name
    fusermount = _require_tool("fusermount3", "fuse3")
    process = _spawn(argv, log_path, env)
    try:
        if not _wait_for_mount(mountpoint, _MOUNT_TIMEOUT, process):
            status = process.poll()
            what = (
                f"did not mount within {_MOUNT_TIMEOUT:g} s"
                if status is None
                else f"exited with {status} before mounting"
            )
            skip_or_fail(f"{name} {what}: {_tail(log_path)}")
        # The first access connects (smbnetfs); isdir() is False until then.
        if not _wait_until(lambda: os.path.isdir(root), _MOUNT_TIMEOUT):
            skip_or_fail(f"{name} mounted, but {root} did not appear: {_tail(log_path)}")
        yield root
    finally:
        _stop_fuse_client(
            process,
            name=name,
            mountpoint=mountpoint,
            fusermount=fusermount,
            log_path=log_path,
            problems=problems,
        )


def _stop_fuse_client(
    process: subprocess.Popen[bytes],
    *,
    name: str,
    mountpoint: Path,
    fusermount: str,
    log_path: Path,
    problems: list[str],
) -> None:
    lazy = False
    if mount_at(mountpoint) is not None:
        error = _unmount([fusermount, "-u", str(mountpoint)])
        if error is not None:
            # Something still uses the mount.  Detach it from the tree; the
            # client would keep serving the open files, so it is stopped.
            problems.append(f"{error}; unmounted lazily (is a file still open?)")
            _run([fusermount, "-u", "-z", str(mountpoint)])
            lazy = True
    if not lazy:
        # Unmounting ends the FUSE loop; the client exits by itself.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=_EXIT_TIMEOUT)
    signalled = _stop_tree(process, name, problems)
    if signalled and not lazy:
        problems.append(f"{name} was still running {_EXIT_TIMEOUT:g} s after its unmount")
    elif process.returncode != 0 and not signalled:
        problems.append(f"{name} exited with {process.returncode}: {_tail(log_path)}")
    if mount_at(mountpoint) is not None:  # e.g. it was killed before unmounting
        _run([fusermount, "-u", "-z", str(mountpoint)])


@contextlib.contextmanager
def _mount_smbnetfs(server: SmbServer, workdir: Path, problems: list[str]) -> Iterator[Path]:
    """One smbnetfs client: the share is at ``MOUNTPOINT/ADDRESS/SHARE``."""
    _require_fuse_device()
    smbnetfs = _require_tool("smbnetfs", "smbnetfs")
    # A HOME of its own: libsmbclient reads ~/.smb/smb.conf, smbnetfs keeps
    # state under it, and the two clients must share nothing.
    home = workdir / "home"
    (home / ".smb").mkdir(parents=True)
    _write_private(
        home / ".smb" / "smb.conf",
        "[global]\n  workgroup = WORKGROUP\n  disable netbios = yes\n"
        "  client min protocol = SMB2\n",
    )
    config = home / ".smb" / "smbnetfs.conf"
    _write_private(
        config,
        f'auth "{server.address}" "{server.user}" "{server.password}"\n'
        'smb_query_browsers "false"\nuse_libsecret "false"\n',
    )
    mountpoint = workdir / "mnt"
    mountpoint.mkdir()
    log_path = workdir / "smbnetfs.log"
    options = f"config={config},{SMBNETFS_OPTIONS},log_file={log_path}"
    with _fuse_client(
        [smbnetfs, "-f", str(mountpoint), "-o", options],
        mountpoint=mountpoint,
        root=mountpoint / server.address / server.share_name,
        log_path=log_path,
        problems=problems,
        env={**os.environ, "HOME": str(home)},
    ) as root:
        yield root


@contextlib.contextmanager
def _mount_sshfs(server: SftpServer, workdir: Path, problems: list[str]) -> Iterator[Path]:
    """One sshfs client: the exported directory is the mount's root."""
    _require_fuse_device()
    sshfs = _require_tool("sshfs", "sshfs")
    _require_tool("ssh", "openssh-client")
    mountpoint = workdir / "mnt"
    mountpoint.mkdir()
    # No agent: only the session's key may be offered.
    env = {name: value for name, value in os.environ.items() if name != "SSH_AUTH_SOCK"}
    argv = [
        sshfs,
        "-f",
        "-F",
        "/dev/null",
        "-p",
        str(server.port),
        "-o",
        f"{SSHFS_OPTIONS},IdentityFile={server.client_key}",
        f"{server.user}@{server.address}:{server.export_dir}",
        str(mountpoint),
    ]
    with _fuse_client(
        argv,
        mountpoint=mountpoint,
        root=mountpoint,
        log_path=workdir / "sshfs.log",
        problems=problems,
        env=env,
    ) as root:
        yield root


@contextlib.contextmanager
def _mount_cifs(server: SmbServer, workdir: Path, problems: list[str]) -> Iterator[Path]:
    """One kernel CIFS client (untested where written: no ``cifs`` in that kernel)."""
    mount_cifs = _require_tool("mount.cifs", "cifs-utils")
    umount = _require_tool("umount", "util-linux")
    mountpoint = workdir / "mnt"
    mountpoint.mkdir()
    credentials = workdir / "credentials"  # keeps the password off the command line
    _write_private(credentials, f"username={server.user}\npassword={server.password}\n")
    source = f"//{server.address}/{server.share_name}"
    try:
        _setup_step(
            [mount_cifs, source, str(mountpoint), "-o", f"{CIFS_OPTIONS},credentials={credentials}"]
        )
        yield mountpoint
    finally:
        if mount_at(mountpoint) is not None:
            error = _unmount([umount, str(mountpoint)])
            if error is not None:
                problems.append(f"{error}; unmounting lazily (is a file still open?)")
                _run([umount, "--lazy", str(mountpoint)])


def _mounted_twice(
    kind: str, server_dir: Path, mount_one: _MountOne, options: str
) -> Iterator[Share]:
    """The body of each session share fixture: mount two clients, yield, unmount both."""
    problems: list[str] = []
    yielded = False
    try:
        with contextlib.ExitStack() as stack:
            roots = []
            for client in ("a", "b"):
                # Each client in a directory of its own: if its unmount fails,
                # only that directory stays (never delete through a mount).
                workdir = Path(tempfile.mkdtemp(prefix=f"lockkit-{kind}-{client}-"))
                stack.callback(_remove_workdir, workdir, problems)
                roots.append(stack.enter_context(mount_one(workdir, problems)))
            yielded = True
            yield Share(kind, (roots[0], roots[1]), server_dir, options)
    finally:
        if yielded:  # after a failed setup, the skip/fail reason says it all
            _report(problems)


def _remove_workdir(workdir: Path, problems: list[str]) -> None:
    if mount_at(workdir / "mnt") is None:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        problems.append(f"left {workdir} in place: {workdir / 'mnt'} is still mounted")


@pytest.fixture(scope="session")
def smb_share(smb_server: SmbServer) -> Iterator[Share]:
    """The session's SMB share, mounted twice with smbnetfs (kind ``smb-smbnetfs``)."""
    mount_one = functools.partial(_mount_smbnetfs, smb_server)
    yield from _mounted_twice("smb-smbnetfs", smb_server.share_dir, mount_one, SMBNETFS_OPTIONS)


@pytest.fixture(scope="session")
def sftp_share(sftp_server: SftpServer) -> Iterator[Share]:
    """The session's SFTP export, mounted twice with sshfs (kind ``sftp-sshfs``)."""
    mount_one = functools.partial(_mount_sshfs, sftp_server)
    yield from _mounted_twice("sftp-sshfs", sftp_server.export_dir, mount_one, SSHFS_OPTIONS)


@pytest.fixture(scope="session")
def smb_cifs_share(smb_server: SmbServer) -> Iterator[Share]:
    """The session's SMB share, mounted twice by the kernel (kind ``smb-cifs``)."""
    mount_one = functools.partial(_mount_cifs, smb_server)
    yield from _mounted_twice("smb-cifs", smb_server.share_dir, mount_one, CIFS_OPTIONS)


# -- one directory per test ----------------------------------------------------


def _kernel_has(fstype: str) -> bool:
    """Whether the kernel can mount ``fstype``: registered now, or as a module mount would load."""
    with contextlib.suppress(OSError), open("/proc/filesystems", encoding="ascii") as table:
        if any(line.split()[-1:] == [fstype] for line in table):
            return True
    with contextlib.suppress(OSError):
        modules = Path("/lib/modules", os.uname().release, "modules.dep").read_text()
        return re.search(rf"/{re.escape(fstype)}\.ko", modules) is not None
    return False


# The ``share`` fixture's ids and the session fixture behind each.  The
# kernel's clients only where the kernel has them: everywhere else they could
# only ever skip (or, in CI, fail) for a reason nobody can change.
SHARE_FIXTURES = {
    "smb": "smb_share",
    "sftp": "sftp_share",
    **({"smb-cifs": "smb_cifs_share"} if _kernel_has("cifs") else {}),
}
_SHARE_FIXTURE_NAMES = frozenset({*SHARE_FIXTURES.values(), "share"})


@pytest.fixture(params=list(SHARE_FIXTURES), ids=list(SHARE_FIXTURES))
def share(request: pytest.FixtureRequest) -> Iterator[ShareDir]:
    """A fresh empty directory on each kind of share, for one test.

    Created through client A; the fixture waits until client B sees it too.
    Removed afterwards on the server's disk, not through a client, so that
    a test's open files or a client's stale cache cannot get in the way.
    """
    session_share: Share = request.getfixturevalue(SHARE_FIXTURES[request.param])
    label = re.sub(r"[^\w.-]", "_", request.node.name)[:60]
    a = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=session_share.clients[0]))
    b = session_share.clients[1] / a.name
    server = session_share.server_dir / a.name
    try:
        if not _wait_until(b.is_dir, _MOUNT_TIMEOUT):
            pytest.fail(
                f"{session_share.kind}: {a.name}, made through client A, "
                f"did not appear through client B within {_MOUNT_TIMEOUT:g} s",
                pytrace=False,
            )
        yield ShareDir(session_share.kind, a, b, server, session_share.mount_options)
    finally:
        shutil.rmtree(server)


# -- hooks ---------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``share`` marker (harmless if pyproject declares it too)."""
    config.addinivalue_line(
        "markers", "share: needs the loopback SMB/SFTP servers and their FUSE mounts (root)"
    )


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark tests on a share ``share`` and ``realfs``: the quick runs leave them out."""
    if _SHARE_FIXTURE_NAMES.intersection(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.share)
        item.add_marker(pytest.mark.realfs)
