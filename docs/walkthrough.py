"""Walk one example function through every stage of xcs_bc: observe -> build -> analyze -> report.

docs/walkthrough.md pastes this script's output.  Regenerate it from the repository root with

    PYTHONPATH=src python docs/walkthrough.py > walkthrough.txt

(or `.venv/bin/python docs/walkthrough.py` after `pip install -e .`).  Durations change from run to
run; everything else (the graph, the dependencies, the groups, the patterns) does not.
"""

from __future__ import annotations

import inspect
import platform
from collections.abc import Callable, Iterable
from typing import Any

import xcs_bc as xcs
from xcs_bc.analyze import patterns
from xcs_bc.build.codeinfo import code_info
from xcs_bc.ir import Operation, passes
from xcs_bc.ir.text import format_value, op_names
from xcs_bc.ir.values import describe_callee
from xcs_bc.testing import FakeLLM

LATENCY = 0.05  # seconds per fake model call
MIN_CALL_MS = 10.0  # a call that takes at least this long is a slow call: an operation of the graph

llm = FakeLLM("llm", LATENCY)
judge = FakeLLM("judge", LATENCY)
MODELS = [FakeLLM("model_a", LATENCY), FakeLLM("model_b", LATENCY), FakeLLM("model_c", LATENCY)]


# --- the example: a support-ticket triage written as plain code ---------------
# The example functions are untyped on purpose: they stand for legacy code.


def triage(ticket, models):
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        summary = llm(f"Summarize the ticket: {ticket}")
        drafts = []
        for model in models:
            drafts.append(model(f"Draft a reply to: {summary}"))
        best = judge("Pick the best reply:\n" + "\n".join(drafts))
    return cap, best


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))


def show_source() -> int:
    """Print `triage` with line numbers; return the line of the `drafts.append(...)` call."""
    lines, first = inspect.getsourcelines(triage)
    for number, line in enumerate(lines, first):
        print(f"{number:4} | {line.rstrip()}")
    return next(first + i for i, line in enumerate(lines) if "drafts.append(" in line)


def show_bytecode(line: int) -> None:
    """The static description of the instructions of one source line."""
    info = code_info(triage.__code__)
    print(f"code_info(triage.__code__): {len(info.order)} instructions; those of line {line}:\n")
    print(f"  {'offset':>6}  {'opname':<22}{'argval':<14}{'pops':>4}{'pushes':>7}{'depth':>6}")
    for offset in info.order:
        ins = info.instrs[offset]
        if ins.line == line:
            argval = "" if ins.arg is None else repr(ins.argval)
            argval = argval if len(argval) <= 13 else argval[:10] + "..."
            stack = f"{ins.pops:>4}{ins.pushes:>7}{ins.depth!s:>6}"
            print(f"  {ins.offset:>6}  {ins.opname:<22}{argval:<14}{stack}")


def show_events(cap: xcs.capture) -> None:
    print(f"cap.events: {len(cap.events)} calls made by the block's own code\n")
    print(f"  {'site':<20}{'offset':>6}  {'callee':<16}{'duration':>11}")
    for event in cap.events:
        ms = event.duration * 1000
        slow = "  slow" if ms >= MIN_CALL_MS else ""
        name = describe_callee(event.callee)
        print(f"  {event.site!s:<20}{event.site.offset:>6}  {name:<16}{ms:>8.1f} ms{slow}")


def show_inputs(graph: xcs.ComputationGraph, index: int) -> None:
    """The `ValueRef`s one operation reads: provenance, printed form and the operations it needs."""
    names = op_names(graph)
    op = graph.operations[index]
    print(f"graph.operations[{index}] = {op!r}; its inputs (callee first):\n")
    for ref in op.inputs:
        deps = ", ".join(names[dep] for dep in sorted(ref.deps)) or "-"
        print(f"  {ref.source.name:<7} {format_value(ref, names):<40} deps: {deps}")


