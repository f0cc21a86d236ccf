"""Plan stage: recipes evaluate without running user code; guards say why they fail."""

from __future__ import annotations

import json
import time
import types

import pytest

from xcs_bc.ir import ExprKind, PathStep, Site, Source, ValueRef
from xcs_bc.ir.values import const, expr
from xcs_bc.plan.guards import Guard, GuardKind, MissKind
from xcs_bc.plan.recipes import _passes_retained, never_ahead
from xcs_bc.plan.slices import Env, NotComputable, evaluate, same_value


def env(**args: object) -> Env:
    return Env(args, {"TEMPLATE": "Q: {}", "json": json}, {})


def inp(name: str, *path: PathStep) -> ValueRef:
    return ValueRef(Source.INPUT, name=name, path=path)


def test_paths_constants_fstrings_and_pure_calls() -> None:
    e = env(docs=["a", "b"], q="why")
    assert evaluate(inp("docs", PathStep("iter", 1)), e) == "b"
    fstring = expr(ExprKind.FSTRING, (const("Q: "), expr(ExprKind.FORMAT, (inp("q"),))))
    assert evaluate(fstring, e) == "Q: why"
    template = ValueRef(Source.GLOBAL, name="TEMPLATE", path=(PathStep("attr", "format"),))
    assert evaluate(expr(ExprKind.CALL, (template, inp("q"))), e) == "Q: why"
    joined = expr(
        ExprKind.CALL,
        (
            ValueRef(
                Source.EXPR, kind=ExprKind.CONST, operands=(const(", "),), path=(PathStep("attr", "join"),)
            ),
            inp("docs"),
        ),
    )
    assert evaluate(joined, e) == "a, b"
    dumps = ValueRef(Source.GLOBAL, name="json", path=(PathStep("attr", "dumps"),))
    assert evaluate(expr(ExprKind.CALL, (dumps, inp("docs"))), e) == '["a", "b"]'
    assert evaluate(expr(ExprKind.ADD, (inp("q"), const("!"))), e) == "why!"


def test_nothing_that_could_run_user_code_is_evaluated() -> None:
    ran: list[str] = []

    class Doc:
        @property
        def text(self) -> str:
            ran.append("property")
            return "t"

        def __format__(self, spec: str) -> str:
            ran.append("format")
            return "d"

    e = env(doc=Doc(), unknown=lambda: ran.append("call"))
    with pytest.raises(NotComputable):
        evaluate(inp("doc", PathStep("attr", "text")), e)
    with pytest.raises(NotComputable):
        evaluate(expr(ExprKind.FORMAT, (inp("doc"),)), e)
    with pytest.raises(NotComputable, match="not known to be pure"):
        evaluate(expr(ExprKind.CALL, (inp("unknown"),)), e)
    with pytest.raises(NotComputable):
        evaluate(ValueRef(Source.UNKNOWN, op=0), e)
    with pytest.raises(NotComputable, match="has not returned"):
        evaluate(ValueRef(Source.OUTPUT, op=3), e)
    assert ran == []


def test_a_pure_helper_that_raises_is_not_computable() -> None:
    def first_word(text: str) -> str:
        return text.split()[0]

    e = env(text="")
    with pytest.raises(NotComputable, match="IndexError"):
        evaluate(expr(ExprKind.CALL, (const(first_word), inp("text"))), e)


def test_guards_check_and_explain() -> None:
    docs = inp("docs")
    loop = Guard(GuardKind.LENGTH, docs, 2, "app.py:3")
    assert loop.check(env(docs=["a", "b"])) is None
    miss = loop.check(env(docs=["a"]))
    assert miss is not None and miss.kind is MissKind.GUARD and miss.guard is loop and miss.found == 1
    assert str(miss) == "len(docs) == 2 (at app.py:3), but got 1"
    kind = Guard(GuardKind.TYPE, docs, list)
    miss = kind.check(env(docs=("a",)))
    assert miss is not None and miss.guard is kind and miss.found == "tuple"
    assert str(miss) == "type(docs) is list, but got tuple"
    truth = Guard(GuardKind.TRUTH, expr(ExprKind.IN, (const("x"), inp("q"))), True, "app.py:4")
    assert truth.check(env(q="xyz")) is None
    assert str(truth.check(env(q="abc"))) == "bool('x' in q) is True (at app.py:4), but got False"


def test_a_guard_whose_value_needs_user_code_is_an_uncheckable_miss() -> None:
    class Opaque:
        @property
        def docs(self) -> list[str]:
            raise AssertionError("a guard must not run a property")

    guard = Guard(GuardKind.LENGTH, inp("box", PathStep("attr", "docs")), 2)
    miss = guard.check(env(box=Opaque()))
    assert miss is not None and miss.kind is MissKind.UNCHECKABLE and miss.guard is guard


def test_same_value_runs_no_user_code() -> None:
    class Loud:
        def __eq__(self, other: object) -> bool:
            raise AssertionError("must not be called")

        __hash__ = object.__hash__

    a, b = Loud(), Loud()
    assert same_value(a, a) and not same_value(a, b)
    assert same_value(["x", 1], ["x", 1]) and not same_value(["x"], ("x",))
    method = types.MethodType(len, a)
    assert same_value(method, types.MethodType(len, a))


def test_what_is_never_issued_ahead() -> None:
    import threading

    assert never_ahead(time.sleep) and never_ahead(threading.Event().wait)
    assert not never_ahead(len)
    kept = expr(ExprKind.LIST, (const("a"),))
    retained = {id(kept.operands): kept.operands}
    assert _passes_retained(kept, retained) and _passes_retained(expr(ExprKind.TUPLE, (kept,)), retained)
    assert not _passes_retained(expr(ExprKind.LIST, (const("a"),)), retained)  # built in the call: not kept
    assert not _passes_retained(
        expr(ExprKind.CALL, (const(str), kept)), retained
    )  # str(kept) passes a string


def test_a_refusal_says_its_kind_and_prints_as_its_text() -> None:
    from irfactory import GraphFactory
    from xcs_bc.build.trace import Decision, DecisionKind
    from xcs_bc.plan.planner import make_plan
    from xcs_bc.plan.recipes import RefusalKind

    g = GraphFactory("refusals")
    first = g.call("first", g.input("x"), line=1)
    g.call("second", g.input("x"), line=2, control=(first,))
    g.call("third", g.input("x"), line=3)
    loop = Site("/src/app.py", 4, "refusals", 40)
    left = Decision(DecisionKind.LEFT_LOOP, None, True, 1, loop)  # a loop left by break after `first`
    called = {name: (lambda x: x) for name in ("first", "second", "third")}
    plan = make_plan(g.graph(), [left], Env({"x": "q"}, called, {}))
    refusals = [recipe.refusal for recipe in plan.recipes]
    assert plan.recipes[0].ahead and refusals[0] is None
    assert [r.kind if r else None for r in refusals[1:]] == [
        RefusalKind.UNDER_RESULT_BRANCH,
        RefusalKind.AFTER_UNCHECKABLE_BRANCH,
    ]
    assert str(refusals[2]) == (
        "it comes after a branch no guard can check "
        "(the loop at app.py:4, left by break or return, cannot be checked before the call)"
    )
    assert plan.cutoff == 1 and plan.cutoff_reason.startswith("the loop at app.py:4, left by break or return")
