"""The SSA text: golden strings, identical on every Python version."""

from __future__ import annotations

import enum

import pytest

from irfactory import (
    GraphFactory,
    attr,
    cell,
    chain_graph,
    const,
    control_graph,
    empty_graph,
    ensemble_graph,
    expr,
    fstring,
    glob,
    it,
    item,
    judge_graph,
    map_graph,
    two_maps_graph,
    unknown_graph,
)
from xcs_bc.ir import ComputationGraph, Operation, OpType, PathStep, Site, Source, ValueRef
from xcs_bc.ir.text import format_graph, format_op, format_value, op_names


def test_judge_over_candidates() -> None:
    assert str(judge_graph()) == (
        "graph judge_pipeline(question):\n"
        "  %0 = call gen_a(question)                 # judge.py:10\n"
        "  %1 = call gen_b(question)                 # judge.py:11\n"
        '  %2 = call judge(f"A: {%0} B: {%1}", k=3)  # judge.py:12\n'
        "  return %2\n"
        "parallel %0, %1"
    )


def test_map_over_docs() -> None:
    assert format_graph(map_graph(4)) == (
        "graph summaries(docs):\n"
        "  %0 = call summarize(docs[0])          # pipeline.py:14\n"
        "  %1 = call summarize(docs[1])          # pipeline.py:14\n"
        "  %2 = call summarize(docs[2])          # pipeline.py:14\n"
        "  %3 = call summarize(docs[3])          # pipeline.py:14\n"
        "  return list(%0, %1, %2, %3)\n"
        "parallel %0, %1, %2, %3"
    )


def test_ensemble_of_five() -> None:
    assert format_graph(ensemble_graph()) == (
        "graph ensemble(prompt):\n"
        "  %0 = call ask_gpt(prompt, temperature=0.0)      # pipeline.py:10\n"
        "  %1 = call ask_claude(prompt, temperature=0.0)   # pipeline.py:11\n"
        "  %2 = call ask_gemini(prompt, temperature=0.0)   # pipeline.py:12\n"
        "  %3 = call ask_llama(prompt, temperature=0.0)    # pipeline.py:13\n"
        "  %4 = call ask_mistral(prompt, temperature=0.0)  # pipeline.py:14\n"
        "  %5 = call vote(list(%0, %1, %2, %3, %4))        # pipeline.py:15\n"
        "parallel %0, %1, %2, %3, %4"
    )


def test_pure_chain_lists_no_group() -> None:
    assert format_graph(chain_graph()) == (
        "graph refine(topic):\n"
        "  %0 = call draft(topic)                # pipeline.py:3\n"
        "  %1 = call critique(%0)                # pipeline.py:4\n"
        "  %2 = call revise(%0, %1.text)         # pipeline.py:5\n"
        "  %3 = call polish(%2)                  # pipeline.py:6\n"
        "  return %3"
    )


def test_two_maps_then_combine() -> None:
    assert format_graph(two_maps_graph()) == (
        "graph report(docs, self):\n"
        "  %0 = call summarize(docs[0])                           # pipeline.py:20\n"
        "  %1 = call summarize(docs[1])                           # pipeline.py:20\n"
        "  %2 = call summarize(docs[2])                           # pipeline.py:20\n"
        "  %3 = call caption(self.images[0])                      # pipeline.py:21\n"
        "  %4 = call caption(self.images[1])                      # pipeline.py:21\n"
        "  %5 = call caption(self.images[2])                      # pipeline.py:21\n"
        "  %6 = call combine(list(%0, %1, %2), list(%3, %4, %5))  # pipeline.py:22\n"
        "parallel %0, %1, %2, %3, %4, %5"
    )


def test_control_dependence() -> None:
    assert format_graph(control_graph()) == (
        "graph triage(msg):\n"
        "  %0 = call classify(msg)                   # app.py:18\n"
        "  %1 = call log_event(msg)                  # app.py:19\n"
        "  %2 = call escalate(msg) if(%0 == 'spam')  # app.py:20\n"
        "parallel %0, %1"
    )


