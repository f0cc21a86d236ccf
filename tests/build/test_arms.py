"""`build.arms`: what the arm of a branch the run did not take could do, read from the bytecode."""

from __future__ import annotations

from typing import Any

from xcs_bc.build.arms import Arm, untaken_arm
from xcs_bc.build.codeinfo import code_info

llm: Any = None
helper: Any = None


def first_branch_arms(fn: Any) -> tuple[Arm, Arm]:
    """The two arms of the first conditional jump of `fn`: (the fall-through one, the jumped-to one)."""
    info = code_info(fn.__code__)
    for offset in info.order:
        ins = info.instrs[offset]
        if "JUMP_IF" in ins.opname or "JUMP_FORWARD_IF" in ins.opname:
            until = info.ipdom(offset)
            return untaken_arm(info, ins.next, until), untaken_arm(info, ins.target, until)
    raise AssertionError("no branch")


def assigns(x: str, verdict: str) -> str:
    if "stop" in verdict:
        x = "fallback"
    return x


def clears(hits: list[str], verdict: str) -> list[str]:
    if "stop" in verdict:
        hits.clear()
    return hits


def asks(x: str, verdict: str, xs: list[str]) -> str:
    if "stop" in verdict:
        x = llm(sorted(xs))
    return x


def hands(xs: list[str], verdict: str) -> None:
    if "stop" in verdict:
        helper(xs)


def test_an_arm_that_assigns_a_local_stores_it_and_nothing_else() -> None:
    arm, empty = first_branch_arms(assigns)
    assert arm.stores == {"x"} and not arm.changed and not arm.calls and not arm.acts
    assert not empty  # the other side of the `if` goes straight to where the arms meet


def test_a_method_called_on_a_local_is_a_call_with_that_local_as_its_callee() -> None:
    arm, _ = first_branch_arms(clears)
    assert [call.callee for call in arm.calls] == [("local", "hits", "clear")]
    assert not arm.acts


def test_calls_name_their_callees_and_what_they_are_handed() -> None:
    arm, _ = first_branch_arms(asks)
    assert arm.stores == {"x"}
    callees = {call.callee: call.args for call in arm.calls}
    assert callees == {("global", "sorted", None): {("local", "xs")}, ("global", "llm", None): frozenset()}


def test_a_list_handed_to_a_helper_is_an_argument_of_that_call() -> None:
    arm, _ = first_branch_arms(hands)
    assert [(call.callee, call.args) for call in arm.calls] == [
        (("global", "helper", None), {("local", "xs")})
    ]


def branches_inside(xs: list[str], verdict: str) -> None:
    if "stop" in verdict:
        for x in xs:
            helper(x)


def test_an_arm_with_branches_of_its_own_counts_every_name_it_reads_as_changed() -> None:
    arm, _ = first_branch_arms(branches_inside)
    assert arm.acts
    assert ("local", "xs") in arm.changed and ("global", "helper") in arm.changed
