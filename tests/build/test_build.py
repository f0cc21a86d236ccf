"""Build stage: the dataflow graph the shadow stack machine derives from a real run."""

from __future__ import annotations

import time
from typing import Any

import pytest

import pipelines as P
import xcs_bc as xcs
from xcs_bc import ComputationGraph, Source
from xcs_bc.ir import ExprKind
from xcs_bc.ir.check import check
from xcs_bc.ir.text import format_value
from xcs_bc.testing import FakeLLM


def deps(graph: ComputationGraph) -> dict[int, list[int]]:
    return {op.id: sorted(dep.id for dep in graph.dependencies(op)) for op in graph.operations}


def names(graph: ComputationGraph) -> list[str]:
    return [op.name for op in graph.operations]


def well_formed(graph: ComputationGraph) -> ComputationGraph:
    check(graph)
    assert graph.metadata["resyncs"] == [], "the shadow stack lost track of the real one"
    return graph


def test_ensemble_over_a_list_of_models_is_independent() -> None:
    cap, answers = P.ensemble("q", P.MODELS)
    g = well_formed(cap.graph)
    assert answers == ["m0(q)", "m1(q)", "m2(q)"]
    assert names(g) == ["m0", "m1", "m2"]
    assert deps(g) == {0: [], 1: [], 2: []}
    assert [str(op.args[0].source.value) for op in g.operations] == ["input"] * 3


def test_map_with_for_loop_and_append() -> None:
    cap, _ = P.map_loop(["a", "b", "c"])
    g = well_formed(cap.graph)
    assert deps(g) == {0: [], 1: [], 2: []}
    prompt = g.operations[1].args[0]
    assert prompt.source is Source.EXPR and prompt.kind is ExprKind.FSTRING
    assert prompt.value == "Summarize: b"


def test_comprehensions_and_generator_expressions_track_each_element() -> None:
    cap, (summaries, by_doc, total) = P.comprehensions(["a", "b"])
    g = well_formed(cap.graph)
    assert summaries == ["llm(a)", "llm(b)"] and by_doc == {"a": "judge(a)", "b": "judge(b)"}
    assert total == len("llm(llm(a))") + len("llm(llm(b))")
    # the genexpr's calls each depend on exactly the summary they read
    assert deps(g) == {0: [], 1: [], 2: [], 3: [], 4: [0], 5: [1]}


def test_a_helper_making_several_slow_calls_is_traced_through() -> None:
    cap, _ = P.helper_calls(["a", "b"])
    g = well_formed(cap.graph)
    assert names(g) == ["llm"] * 4
    assert deps(g) == {0: [], 1: [0], 2: [], 3: [2]}
    assert [[caller.function for caller in op.stack] for op in g.operations] == [["summarize_twice"]] * 4
    assert [format_value(op.args[0]) for op in g.operations] == ["docs[0]", "%0", "docs[1]", "%2"]


def test_a_helper_named_a_leaf_is_one_operation() -> None:
    cap, _ = P.helper_calls(["a", "b"], leaves=[P.summarize_twice])
    g = well_formed(cap.graph)
    assert names(g) == ["summarize_twice", "summarize_twice"]
    assert deps(g) == {0: [], 1: []}
    assert [op.stack for op in g.operations] == [(), ()]


def test_judge_over_answers_in_a_tuple_a_list_and_an_fstring() -> None:
    cap, _ = P.judge_containers("q")
    g = well_formed(cap.graph)
    assert deps(g) == {0: [], 1: [], 2: [], 3: [0, 1], 4: [0, 2], 5: [1, 2]}
    assert [op.args[0].kind for op in g.operations[3:]] == [ExprKind.TUPLE, ExprKind.LIST, ExprKind.FSTRING]


def test_pure_chain_has_no_parallel_group() -> None:
    cap, result = P.chain("x")
    g = well_formed(cap.graph)
    assert result == "judge(LLM(LLM(X)!))"
    assert deps(g) == {0: [], 1: [0], 2: [1]}
    assert g.independent_sets() == []


def test_branch_on_a_calls_output_is_a_control_dependency() -> None:
    cap, _ = P.branches("x")
    g = well_formed(cap.graph)
    assert deps(g) == {0: [], 1: [0], 2: []}
    taken = g.operations[1]
    assert taken.args[0].value == "other x"  # its data comes from the input alone ...
    assert {d for c in taken.control for d in c.deps} == {0}  # ... but it runs only because of %0
    assert g.operations[2].control == ()  # after the if/else, control no longer depends on %0


