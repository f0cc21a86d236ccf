"""Test-only helpers that build IR graphs by hand, concisely, with correct `deps`.

    g = GraphFactory("judge_pipeline")
    q = g.input("question")
    a = g.call("gen_a", q, line=10)
    b = g.call("gen_b", q, line=11)
    g.call("judge", fstring("A: ", a, " B: ", b), line=12, kw={"k": 3})
    graph = g.graph()

Plain Python values given as arguments become CONST values.  The scenario
functions at the bottom are the graphs the analysis, printing, check and
report tests share.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hypothesis import strategies as st

from xcs_bc.ir import MISSING, ComputationGraph, ExprKind, Operation, OpType, PathStep, Site, Source, ValueRef

FILE = "/home/dev/app/pipeline.py"


def ref(value: object) -> ValueRef:
    """`value` itself if it is a ValueRef, else a CONST of it."""
    return value if isinstance(value, ValueRef) else const(value)


def const(value: object) -> ValueRef:
    return ValueRef(Source.CONST, value=value)


def glob(name: str) -> ValueRef:
    return ValueRef(Source.GLOBAL, name=name)


def cell(name: str) -> ValueRef:
    return ValueRef(Source.CELL, name=name)


def expr(kind: ExprKind | str, *operands: object) -> ValueRef:
    """A pure expression of `operands` (`kind` as the SSA text spells it: "+", "list"); it depends on
    whatever they depend on."""
    refs = tuple(ref(operand) for operand in operands)
    deps = frozenset().union(*(operand.deps for operand in refs))
    return ValueRef(Source.EXPR, operands=refs, deps=deps, kind=ExprKind(kind))


def fstring(*parts: object) -> ValueRef:
    return expr("fstring", *parts)


def step(base: ValueRef, kind: str, key: object) -> ValueRef:
    """`base` with one more path step, same provenance and deps."""
    return ValueRef(
        base.source,
        name=base.name,
        path=(*base.path, PathStep(kind, key)),
        operands=base.operands,
        op=base.op,
        deps=base.deps,
        value=base.value,
        kind=base.kind,
    )


def it(base: ValueRef, index: int) -> ValueRef:
    """The `index`-th element iterated from `base` (`for doc in docs`)."""
    return step(base, "iter", index)


def item(base: ValueRef, key: object) -> ValueRef:
    return step(base, "item", key)


def attr(base: ValueRef, name: str) -> ValueRef:
    return step(base, "attr", name)


class GraphFactory:
    """Adds operations in program order, giving each the next id and an OUTPUT value."""

    def __init__(self, name: str = "graph", file: str = FILE) -> None:
        self.name = name
        self.file = file
        self.ops: list[Operation] = []
        self.inputs: list[ValueRef] = []

    def input(self, name: str, value: object = MISSING) -> ValueRef:
        value_ref = ValueRef(Source.INPUT, name=name, value=value)
        self.inputs.append(value_ref)
        return value_ref

    def call(
        self,
        name: str,
        *args: object,
        line: int,
        kw: Mapping[str, object] | None = None,
        callee: ValueRef | None = None,
        control: Iterable[ValueRef] = (),
        duration: float = 0.0,
        offset: int | None = None,
        op_type: OpType = OpType.CALL,
        **metadata: Any,
    ) -> ValueRef:
        """Add a call of `name` at `line` (offset `line * 10` unless given); return its output."""
        op_id = len(self.ops)
        kw = kw or {}
        inputs = (callee or glob(name), *(ref(arg) for arg in args), *(ref(v) for v in kw.values()))
        output = ValueRef(Source.OUTPUT, op=op_id, deps=frozenset({op_id}))
        site = Site(self.file, line, "run", line * 10 if offset is None else offset)
        self.ops.append(
            Operation(
                id=op_id,
                op_type=op_type,
                name=name,
                site=site,
                inputs=inputs,
                outputs=(output,),
                kwnames=tuple(kw),
                control=tuple(control),
                metadata={"duration": duration, **metadata},
            )
        )
        return output

    def unknown(self) -> ValueRef:
        """A value of unknown provenance here: it depends on every operation so far."""
        count = len(self.ops)
        return ValueRef(Source.UNKNOWN, op=count, deps=frozenset(range(count)))

    def graph(self, outputs: Iterable[ValueRef] = (), **metadata: Any) -> ComputationGraph:
        return ComputationGraph(
            operations=list(self.ops),
            inputs=tuple(self.inputs),
            outputs=tuple(outputs),
            metadata={"name": self.name, **metadata},
        )


# --- shared scenarios ------------------------------------------------------

MODELS = ("ask_gpt", "ask_claude", "ask_gemini", "ask_llama", "ask_mistral")


def ensemble_graph(duration: float = 0.0) -> ComputationGraph:
    """Five models on one prompt (lines 10-14), then a vote over their answers (line 15)."""
    g = GraphFactory("ensemble")
    prompt = g.input("prompt")
    answers = [
        g.call(model, prompt, line=10 + index, kw={"temperature": 0.0}, duration=duration)
        for index, model in enumerate(MODELS)
    ]
    g.call("vote", expr("list", *answers), line=15, duration=duration)
    return g.graph()


def map_graph(count: int = 8, duration: float = 0.0) -> ComputationGraph:
    """`[summarize(doc) for doc in docs]` at line 14."""
    g = GraphFactory("summaries")
    docs = g.input("docs")
    outs = [g.call("summarize", it(docs, index), line=14, duration=duration) for index in range(count)]
    return g.graph(outputs=[expr("list", *outs)])


def judge_graph(durations: tuple[float, float, float] = (0.0, 0.0, 0.0), **metadata: Any) -> ComputationGraph:
    """Two candidates for one question, then a judge over them through an f-string."""
    g = GraphFactory("judge_pipeline", file="/home/dev/app/judge.py")
    question = g.input("question")
    a = g.call("gen_a", question, line=10, duration=durations[0])
    b = g.call("gen_b", question, line=11, duration=durations[1])
    verdict = g.call("judge", fstring("A: ", a, " B: ", b), line=12, kw={"k": 3}, duration=durations[2])
    return g.graph(outputs=[verdict], **metadata)


def chain_graph(duration: float = 0.0) -> ComputationGraph:
    """draft -> critique -> revise -> polish: each step needs the one before it."""
    g = GraphFactory("refine")
    topic = g.input("topic")
    draft = g.call("draft", topic, line=3, duration=duration)
    critique = g.call("critique", draft, line=4, duration=duration)
    revised = g.call("revise", draft, attr(critique, "text"), line=5, duration=duration)
    polished = g.call("polish", revised, line=6, duration=duration)
    return g.graph(outputs=[polished])


def two_maps_graph() -> ComputationGraph:
    """Summaries of three docs and captions of three images, then one call combining all six."""
    g = GraphFactory("report")
    docs = g.input("docs")
    images = g.input("self")
    summaries = [g.call("summarize", it(docs, index), line=20) for index in range(3)]
    captions = [
        g.call("caption", item(attr(images, "images"), index), line=21, offset=230) for index in range(3)
    ]
    g.call("combine", expr("list", *summaries), expr("list", *captions), line=22)
    return g.graph()


def control_graph() -> ComputationGraph:
    """`if classify(msg) == "spam": escalate(msg)`, plus an unrelated log call."""
    g = GraphFactory("triage", file="/home/dev/app/app.py")
    msg = g.input("msg")
    label = g.call("classify", msg, line=18)
    g.call("log_event", msg, line=19)
    g.call("escalate", msg, line=20, control=[expr("==", label, "spam")])
    return g.graph()


def unknown_graph() -> ComputationGraph:
    """c's argument has unknown provenance, so it depends on a and b; d comes after and needs nothing."""
    g = GraphFactory("opaque")
    x = g.input("x")
    g.call("a", x, line=1)
    g.call("b", x, line=2)
    g.call("c", g.unknown(), line=3)
    g.call("d", x, line=4)
    return g.graph()


