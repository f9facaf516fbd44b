"""Table-driven CLI test: every case of the bad-input corpus (benchmarks/bad_inputs.py) ends in one clear line.

For each command of the corpus (classify, info, report, doctor, lammps-phase-train): exit status 2, exactly
one stderr line starting with `lammps-phase: error:` that names the problem, no traceback, no pre-existing
file modified or deleted and nothing left behind. A training config that got past every check would start
the heating runs: the corpus replaces that stage by a tripwire, which counts as a failure here.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from conftest import load_benchmark

bad_inputs = load_benchmark("bad_inputs.py", "bad_inputs")

CASES = bad_inputs.corpus()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad_inputs")
    bad_inputs.build_workspace(root)
    return root


def test_the_corpus_covers_every_entry_point():
    assert len(CASES) >= 80
    kinds = Counter(case.kind for case in CASES)
    assert {"classify input", "classify options", "classify output", "info", "report", "doctor", "train config",
            "train output"} <= set(kinds)
    assert all(n >= 3 for n in kinds.values()), kinds
    assert len({(c.kind, c.name) for c in CASES}) == len(CASES), "case names must be unique"


@pytest.mark.parametrize("case", CASES, ids=[f"{c.kind}: {c.name}" for c in CASES])
def test_bad_input_gives_one_clear_line_and_loses_nothing(case, workspace):
    outcome = bad_inputs.run_case(case, workspace)
    assert not outcome.traceback, outcome.stderr[-3000:]
    assert not outcome.changed, f"pre-existing files modified or deleted: {outcome.changed}"
    assert not outcome.left, f"files left behind by a failed run: {outcome.left}"
    assert outcome.status == 2, (outcome.status, outcome.stderr)
    lines = outcome.error_lines
    assert len(lines) == 1 and outcome.stderr.strip() == lines[0], outcome.stderr  # nothing else on stderr
    assert case.expect.lower() in lines[0].lower(), f"the error line does not name {case.expect!r}: {lines[0]}"


def test_the_checks_can_fail(workspace):
    """The same runner sees a successful run as 'not an error' and its new file as left behind."""
    good = bad_inputs.Case("control", "a valid classify", ["classify", "good.dump", "--model", "model.pt", "--types",
                                                            "Si O", "-o", "fresh.dump", "-q"])
    outcome = bad_inputs.run_case(good, workspace)
    assert outcome.status == 0 and outcome.left == ["fresh.dump"] and outcome.verdict == "lost files"
    overwrite = bad_inputs.Case("control", "a valid classify onto an existing file",
                                ["classify", "good.dump", "--model", "model.pt", "--types", "Si O", "-o",
                                 "existing_out.dump", "-q"])
    before = (workspace / "existing_out.dump").read_bytes()
    outcome = bad_inputs.run_case(overwrite, workspace)
    assert outcome.changed == ["existing_out.dump"]  # a successful run replaces its output, as asked
    (workspace / "existing_out.dump").write_bytes(before)


# options of other programs that our messages and comments may name (pip, mpirun, venv)
OTHER_PROGRAMS = {"--system-site-packages", "--no-binary", "--index-url", "--bind-to", "--allow-run-as-root",
                  "--oversubscribe"}


def _our_options() -> set[str]:
    import argparse

    from lammps_phase.cli import build_parser, build_train_parser

    options: set[str] = set()
    parsers = [build_parser(), build_train_parser()]
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            options.update(o for o in action.option_strings if o.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    return options


def test_every_option_a_message_advises_exists():
    """Messages may only advise options that exist (the issue found --bin-width and weighting='exact')."""
    import ast
    import re

    package = Path(__file__).resolve().parents[1] / "lammps_phase"
    advised: dict[str, str] = {}
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for option in re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", node.value):
                    advised.setdefault(option, source.name)
    assert "--types" in advised and "--bin-width" in advised  # the scan sees the messages
    missing = {o: f for o, f in advised.items() if o not in _our_options() | OTHER_PROGRAMS}
    assert not missing, f"messages advise options that do not exist: {missing}"