def test_exception_in_the_middle_keeps_the_graph_so_far() -> None:
    failer = P.FakeLLM("failer", P.LATENCY, fail_on="boom")
    with pytest.raises(P.FakeLLM.__module__ and Exception) as info:  # noqa: PT011 - checked below
        with P.xcs.capture(min_call_ms=P.MIN_CALL_MS) as cap:
            first = P.llm("a")
            failer(f"boom {first}")
            P.llm("never")
    assert type(info.value).__name__ == "FakeLLMError"
    g = well_formed(cap.graph)
    assert names(g) == ["llm", "failer"]
    assert g.operations[1].outputs == () and g.operations[1].metadata["exception"] is info.value
    assert deps(g) == {0: [], 1: [0]}
    assert g.metadata["exception"] is info.value


def test_methods_reach_models_through_self() -> None:
    cap, best = P.Pipeline(P.MODELS).run("q")
    g = well_formed(cap.graph)
    assert best == "judge(m0(q) | m1(q) | m2(q))"
    assert names(g) == ["m0", "m1", "m2", "judge"]
    assert deps(g) == {0: [], 1: [], 2: [], 3: [0, 1, 2]}
    assert [caller.function for caller in g.operations[3].stack] == ["Pipeline.pick"]
    cap, best = P.Pipeline(P.MODELS).run("q", leaves=[P.Pipeline.pick])
    assert names(well_formed(cap.graph)) == ["m0", "m1", "m2", "Pipeline.pick"]


def test_closures_and_globals() -> None:
    cap, merged = P.closures_and_globals(["a", "b"])
    g = well_formed(cap.graph)
    assert merged == "judge(Summarize: llm(Q: a)llm(Q: b))"
    assert deps(g) == {0: [], 1: [], 2: [0, 1]}
    # `ask` is traced through: its closure variable and the global it calls are seen inside it
    assert [format_value(op.args[0]) for op in g.operations[:2]] == ["prefix + docs[0]", "prefix + docs[1]"]
    assert g.operations[0].args[0].operands[0].source is Source.CELL
    assert g.operations[0].inputs[0].source is Source.GLOBAL
    template = g.operations[2].args[0].operands[0]
    assert template.source is Source.GLOBAL and template.path[-1].key == "format"
    cap, _ = P.closures_and_globals(["a", "b"], leaves=["pipelines"])  # `ask` is a leaf
    g = well_formed(cap.graph)
    assert deps(g) == {0: [], 1: [], 2: [0, 1]}
    assert g.operations[0].inputs[0].source is Source.INPUT  # `ask` existed before the block


def test_pure_helpers_are_precise_and_unknown_helpers_depend_on_everything() -> None:
    cap, _ = P.helpers_purity([" a ", "b", "c"], leaves=[P.remember])
    g = well_formed(cap.graph)
    # build_prompt only computes from its argument; remember() changes a global list
    assert deps(g) == {0: [], 1: [], 2: [0, 1]}
    assert g.operations[2].args[0].source is Source.UNKNOWN


def test_a_helper_traced_through_is_seen_to_change_no_result() -> None:
    cap, _ = P.helpers_purity([" a ", "b", "c"])
    g = well_formed(cap.graph)
    assert deps(g) == {0: [], 1: [], 2: []}  # remember()'s list holds inputs, never a result


def test_a_change_through_an_alias_is_seen() -> None:
    cap, late = P.aliasing(["a"])
    g = well_formed(cap.graph)
    assert late == "judge(['llm(a)'])"
    assert deps(g) == {0: [], 1: [0]}


def test_attributes_of_records_are_paths_into_inputs() -> None:
    cap, _ = P.records([P.Doc("t1", "b1"), P.Doc("t2", "b2")])
    g = well_formed(cap.graph)
    assert deps(g) == {0: [], 1: [], 2: [0, 1]}
    title = g.operations[1].args[0]
    assert title.source is Source.INPUT and title.name == "docs"
    assert [str(step) for step in title.path] == ["[1]", ".title"]


def test_two_maps_then_combine() -> None:
    cap, _ = P.two_maps_then_combine(["a", "b"])
    g = well_formed(cap.graph)
    assert deps(g) == {0: [], 1: [], 2: [], 3: [], 4: [0, 1, 2, 3]}
    assert [len(group) for group in g.independent_sets()] == [4]