def empty_graph() -> ComputationGraph:
    return ComputationGraph(
        operations=[], metadata={"name": "quiet", "min_call_ms": 1.0, "wall_time": 0.0123}
    )


SCENARIOS = {
    "ensemble": ensemble_graph,
    "map": map_graph,
    "judge": judge_graph,
    "chain": chain_graph,
    "two_maps": two_maps_graph,
    "control": control_graph,
    "unknown": unknown_graph,
    "empty": empty_graph,
}


@st.composite
def random_graphs(draw: st.DrawFn, max_ops: int = 12) -> ComputationGraph:
    """Valid graphs of random shape: each call reads a few earlier outputs, an input, or an unknown."""
    g = GraphFactory("random")
    x = g.input("x")
    outputs: list[ValueRef] = []
    for index in range(draw(st.integers(0, max_ops))):
        chosen = draw(st.lists(st.sampled_from(outputs), max_size=3)) if outputs else []
        args: list[object] = [*chosen] if chosen else [it(x, index)]
        if draw(st.integers(0, 9)) == 0:
            args.append(g.unknown())
        name = draw(st.sampled_from(["f", "g", "h"]))
        line = draw(st.integers(1, 4))
        duration = draw(st.floats(0.0, 2.0, allow_nan=False))
        outputs.append(g.call(name, *args, line=line, duration=duration))
    return g.graph(wall_time=draw(st.floats(0.0, 30.0, allow_nan=False)))
