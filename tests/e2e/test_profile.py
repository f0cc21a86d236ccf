"""`python -m xcs_bc profile`: an untouched script (or module) run under capture, then its report.

The scripts are written to a temporary folder and import a helper module next to them, as a
project's scripts do; they make their slow calls with `xcs_bc.testing.FakeLLM`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from xcs_bc.__main__ import main

HELPERS = """\
from xcs_bc.testing import FakeLLM

llm = FakeLLM("llm", 0.03)
judge = FakeLLM("judge", 0.03)


def summarize(doc):
    return llm(f"Summarize: {doc}")


def review(docs):
    summaries = [summarize(doc) for doc in docs]
    return judge("Pick the best: " + " | ".join(summaries))
"""

SCRIPT = """\
import sys

import helpers

if __name__ == "__main__":
    print(helpers.review([arg for arg in sys.argv[1:] if not arg.isdigit()]))
    if sys.argv[-1].isdigit():  # the exit status to end with
        sys.exit(int(sys.argv[-1]))
"""

FAILING = """\
import helpers

helpers.summarize("first")
raise ValueError("the script's own error")
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "helpers.py").write_text(HELPERS)
    (tmp_path / "review.py").write_text(SCRIPT)
    (tmp_path / "failing.py").write_text(FAILING)
    (tmp_path / "reviewer").mkdir()
    (tmp_path / "reviewer" / "__init__.py").write_text("")
    (tmp_path / "reviewer" / "__main__.py").write_text(
        SCRIPT.replace("import helpers", "from . import helpers")
    )
    (tmp_path / "reviewer" / "helpers.py").write_text(HELPERS)
    return tmp_path


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-m", "xcs_bc", "profile", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_script_runs_as_with_python_and_its_slow_calls_are_reported(project: Path) -> None:
    done = run(project, "--graph", "review.py", "a", "b", "c")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("judge(Pick the best: llm(Summarize: a) | llm(Summarize: b) | llm(Summarize: c))\n")
    assert "xcs_bc profile: script review.py ran in" in out and "(exit status 0)" in out
    assert "graph review.py():\n  in review:" in out and "    in summarize:" in out
    assert "parallel %0, %1, %2" in out
    assert "3 calls at helpers.py:8 are independent: llm x3 (%0-%2)" in out
    assert "xcs.jit(helpers.review) could save up to" in out and "(1 call, 4 slow calls inside)" in out
    assert "judge at helpers.py:13 combines 3 independent results" in out


def test_a_module_runs_as_with_python_dash_m(project: Path) -> None:
    done = run(project, "-m", "reviewer", "x", "y")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("judge(Pick the best: llm(Summarize: x) | llm(Summarize: y))\n")
    assert "xcs_bc profile: module reviewer ran in" in done.stdout
    assert "xcs.jit(reviewer.helpers.review) could save up to" in done.stdout


def test_the_scripts_exit_status_is_the_profilers(project: Path) -> None:
    done = run(project, "review.py", "a", "b", "3")
    assert done.returncode == 3
    assert "(exit status 3)" in done.stdout and "2 calls at helpers.py:8 are independent" in done.stdout


def test_a_script_that_raises_prints_its_traceback_and_still_reports(project: Path) -> None:
    done = run(project, "failing.py")
    assert done.returncode == 1
    assert "ValueError: the script's own error" in done.stderr
    assert 'File "failing.py", line 4' in done.stderr.replace(str(project) + os.sep, "")
    assert "profiler.py" not in done.stderr  # the traceback starts at the script, as Python's does
    assert "graph failing.py: 1 slow call" in done.stdout


def test_outputs_to_files(project: Path) -> None:
    done = run(project, "-o", "report.txt", "--svg", "run.svg", "--html", "run.html", "review.py", "a", "b")
    assert done.returncode == 0, done.stderr
    assert "xcs_bc profile" not in done.stdout  # the report went to the file
    assert "2 calls at helpers.py:8 are independent" in (project / "report.txt").read_text()
    svg = ET.fromstring((project / "run.svg").read_text())
    assert svg.tag.endswith("svg") and len(list(svg.iter())) > 10
    page = (project / "run.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "graph review.py" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.py"], "cannot read the script 'missing.py'"),
        (["-m", "no_such_module_here"], "no module named 'no_such_module_here'"),
        (["--min-call-ms", "soon", "review.py"], "min_call_ms must be a number of milliseconds"),
        (["--colour", "review.py"], "unknown profile option '--colour'"),
        ([], "profile needs a script"),
        (["--svg"], "--svg needs a value"),
    ],
)
def test_bad_arguments_are_refused_with_status_2(
    project: Path,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(project)
    assert main(["profile", *args]) == 2
    assert message in capsys.readouterr().err


def test_the_interpreters_state_is_put_back(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    argv, path, main_module = list(sys.argv), list(sys.path), sys.modules["__main__"]
    try:
        assert main(["profile", "--leaves", "helpers", "review.py", "a"]) == 0
    finally:
        sys.modules.pop("helpers", None)
    assert sys.argv == argv and sys.path == path and sys.modules["__main__"] is main_module
