"""Mutation check of the contract suite: broken backends that `lockkit.testing` must fail.

`ReferenceBackend` is a small, correct, in-memory backend with every capability the
contract tests (``ttl``, ``fencing``, ``shared``). Each mutant subclasses it and breaks
one clause of the `lockkit.spec.Backend` docstrings; `MUTANTS` says which contract
test(s) must catch it and what their failure message must show.
``tests/contract/test_mutants.py`` runs that in CI.

Print the table for the docs with ``python -m tests.contract.mutants --table``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import subprocess
import sys
import textwrap
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import pytest

from lockkit._info import Lease, LockInfo, Owner
from lockkit._value import evolve
from lockkit.spec import Backend, Capabilities, Waiter
from lockkit.testing import BackendContract

if TYPE_CHECKING:
    from collections.abc import Sequence

ROOT = Path(__file__).resolve().parents[2]

PROCESS_TESTS = ("test_exclusive_across_processes", "test_recovers_after_the_holder_is_killed")
"""Contract tests that need a backend other processes can reach; the in-memory
reference cannot run them (`tests/contract/test_contract_can_fail.py` covers them)."""


@attrs.define
class _Holder:
    owner: Owner
    expires: dt.datetime | None


@attrs.define
class _Holding:
    shared: bool
    version: int = 0
    holders: dict[str, _Holder] = attrs.Factory(dict)


def _expiry(ttl: float | None) -> dt.datetime | None:
    return None if ttl is None else dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl)


_NEVER = dt.datetime.max.replace(tzinfo=dt.UTC)


class ReferenceBackend(Backend):
    """A correct backend in one process's memory: the unmutated subject of the check."""

    name: ClassVar[str] = "reference"
    description: ClassVar[str] = "in-memory reference backend of the mutation check"
    capabilities: ClassVar[Capabilities] = Capabilities(ttl=True, fencing=True, shared=True)

    def __init__(self) -> None:
        """Start with no locks."""
        self.cond = threading.Condition()
        self.locks: dict[str, _Holding] = {}
        self.fences: dict[str, int] = {}
        self.versions = itertools.count(1)

    def live(self, name: str) -> _Holding | None:
        """The holding of ``name`` without its expired holders; the caller has ``cond``."""
        holding = self.locks.get(name)
        if holding is None:
            return None
        now = dt.datetime.now(dt.UTC)
        for token, holder in list(holding.holders.items()):
            if holder.expires is not None and holder.expires <= now:
                del holding.holders[token]
        if not holding.holders:
            del self.locks[name]
            self.cond.notify_all()
            return None
        return holding

    def mine(self, lease: Lease) -> _Holding | None:
        """The holding ``lease`` is part of, or ``None`` if it lost it."""
        holding = self.live(lease.name)
        return holding if holding is not None and lease.token in holding.holders else None

    def try_acquire(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        """Take the lock unless someone holds it (readers share with readers)."""
        with self.cond:
            holding = self.live(name)
            if holding is not None and not (shared and holding.shared):
                return None
            return self.grant(name, owner, ttl, shared=shared, holding=holding)

    def grant(
        self,
        name: str,
        owner: Owner,
        ttl: float | None,
        *,
        shared: bool,
        holding: _Holding | None,
    ) -> Lease:
        """Record ``owner`` as a holder of ``name`` and make its lease."""
        if holding is None:
            holding = self.locks[name] = _Holding(shared=shared)
        fence = self.fences[name] = self.fences.get(name, 0) + 1
        expires = _expiry(ttl)
        holding.holders[owner.token] = _Holder(owner, expires)
        holding.version = next(self.versions)
        return Lease(
            name,
            self.name,
            owner,
            expires=expires,
            fencing_token=fence,
            identity=(holding.version,),
            ttl=ttl,
        )

    def release(self, lease: Lease) -> bool:
        """Remove this lease's holder; ``False`` when it no longer holds."""
        with self.cond:
            holding = self.mine(lease)
            if holding is None:
                return False
            self.drop(lease.name, holding, lease.token)
            return True

    def drop(self, name: str, holding: _Holding, token: str) -> None:
        """Remove one holder of ``name``, the lock when it was the last, and wake waiters."""
        del holding.holders[token]
        holding.version = next(self.versions)
        if not holding.holders:
            del self.locks[name]
        self.cond.notify_all()

    def refresh(self, lease: Lease, ttl: float) -> bool:
        """Move this holder's expiry to ``ttl`` from now; a new version of the lock."""
        with self.cond:
            holding = self.mine(lease)
            if holding is None:
                return False
            holding.holders[lease.token].expires = _expiry(ttl)
            holding.version = next(self.versions)
            return True

    def inspect(self, name: str) -> LockInfo | None:
        """The holder (for readers, the one that lasts longest), or ``None`` when free."""
        with self.cond:
            holding = self.live(name)
            return None if holding is None else self.info(name, holding)

    def info(self, name: str, holding: _Holding) -> LockInfo:
        """Describe ``holding`` as `inspect` reports it."""
        holder = max(holding.holders.values(), key=lambda h: h.expires or _NEVER)
        created = holder.owner.created
        return LockInfo(
            name,
            self.name,
            holder.owner,
            expires=holder.expires,
            fencing_token=self.fences.get(name),
            identity=(holding.version,),
            age=None if created is None else (dt.datetime.now(dt.UTC) - created).total_seconds(),
            shared=holding.shared,
        )

    def break_lock(self, name: str, expected: LockInfo) -> bool:
        """Remove the lock if it is still the very version ``expected`` describes."""
        with self.cond:
            holding = self.live(name)
            if holding is None or expected.owner is None:
                return False
            if expected.identity != (holding.version,):
                return False
            if expected.owner.token not in holding.holders:
                return False
            del self.locks[name]
            self.cond.notify_all()
            return True

    def waiter(self, name: str) -> Waiter:
        """A waiter woken by any release of this backend (spec v2)."""
        return _ReleaseWaiter(self.cond, name)


class _ReleaseWaiter(Waiter):
    """Sleeps until some lock is released, at most 50 ms (then the core looks again)."""

    def __init__(self, cond: threading.Condition, name: str) -> None:
        super().__init__(name)
        self.cond = cond

    def wait(self, deadline: float) -> bool:
        with self.cond:
            remaining = deadline - time.monotonic()
            if remaining > 0:
                self.cond.wait(min(remaining, 0.05))
        return False


# -- the mutants: one broken clause each ----------------------------------------------


class GrantsWhenBusy(ReferenceBackend):
    """try_acquire hands out the lock even while someone holds it."""

    def try_acquire(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        """Grant every attempt, replacing the holder."""
        with self.cond:
            return self.grant(name, owner, ttl, shared=shared, holding=None)


class BlocksWhenBusy(ReferenceBackend):
    """try_acquire waits a second on a busy lock instead of returning at once."""

    def try_acquire(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        """Sleep 1 s before reporting a busy lock."""
        lease = super().try_acquire(name, owner, ttl, shared=shared)
        if lease is None:
            time.sleep(1.0)  # the sabotage: a blocking attempt
        return lease


class ReleasesAnyone(ReferenceBackend):
    """release removes whoever holds the lock, whatever the lease."""

    def release(self, lease: Lease) -> bool:
        """Delete the lock if anyone holds it."""
        with self.cond:
            if self.live(lease.name) is None:
                return False
            del self.locks[lease.name]
            self.cond.notify_all()
            return True


class ReleasesByPid(ReferenceBackend):
    """release trusts the holder's pid instead of the lease's token."""

    def release(self, lease: Lease) -> bool:
        """Remove a holder of the same pid."""
        with self.cond:
            holding = self.live(lease.name)
            if holding is None:
                return False
            for token, holder in list(holding.holders.items()):
                if holder.owner.pid == lease.owner.pid:
                    self.drop(lease.name, holding, token)
                    return True
            return False


class ReleaseAlwaysTrue(ReferenceBackend):
    """release answers True for a lease that no longer holds the lock."""

    def release(self, lease: Lease) -> bool:
        """Release if held; claim success either way."""
        super().release(lease)
        return True


class ReleaseKeepsLock(ReferenceBackend):
    """release answers True but leaves the lock held."""

    def release(self, lease: Lease) -> bool:
        """Check the lease, then forget to remove it."""
        with self.cond:
            return self.mine(lease) is not None


class InspectWithoutToken(ReferenceBackend):
    """inspect reports the holder without its token."""

    def info(self, name: str, holding: _Holding) -> LockInfo:
        """The reference's report with the owner's token blanked."""
        info = super().info(name, holding)
        owner = None if info.owner is None else evolve(info.owner, token="")
        return evolve(info, owner=owner)


class InspectAfterRelease(ReferenceBackend):
    """inspect keeps reporting the last holder after the lock was released."""

    def __init__(self) -> None:
        """Remember the last report per lock."""
        super().__init__()
        self.last: dict[str, LockInfo] = {}

    def inspect(self, name: str) -> LockInfo | None:
        """The current holder, else the last one seen."""
        info = super().inspect(name)
        if info is None:
            return self.last.get(name)
        self.last[name] = info
        return info


class InspectWithoutExpiry(ReferenceBackend):
    """inspect leaves out the expiry of a lock taken with a ttl."""

    def info(self, name: str, holding: _Holding) -> LockInfo:
        """The reference's report without ``expires``."""
        return evolve(super().info(name, holding), expires=None)


class BreaksAnyone(ReferenceBackend):
    """break_lock removes the lock whoever holds it."""

    def break_lock(self, name: str, expected: LockInfo) -> bool:
        """Delete the lock if it exists."""
        with self.cond:
            if self.live(name) is None:
                return False
            del self.locks[name]
            self.cond.notify_all()
            return True


class BreaksRetaken(ReferenceBackend):
    """break_lock matches the holder by pid and host, so it breaks a lock taken again."""

    def break_lock(self, name: str, expected: LockInfo) -> bool:
        """Delete the lock if a holder runs in the same process as ``expected``'s."""
        with self.cond:
            holding = self.live(name)
            if holding is None or expected.owner is None:
                return False
            same = (expected.owner.pid, expected.owner.host)
            if not any((h.owner.pid, h.owner.host) == same for h in holding.holders.values()):
                return False
            del self.locks[name]
            self.cond.notify_all()
            return True


class BreaksRenewed(ReferenceBackend):
    """break_lock ignores the version: it breaks a lock renewed since it was read."""

    def break_lock(self, name: str, expected: LockInfo) -> bool:
        """Check the token only."""
        with self.cond:
            holding = self.live(name)
            if holding is None or expected.owner is None:
                return False
            if expected.owner.token not in holding.holders:
                return False
            del self.locks[name]
            self.cond.notify_all()
            return True


class RefreshKeepsVersion(ReferenceBackend):
    """refresh extends the expiry but leaves the lock's identity (version) as it was."""

    def refresh(self, lease: Lease, ttl: float) -> bool:
        """The reference's refresh without the version bump."""
        with self.cond:
            holding = self.mine(lease)
            if holding is None:
                return False
            holding.holders[lease.token].expires = _expiry(ttl)
            return True


class RefreshAfterTakeover(ReferenceBackend):
    """refresh succeeds whoever holds the lock now, extending the new holder."""

    def refresh(self, lease: Lease, ttl: float) -> bool:
        """Extend every holder of the lock."""
        with self.cond:
            holding = self.live(lease.name)
            if holding is None:
                return False
            for holder in holding.holders.values():
                holder.expires = _expiry(ttl)
            holding.version = next(self.versions)
            return True


class RefreshDoesNotExtend(ReferenceBackend):
    """refresh answers True and bumps the version but keeps the old expiry."""

    def refresh(self, lease: Lease, ttl: float) -> bool:
        """Everything but the extension."""
        with self.cond:
            holding = self.mine(lease)
            if holding is None:
                return False
            holding.version = next(self.versions)
            return True


class LeaseWithoutTtl(ReferenceBackend):
    """The lease forgets the ttl it was taken with, so the core never renews it."""

    def grant(
        self,
        name: str,
        owner: Owner,
        ttl: float | None,
        *,
        shared: bool,
        holding: _Holding | None,
    ) -> Lease:
        """The reference's lease with ``ttl=None``."""
        lease = super().grant(name, owner, ttl, shared=shared, holding=holding)
        return evolve(lease, ttl=None)


class FencingRepeats(ReferenceBackend):
    """Every acquisition gets fencing token 1."""

    def grant(
        self,
        name: str,
        owner: Owner,
        ttl: float | None,
        *,
        shared: bool,
        holding: _Holding | None,
    ) -> Lease:
        """The reference's lease with a constant fencing token."""
        self.fences[name] = 0
        return super().grant(name, owner, ttl, shared=shared, holding=holding)


class SharedExcludesReaders(ReferenceBackend):
    """A reader is refused while another reader holds the lock."""

    def try_acquire(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        """Every holding is exclusive."""
        with self.cond:
            if self.live(name) is not None:
                return None
            return self.grant(name, owner, ttl, shared=shared, holding=None)


class SharedAdmitsWriter(ReferenceBackend):
    """A writer is granted the lock while readers hold it."""

    def try_acquire(
        self, name: str, owner: Owner, ttl: float | None, *, shared: bool = False
    ) -> Lease | None:
        """Writers only check for other writers."""
        with self.cond:
            holding = self.live(name)
            if holding is not None and not holding.shared:
                return None
            if holding is not None and not shared:
                holding = None  # replaces the readers
            return self.grant(name, owner, ttl, shared=shared, holding=holding)


class NameAcceptsAnything(ReferenceBackend):
    """normalize_name accepts empty names and names with NUL."""

    def normalize_name(self, name: str | os.PathLike[str]) -> str:
        """No validation."""
        return os.fspath(name)


class NameNotCanonical(ReferenceBackend):
    """normalize_name changes its own result: there is no one canonical name."""

    def normalize_name(self, name: str | os.PathLike[str]) -> str:
        """Append a slash each time."""
        return super().normalize_name(name) + "/"


@attrs.frozen
class Mutant:
    """One sabotage of the reference and the contract tests that must catch it.

    Attributes:
        backend: The broken backend class.
        clause: The spec clause it breaks, in words.
        caught_by: Contract test functions that must fail against it.
        message: A regular expression the failure message of each must match: the
            numbers and values that show what went wrong.
    """

    backend: type[ReferenceBackend]
    clause: str
    caught_by: tuple[str, ...]
    message: str

    @property
    def name(self) -> str:
        """The mutant's class name."""
        return self.backend.__name__


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        GrantsWhenBusy,
        "try_acquire returns None when the lock is held by someone else",
        (
            "test_try_acquire_refuses_a_held_lock",
            "test_exclusive_across_threads",
            "test_nonblocking_and_timeout",
        ),
        r"granted|updates lost|DID NOT RAISE",
    ),
    Mutant(
        BlocksWhenBusy,
        "try_acquire makes one attempt and never blocks",
        ("test_try_acquire_never_blocks",),
        r"took 1\.\d{3} s \(limit 0\.5 s\)",
    ),
    Mutant(
        ReleasesAnyone,
        "release never removes a lock that belongs to someone else",
        ("test_release_by_non_owner_is_refused", "test_release_of_a_released_lease_is_refused"),
        r"returned True",
    ),
    Mutant(
        ReleasesByPid,
        "release checks the lease's token, not merely the process",
        ("test_release_by_non_owner_is_refused", "test_release_of_a_released_lease_is_refused"),
        r"token '[0-9a-f]{32}'",
    ),
    Mutant(
        ReleaseAlwaysTrue,
        "release returns False when the lock was already released or taken over",
        ("test_release_of_a_released_lease_is_refused",),
        r"second release of the same lease returned True",
    ),
    Mutant(
        ReleaseKeepsLock,
        "release of a held lease leaves the lock free",
        ("test_release_frees_the_lock",),
        r"inspect after release reports LockInfo\(",
    ),
    Mutant(
        InspectWithoutToken,
        "inspect reports the holder, its token included",
        ("test_inspect_reports_token_expiry_and_fence",),
        r"names token ''; the holder is token '[0-9a-f]{32}'",
    ),
    Mutant(
        InspectAfterRelease,
        "inspect returns None when the lock is free",
        ("test_inspect_names_the_holder",),
        r"inspect after release reports LockInfo\(",
    ),
    Mutant(
        InspectWithoutExpiry,
        "inspect reports the expiry of a lock taken with a ttl",
        ("test_inspect_reports_token_expiry_and_fence", "test_ttl_refresh"),
        r"ttl=30\.0 reports no expiry",
    ),
    Mutant(
        BreaksAnyone,
        "break_lock refuses a holder it was not given",
        ("test_break_lock_only_breaks_the_expected_holder",),
        r"break_lock for a stranger \(token '[0-9a-f]{32}'\) returned True",
    ),
    Mutant(
        BreaksRetaken,
        "break_lock removes nothing once the lock was released and taken again",
        ("test_break_lock_refuses_a_retaken_lock",),
        r"identity \(\d+,\)\) returned True",
    ),
    Mutant(
        BreaksRenewed,
        "break_lock removes nothing once the lock was renewed (another identity)",
        ("test_break_lock_refuses_a_renewed_lock",),
        r"before refresh \(identity \(\d+,\)\) returned True; the renewed lock has identity",
    ),
    Mutant(
        RefreshKeepsVersion,
        "refresh gives the lock a new LockInfo.identity (version)",
        ("test_refresh_changes_the_version", "test_break_lock_refuses_a_renewed_lock"),
        r"identity \(\d+,\) unchanged|returned True",
    ),
    Mutant(
        RefreshAfterTakeover,
        "refresh returns False once the lock was taken over, extending nothing",
        ("test_refresh_after_takeover_is_refused",),
        r"refresh of the broken lease \(token '[0-9a-f]{32}'\) returned True",
    ),
    Mutant(
        RefreshDoesNotExtend,
        "refresh extends the expiry by ttl from now",
        ("test_ttl_refresh",),
        r"moved the expiry from \S+ to \S+, not later",
    ),
    Mutant(
        LeaseWithoutTtl,
        "the lease records the ttl it was taken with (so the core renews it)",
        ("test_ttl_refresh",),
        # The core refuses such a lease itself (spec v2), naming the plugin.
        r"PluginError: backend 'reference' .*its lease has no ttl .*ttl=30 was asked",
    ),
    Mutant(
        FencingRepeats,
        "fencing tokens strictly increase from holder to holder",
        ("test_fencing_tokens_increase",),
        r"\[1, 1, 1, 1, 1\]",
    ),
    Mutant(
        SharedExcludesReaders,
        "shared: readers hold the lock together",
        ("test_shared_leases",),
        r"second reader was refused",
    ),
    Mutant(
        SharedAdmitsWriter,
        "shared: a writer is refused while readers hold the lock",
        ("test_shared_leases",),
        r"writer was granted the lock while two readers held it",
    ),
    Mutant(
        NameAcceptsAnything,
        "normalize_name refuses empty names and names with NUL",
        ("test_bad_names_are_refused",),
        r"the name '(with\\x00nul)?' was accepted",
    ),
    Mutant(
        NameNotCanonical,
        "normalize_name returns a canonical form (normalizing it again changes nothing)",
        ("test_normalize_name_is_canonical",),
        r"normalize_name\('\S+/'\) gave '\S+//'",
    ),
)
"""Every sabotage the contract suite must catch, and by which of its tests."""


# -- running the suite against them -----------------------------------------------------


def contract_class(backend_type: type[Backend], base: type[Any] = BackendContract) -> type[Any]:
    """A contract test class whose backend is a fresh ``backend_type()`` per test."""

    @pytest.fixture
    def contract_backend(self: object) -> Any:
        del self
        return backend_type()

    return type(
        f"Test{backend_type.__name__}",
        (base,),
        {"contract_backend": contract_backend, "__module__": __name__},
    )


def contract_classes(base: type[Any] = BackendContract) -> dict[str, type[Any]]:
    """The reference's test class and every mutant's, keyed by class name."""
    classes = [contract_class(ReferenceBackend, base)]
    classes += [contract_class(mutant.backend, base) for mutant in MUTANTS]
    return {cls.__name__: cls for cls in classes}


@attrs.frozen
class Outcome:
    """How one contract test function did against one backend (over its parameters).

    Attributes:
        passed: Parameters that passed.
        failed: Parameters that failed or errored.
        skipped: Parameters that were skipped.
        messages: The failure messages.
    """

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    messages: tuple[str, ...] = ()


GENERATED = """
from tests.contract.mutants import contract_classes
from {module} import BackendContract

globals().update(contract_classes(BackendContract))
"""


def run(
    directory: Path, *, module: str = "lockkit.testing", mutants: Sequence[Mutant] = MUTANTS
) -> dict[tuple[str, str], Outcome]:
    """Run the reference's full suite and each mutant's target tests in one pytest process.

    ``module`` is where `BackendContract` comes from (another version of the suite, for
    comparisons). Returns outcomes keyed by (backend class name, test function name).
    """
    suite = directory / "test_mutation.py"
    suite.write_text(textwrap.dedent(GENERATED.format(module=module)))
    (directory / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\ntimeout = 120\n")
    report = directory / "junit.xml"
    selected = [f"{suite.name}::TestReferenceBackend"]
    selected += [
        f"{suite.name}::Test{mutant.name}::{test}"
        for mutant in mutants
        for test in mutant.caught_by
    ]
    deselected = [
        arg
        for test in PROCESS_TESTS
        for arg in ("--deselect", f"{suite.name}::TestReferenceBackend::{test}")
    ]
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-c",
            str(directory / "pytest.ini"),
            "--rootdir",
            str(directory),
            f"--junitxml={report}",
            *deselected,
            *selected,
        ],
        cwd=directory,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        check=False,
        timeout=600,
    )
    return _outcomes(report)


def _outcomes(report: Path) -> dict[tuple[str, str], Outcome]:
    outcomes: dict[tuple[str, str], Outcome] = {}
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314 - our own file
        key = (case.get("classname", "").rsplit(".", 1)[-1], case.get("name", "").split("[")[0])
        seen = outcomes.get(key, Outcome())
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        if failure is not None:
            text = f"{failure.get('message', '')}\n{failure.text or ''}"
            seen = attrs.evolve(seen, failed=seen.failed + 1, messages=(*seen.messages, text))
        elif case.find("skipped") is not None:
            seen = attrs.evolve(seen, skipped=seen.skipped + 1)
        else:
            seen = attrs.evolve(seen, passed=seen.passed + 1)
        outcomes[key] = seen
    return outcomes


def table() -> str:
    """The mutants as a markdown table: mutant | clause | caught by."""
    rows = ["| Mutant | Clause it breaks | Caught by |", "|---|---|---|"]
    for mutant in MUTANTS:
        tests = ", ".join(f"`{test}`" for test in mutant.caught_by)
        rows.append(f"| `{mutant.name}` | {mutant.clause} | {tests} |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """``--table`` prints the table; ``--run DIR`` runs the check and prints outcomes."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--table"]:
        sys.stdout.write(table() + "\n")
        return 0
    if args[:1] == ["--run"] and len(args) == 2:
        for (cls, test), outcome in sorted(run(Path(args[1])).items()):
            sys.stdout.write(f"{cls}::{test}: {outcome}\n")
        return 0
    sys.stderr.write("usage: python -m tests.contract.mutants --table | --run DIR\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
