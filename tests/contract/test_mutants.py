"""The contract suite catches every sabotage in `tests.contract.mutants`, by the right test.

One pytest process runs the whole suite against the correct in-memory reference (it
must pass) and each mutant's target tests (each must fail, with a message that shows
the values). The table of mutants is printed by ``python -m tests.contract.mutants
--table`` and shown in ``docs/plugins/contract-suite.md``.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from lockkit.testing import BackendContract
from tests.contract.mutants import MUTANTS, PROCESS_TESTS, Mutant, Outcome, run, table

ROOT = Path(__file__).resolve().parents[2]

CONTRACT_TESTS = sorted(
    name
    for name, member in inspect.getmembers(BackendContract, inspect.isfunction)
    if name.startswith("test_")
)

# Contract tests no mutant of the in-memory reference aims at, and why.
UNTARGETED = {
    "test_exclusive_across_processes": "needs processes: test_contract_can_fail.py",
    "test_recovers_after_the_holder_is_killed": "needs processes: a crash of the holder",
    "test_read_write_lock_prefers_writers": "the writer preference is ReadWriteLock's",
    "test_the_plugin_registers_cleanly": "needs an installed plugin: test_contract_can_fail.py",
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Outcome]:
    return run(tmp_path_factory.mktemp("mutation"))


def test_the_reference_passes_the_whole_suite(
    outcomes: dict[tuple[str, str], Outcome],
) -> None:
    expected = [test for test in CONTRACT_TESTS if test not in PROCESS_TESTS]
    seen = {test: outcomes.get(("TestReferenceBackend", test)) for test in expected}
    missing = [test for test, outcome in seen.items() if outcome is None]
    assert missing == [], f"not run against the reference: {missing}"
    bad = {test: o for test, o in seen.items() if o is not None and (o.failed or o.skipped)}
    assert bad == {}, f"the reference failed or skipped: {bad}"


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda mutant: mutant.name)
def test_each_mutant_is_caught_by_its_tests(
    outcomes: dict[tuple[str, str], Outcome], mutant: Mutant
) -> None:
    for test in mutant.caught_by:
        outcome = outcomes.get((f"Test{mutant.name}", test))
        assert outcome is not None, f"{test} did not run against {mutant.name}"
        assert outcome.failed > 0, f"{test} let {mutant.name} pass: {outcome}"
        for message in outcome.messages:
            first = message.splitlines()[0]
            assert re.search(mutant.message, first), (
                f"{test} caught {mutant.name}, but its message {first!r} does not match "
                f"{mutant.message!r}"
            )


def test_every_contract_test_has_a_mutant_or_a_reason() -> None:
    targeted = {test for mutant in MUTANTS for test in mutant.caught_by}
    assert targeted <= set(CONTRACT_TESTS), targeted - set(CONTRACT_TESTS)
    uncovered = set(CONTRACT_TESTS) - targeted - set(UNTARGETED)
    assert uncovered == set(), f"contract tests no mutant fails: {sorted(uncovered)}"


def test_there_are_at_least_15_mutants_with_distinct_clauses() -> None:
    assert len(MUTANTS) >= 15, len(MUTANTS)
    clauses = [mutant.clause for mutant in MUTANTS]
    assert len(set(clauses)) == len(clauses), clauses


def test_the_docs_show_the_current_table() -> None:
    page = (ROOT / "docs" / "plugins" / "contract-suite.md").read_text()
    assert table() in page, "run `python -m tests.contract.mutants --table` and paste it"
