"""`plan.learn`: telling the calls two traces share apart from those only the later one made.

The behaviour end to end (arms learned, exact replays) is in tests/e2e/test_learned_arms.py."""

from __future__ import annotations

from xcs_bc.ir import ExprKind, Local, PathStep, Source, ValueRef
from xcs_bc.ir.values import const, expr
from xcs_bc.plan.learn import _same_ref


def output(op: int, *path: PathStep) -> ValueRef:
    return ValueRef(Source.OUTPUT, path=path, op=op, deps=frozenset({op}))


def test_results_are_the_same_only_through_the_calls_told_the_same() -> None:
    assert _same_ref(output(0), output(3), {3: 0})
    assert not _same_ref(output(0), output(3), {3: 1})
    assert not _same_ref(output(0), output(3), {})
    prompt = expr(ExprKind.FORMAT, (const("Read "), output(2, PathStep("iter", 1))))
    theirs = expr(ExprKind.FORMAT, (const("Read "), output(5, PathStep("iter", 1))))
    assert _same_ref(prompt, theirs, {5: 2})
    other_item = expr(ExprKind.FORMAT, (const("Read "), output(5, PathStep("iter", 2))))
    assert not _same_ref(prompt, other_item, {5: 2})


def test_constants_are_the_same_only_when_a_callee_could_not_tell_them_apart() -> None:
    assert _same_ref(const("math"), const("math"), {})
    assert not _same_ref(const(1), const(True), {})
    assert not _same_ref(const(0.0), const(-0.0), {})
    assert not _same_ref(const("a"), ValueRef(Source.GLOBAL, name="a", value="a"), {})


def test_values_of_unknown_origin_are_the_same_only_as_one_assignment_of_a_local() -> None:
    mine = ValueRef(Source.UNKNOWN, op=3, local=Local("patch", 1))
    assert _same_ref(mine, ValueRef(Source.UNKNOWN, op=7, local=Local("patch", 1)), {})
    assert not _same_ref(mine, ValueRef(Source.UNKNOWN, op=3, local=Local("patch", 2)), {})
    assert not _same_ref(ValueRef(Source.UNKNOWN, op=3), ValueRef(Source.UNKNOWN, op=3), {})


def test_a_deep_value_is_compared_without_recursion() -> None:
    def accumulated(op: int) -> ValueRef:
        text = const("")
        for _ in range(5000):  # `text = text + llm(d)` over many rounds
            text = expr(ExprKind.ADD, (text, output(op)))
        return text

    assert _same_ref(accumulated(0), accumulated(4), {4: 0})