def test_a_slow_call_changes_the_mutable_arguments_it_is_handed() -> None:
    def fill(box: list[str]) -> str:
        box.append("x")
        return P.llm("fill")

    slow_fill = P.FakeLLM("slow", P.LATENCY)
    for leaves, expected in (([fill], {0: [], 1: [0], 2: []}), ([], {0: [], 1: [], 2: []})):
        with P.xcs.capture(min_call_ms=P.MIN_CALL_MS, leaves=leaves) as cap:
            box: list[str] = []
            fill(box)
            slow_fill(str(box))
            other = P.llm("independent")
        g = well_formed(cap.graph)
        assert other == "llm(independent)"
        # as a leaf, `fill` is a slow call that may change `box`; traced through, its change to `box`
        # is seen to hold no result (and its own call of `llm` is the slow one)
        assert deps(g) == expected


def test_loop_over_a_calls_output_is_control_dependent() -> None:
    with P.xcs.capture(min_call_ms=P.MIN_CALL_MS) as cap:
        plan = P.llm("plan").split("(")
        steps = [P.judge(part) for part in plan]
    g = well_formed(cap.graph)
    assert len(steps) == 2
    assert deps(g) == {0: [], 1: [0], 2: [0]}


def test_while_loop_until_a_result_says_stop() -> None:
    with P.xcs.capture(min_call_ms=P.MIN_CALL_MS) as cap:
        answer = "start"
        rounds = 0
        while "llm(llm(" not in answer:
            answer = P.llm(answer)
            rounds += 1
    g = well_formed(cap.graph)
    assert rounds == 2
    assert deps(g) == {0: [], 1: [0]}


def test_try_except_around_a_raising_call_resumes_tracking() -> None:
    failer = P.FakeLLM("failer", P.LATENCY, fail_on="boom")
    with P.xcs.capture(min_call_ms=P.MIN_CALL_MS) as cap:
        try:
            failer("boom")
        except RuntimeError as exc:
            note = str(exc)
        a = P.llm("a")
        P.llm(a + note)
    g = well_formed(cap.graph)
    assert names(g) == ["failer", "llm", "llm"]
    assert g.operations[0].metadata["exception"] is not None
    # after the handler, code no longer depends on the failure; `note` (from the exception) does
    assert deps(g) == {0: [], 1: [], 2: [0, 1]}


def test_unpacking_and_dict_displays() -> None:
    with P.xcs.capture(min_call_ms=P.MIN_CALL_MS) as cap:
        a, _ = P.llm("a"), P.llm("b")
        payload = {"first": a, "second": "const"}
        c = P.judge(payload["first"])
        d = P.judge(payload["second"])
    g = well_formed(cap.graph)
    assert c == "judge(llm(a))" and d == "judge(const)"
    assert deps(g) == {0: [], 1: [], 2: [0], 3: []}


def _traced_loop(docs: list[str]) -> list[str]:
    out = []
    for doc in docs:
        out.append(P.llm(doc))
    notes = Note(out[0])
    return [*out, P.judge(notes.text)]


class Note:
    def __init__(self, text: str) -> None:
        self.text = text


def test_finish_hands_on_a_frozen_trace_of_the_run() -> None:
    import dataclasses
    import sys

    from xcs_bc.build.builder import GraphBuilder
    from xcs_bc.build.trace import Trace
    from xcs_bc.observe.hooks import observe_call

    builder = GraphBuilder(min_call_ms=P.MIN_CALL_MS, name="traced_loop")
    session = observe_call(builder, _traced_loop.__code__, sys._getframe())
    result = _traced_loop(["a", "b"])
    session.stop()
    trace = builder.finish(None)
    assert isinstance(trace, Trace) and result[-1] == "judge(llm(a))"
    assert names(well_formed(trace.graph)) == ["llm", "llm", "judge"]
    assert len(trace.loops) == 1 and trace.loops[0].op_starts == (0, 1)
    assert trace.decisions and all(decision.before <= 2 for decision in trace.decisions)
    assert any(isinstance(value, Note) for value in trace.locals.values())  # `notes`, a replay may read it
    assert trace.retained  # `out`, kept in a local and appended to
    with pytest.raises(dataclasses.FrozenInstanceError):
        trace.graph = trace.graph  # type: ignore[misc]
    with pytest.raises(TypeError):
        trace.locals["x"] = 1  # type: ignore[index]


def _trace_of(fn: Any, *args: Any) -> Any:
    import sys

    from xcs_bc.build.builder import GraphBuilder
    from xcs_bc.observe.hooks import observe_call

    builder = GraphBuilder(min_call_ms=P.MIN_CALL_MS, name=fn.__name__)
    session = observe_call(builder, fn.__code__, sys._getframe())
    fn(*args)
    session.stop()
    return builder.finish(None)