def test_unknown_argument() -> None:
    assert format_graph(unknown_graph()) == (
        "graph opaque(x):\n"
        "  %0 = call a(x)                        # pipeline.py:1\n"
        "  %1 = call b(x)                        # pipeline.py:2\n"
        "  %2 = call c(?)                        # pipeline.py:3\n"
        "  %3 = call d(x)                        # pipeline.py:4\n"
        "parallel %0, %1, %3"
    )


def test_empty_graph() -> None:
    assert format_graph(empty_graph()) == "graph quiet():\n  (no slow calls)"
    assert format_graph(ComputationGraph([])) == "graph graph():\n  (no slow calls)"


def test_exceptions_print_their_type_only() -> None:
    g = GraphFactory("failing")
    x = g.input("x")
    g.call("fetch", x, line=3, exception=TimeoutError("after 30.0 s at 0x7f00"))
    graph = g.graph(exception=RuntimeError("boom at 0x7fff"))
    graph.operations[0] = _without_outputs(graph.operations[0])
    assert format_graph(graph) == (
        "graph failing(x):\n  %0 = call fetch(x) raised TimeoutError  # pipeline.py:3\nraised RuntimeError"
    )
    graph.metadata["exception"] = ValueError  # a type works as well as an instance
    assert format_graph(graph).endswith("\nraised ValueError")


def _without_outputs(op: Operation) -> Operation:
    return Operation(op.id, op.op_type, op.name, op.site, op.inputs, (), op.kwnames, op.control, op.metadata)


def test_durations_and_run_metadata_never_print() -> None:
    quick = judge_graph()
    slow = judge_graph(durations=(1.25, 0.5, 3.0), wall_time=9.5, min_call_ms=1.0)
    for op in slow.operations:
        assert isinstance(op.metadata, dict)
        op.metadata.update(start=123.4, end=456.7, thread=140230, occurrence=2)
    assert format_graph(slow) == format_graph(quick)


def test_implicit_operations_method_callees_and_several_conditions() -> None:
    g = GraphFactory("agent")
    self_ = g.input("self")
    q = g.input("q")
    plan = g.call("Planner.plan", q, line=5, callee=attr(attr(self_, "planner"), "plan"))
    ok = g.call("Checker.ok", plan, line=6, op_type=OpType.IMPLICIT)
    g.call(
        "Client.complete",
        item(plan, "steps"),
        line=8,
        callee=attr(attr(self_, "client"), "complete"),
        control=[ok, expr("not", item(plan, "done"))],
        kw={"max_tokens": 256, "stop": ["\n\n", None]},
    )
    assert format_graph(g.graph()) == (
        "graph agent(self, q):\n"
        "  %0 = call Planner.plan(q)                                                     # pipeline.py:5\n"
        "  %1 = implicit Checker.ok(%0)                                                  # pipeline.py:6\n"
        "  %2 = call Client.complete(%0['steps'], max_tokens=256, stop=['\\n\\n', None]) if(%1, not(%0['done']))"
        "  # pipeline.py:8"
    )


class Color(enum.IntEnum):
    RED = 1


class Text(str):
    pass


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "None"),
        (True, "True"),
        (3, "3"),
        (0.1, "0.1"),
        (float("inf"), "inf"),
        (b"\x00ab", "b'\\x00ab'"),
        ("it's", '"it\'s"'),
        ((1,), "(1,)"),
        ((), "()"),
        ({"a": [1, (2, None)]}, "{'a': [1, (2, None)]}"),
        ("x" * 50, "'" + "x" * 36 + "..."),
        (list(range(100)), "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11..."),
        (object(), "<object>"),
        ({1, 2}, "<set>"),
        (frozenset(), "<frozenset>"),
        ([1, object()], "<list>"),
        ({"k": object()}, "<dict>"),
        (Color.RED, "<Color>"),  # an int subclass: its repr differs across versions
        (Text("a"), "<Text>"),
        (print, "print"),  # a built-in by its name
        (list, "list"),
        (len, "len"),
    ],
)
def test_constants_print_as_plain_data_or_their_type(value: object, text: str) -> None:
    assert format_value(const(value)) == text