def listed(ops: Iterable[Operation], names: dict[int, str]) -> str:
    """`{%1 model_a, %2 model_b}`: operations by print name and callee, in id order."""
    return "{" + ", ".join(f"{names[op.id]} {op.name}" for op in sorted(ops, key=lambda op: op.id)) + "}"


def show_dependencies(graph: xcs.ComputationGraph) -> None:
    names = op_names(graph)
    print("graph.dependencies(op):")
    for op in graph.operations:
        print(f"  {names[op.id]} {op.name:<16} needs {listed(graph.dependencies(op), names)}")


def show_analysis(graph: xcs.ComputationGraph) -> None:
    names = op_names(graph)
    show_dependencies(graph)
    print(f"\ngraph.levels(): {graph.levels()}")
    groups = ", ".join(listed(group, names) for group in graph.independent_sets())
    print(f"graph.independent_sets(): [{groups}]")
    path = graph.critical_path()
    steps = " -> ".join(f"{names[op.id]} {op.name}" for op in path.operations)
    print(f"graph.critical_path(): {steps}, {path.seconds * 1000:.1f} ms")
    print(f"passes.speedup_bound(graph): {passes.speedup_bound(graph):.1f}x")
    print("patterns.patterns(graph):")
    for pattern in patterns.patterns(graph):
        print(f"  {pattern.kind:<9}{pattern.description}")


# --- the rules, each on a three-line block ------------------------------------


def summarize_twice(doc):
    """A helper that makes two slow calls."""
    return llm(llm(doc))


def clean(text):
    """A pure helper: it only reads its argument."""
    return text.strip().lower()


SEEN = []


def remember(text):
    """Not pure: it changes a global list."""
    SEEN.append(text)
    return text


def rule_helper(docs):
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        a = summarize_twice(docs[0])
        b = summarize_twice(docs[1])
        judge(a + b)
    return cap


def rule_leaf(docs):
    with xcs.capture(min_call_ms=MIN_CALL_MS, leaves=[summarize_twice]) as cap:
        a = summarize_twice(docs[0])
        b = summarize_twice(docs[1])
        judge(a + b)
    return cap


def rule_unknown(docs):
    with xcs.capture(min_call_ms=MIN_CALL_MS, leaves=[clean, remember]) as cap:
        llm(docs[0])
        llm(clean(docs[1]))
        llm(remember(docs[2]))
    return cap


def rule_mutable_argument(docs):
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        notes = []
        llm(docs[0], scratchpad=notes)
        llm(docs[1])
        judge("\n".join(notes))
    return cap


def main() -> None:
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"Produced by docs/walkthrough.py on {python}.")

    section("0. The example function")
    line = show_source()

    section("1. Static bytecode description (xcs_bc.build.codeinfo)")
    show_bytecode(line)

    section("2. Observe: the calls the block made (cap.events)")
    ticket = "My invoice for March was charged twice."
    cap, best = triage(ticket, MODELS)
    show_events(cap)

    section("3. Build: the SSA graph (print(cap.graph))")
    print(cap.graph)
    print()
    show_inputs(cap.graph, 1)

    section("4. Analyze (xcs_bc.analysis)")
    show_analysis(cap.graph)

    section("5. Report (print(cap.report()))")
    print(cap.report())

    docs = ["  First DOC ", "Second doc", "third doc"]
    rules: list[tuple[str, Callable[..., Any], list[Callable[..., Any]]]] = [
        ("Rule: a helper is traced through, down to its slow calls", rule_helper, [summarize_twice]),
        ("Rule: a leaf is one operation", rule_leaf, []),
        ("Rule: unknown provenance waits for every earlier call", rule_unknown, [clean, remember]),
        ("Rule: a mutable argument is changed by the slow call", rule_mutable_argument, []),
    ]
    for title, rule, helpers in rules:
        section(title)
        for fn in [*helpers, rule]:
            print(inspect.getsource(fn))
        print(f"{rule.__name__}({docs!r}).graph:\n")
        graph = rule(docs).graph
        print(graph)
        show_dependencies(graph)


if __name__ == "__main__":
    main()