def _branches_and_loops(docs: list[str], flag: bool | None) -> list[str]:
    out = []
    if flag:
        out.append("flag")
    if flag is None:
        out.append("none")
    for doc in docs:
        out.append(P.llm(doc))
    return out


def _leaves_a_loop(docs: list[str]) -> str:
    try:  # before any slow call: no call caused it
        int(docs[0])
    except ValueError:
        pass
    for doc in docs:
        if doc == "b":  # left where a guarded decision says: a guard that docs has more than 1 item
            break
        P.llm(doc)
    for doc in docs:
        if P.llm(doc):  # left on a result's say-so: no guard says where
            break
    shrinking = list(docs)
    for doc in shrinking:
        shrinking.pop()
        P.llm(doc)
    return P.judge("done")


def test_decisions_say_what_kind_they_are_and_events_branch_on_no_value() -> None:
    import sys

    from xcs_bc.build.trace import DecisionKind

    trace = _trace_of(_branches_and_loops, ["a", "b"], None)
    kinds = [(d.kind, d.expected) for d in trace.decisions]
    assert (DecisionKind.TRUTH, False) in kinds
    # `flag is None` jumps on None from 3.11; 3.10 compares and jumps on the truth of the comparison
    assert (DecisionKind.NONE, True) in kinds or sys.version_info < (3, 11)
    assert (DecisionKind.LENGTH, 2) in kinds
    assert all(d.cond is not None and d.site is not None for d in trace.decisions)

    events = [d for d in _trace_of(_leaves_a_loop, ["a", "b", "c"]).decisions if d.cond is None]
    by_kind = {d.kind: d for d in events}
    assert set(by_kind) == {DecisionKind.LEFT_LOOP, DecisionKind.RAISED, DecisionKind.CHANGED}
    assert all(d.expected is True for d in events)
    left = by_kind[DecisionKind.LEFT_LOOP].site  # seen only when the run is over: named by the loop's start
    assert left is not None and left.line == _leaves_a_loop.__code__.co_firstlineno + 9
    (more,) = [d for d in _trace_of(_leaves_a_loop, ["a", "b", "c"]).decisions if d.kind is DecisionKind.MORE]
    assert more.expected == 1 and more.cond is not None and more.cond.name == "docs"
    assert by_kind[DecisionKind.RAISED].site is not None and by_kind[DecisionKind.CHANGED].site is not None


class _Record:
    def __init__(self, text: str) -> None:
        self.text = text


GREETING = "Dear"


def test_pauses_in_glue_that_runs_no_user_code_are_never_slow_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under load any instruction can take milliseconds (a collection, another thread, the tracer):
    only one that may run user code on the values it takes is a slow step of its own.  Here every
    instruction seems to take 5 ms: a global read, string operators, a plain attribute and a
    list's iteration stay glue, and the calls are still planned."""
    import xcs_bc.build.builder as builder_module

    real = time.perf_counter
    ticks = iter(range(10**9))

    class SlowClock:
        @staticmethod
        def perf_counter() -> float:
            return real() + 0.005 * next(ticks)

        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

    llm = FakeLLM("llm", 0.0)
    monkeypatch.setattr(builder_module, "time", SlowClock())

    records = [_Record("a"), _Record("b")]
    with xcs.capture(min_call_ms=1.0) as cap:
        out: list[str] = []
        for record in records:
            out.append(llm(GREETING + " " + record.text + f"{len(out)}"))
    assert [op.name for op in cap.graph.operations] == ["llm", "llm"], cap.graph


def test_planner_facts_travel_in_the_trace_not_in_metadata() -> None:
    import sys

    from xcs_bc.build.builder import GraphBuilder
    from xcs_bc.observe.hooks import observe_call

    builder = GraphBuilder(min_call_ms=P.MIN_CALL_MS, name="traced_loop")
    session = observe_call(builder, _traced_loop.__code__, sys._getframe())
    _traced_loop(["a", "b"])
    session.stop()
    trace = builder.finish(None)
    human = {"start", "end", "duration", "occurrence", "thread", "exception", "args", "outcomes"}
    assert all(set(op.metadata) <= human for op in trace.graph.operations)
    assert set(trace.graph.metadata) <= {"name", "wall_time", "min_call_ms", "resyncs", "exception"}
    assert len(trace.calls) == len(trace.graph.operations)
    assert all(facts.code is _traced_loop.__code__ and not facts.star for facts in trace.calls)
    assert [facts.callee for facts in trace.calls] == [P.llm, P.llm, P.judge]
    assert trace.calls[2].assigned["notes"] == 1 and "notes" not in trace.calls[0].assigned
    assert trace.run.root_code is _traced_loop.__code__ and trace.run.executed