def test_self_referencing_constant_prints_cut_short() -> None:
    loop: list[object] = []
    loop.append(loop)
    assert format_value(const(loop)) == "[" * 37 + "..."


def test_values_print_as_small_expressions() -> None:
    g = GraphFactory()
    docs = g.input("docs")
    self_ = g.input("self")
    out = g.call("f", docs, line=1)
    assert format_value(it(docs, 3)) == "docs[3]"
    assert format_value(it(attr(self_, "models"), 1)) == "self.models[1]"
    assert format_value(attr(item(out, 0), "text")) == "%0[0].text"
    assert format_value(item(docs, "k")) == "docs['k']"
    assert format_value(attr(glob("llm"), "complete")) == "llm.complete"
    assert format_value(cell("client")) == "client"
    assert format_value(g.unknown()) == "?"
    assert format_value(expr("+", out, 1)) == "%0 + 1"
    assert format_value(expr("*", expr("+", out, 1), 2)) == "(%0 + 1) * 2"
    assert format_value(item(expr("+", out, docs), 0)) == "(%0 + docs)[0]"
    assert format_value(expr("effect", ", ", expr("list", out, docs))) == "effect(', ', list(%0, docs))"
    assert format_value(expr("tuple", out)) == "tuple(%0)"
    assert format_value(expr("dict", "k", out)) == "dict('k', %0)"
    assert format_value(expr("not in", out, ("a",))) == "%0 not in ('a',)"
    assert format_value(expr("fstring", out, docs)) == "fstring(%0, docs)"
    assert format_value(fstring('say "{', expr("+", out, 1), "}")) == 'f"say \\"{{{%0 + 1}}}"'
    assert format_value(fstring("y" * 50, out)) == 'f"' + "y" * 37 + '...{%0}"'
    assert format_value(ValueRef(Source.OUTPUT, op=4), {4: "%1"}) == "%1"


def test_names_follow_operation_id_order() -> None:
    graph = judge_graph()
    assert op_names(graph) == {0: "%0", 1: "%1", 2: "%2"}
    shuffled = ComputationGraph(list(reversed(graph.operations)))
    assert op_names(shuffled) == {0: "%0", 1: "%1", 2: "%2"}
    assert format_op(graph.operations[2]) == '%2 = call judge(f"A: {%0} B: {%1}", k=3)'


def test_a_broken_graph_still_prints_its_operations() -> None:
    callee = ValueRef(Source.GLOBAL, name="f")
    later = ValueRef(Source.OUTPUT, op=1, deps=frozenset({1}))
    site = Site("/x/y.py", 2, "run", 4)
    ops = [
        Operation(0, OpType.CALL, "f", site, (callee, later), ()),
        Operation(1, OpType.CALL, "f", site, (callee,), ()),
    ]
    assert format_graph(ComputationGraph(ops)) == (
        "graph graph():\n"
        "  %0 = call f(%1)                       # y.py:2\n"
        "  %1 = call f()                         # y.py:2\n"
        "# invalid graph: %0 f at y.py:2 depends on %1, which is not an earlier operation;"
        " run xcs_bc.ir.check.check(graph) on the builder's output"
    )


def test_path_steps_print_through_pathstep_str() -> None:
    ref = ValueRef(
        Source.INPUT, name="rows", path=(PathStep("iter", 2), PathStep("item", "q"), PathStep("attr", "x"))
    )
    assert format_value(ref) == "rows[2]['q'].x"


def test_const_without_an_observed_value_prints_its_name() -> None:
    assert format_value(ValueRef(Source.CONST, name="<exception>")) == "<exception>"
    assert format_value(ValueRef(Source.CONST)) == "MISSING"
