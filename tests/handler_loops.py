"""Loops with a `try` around a slow call, shared by the test of `loopshape.handled_out` (its
bytecode) and the replays and first calls that must make no call the plain run does not.

`STOPPED_BY_A_HANDLER`: a round that raises changes the rounds after it (a flag, a count, a list of
errors the next round checks, a `break` on a condition, a flag a nested function sets, a `while`
loop's condition, a flag computed from what the `try` body or the handler left).
`GOING_ON_AFTER_A_HANDLER`: a fallback value, which changes nothing a later round reads.
`checker` fails on a prompt holding "BAD".
"""

from __future__ import annotations

from likeplain import LATENCY
from xcs_bc.testing import FakeLLM, FakeLLMError

checker = FakeLLM("checker", LATENCY, fail_on="BAD")


def until_flagged(docs: list[str]) -> list[str]:
    out, ok = [], True
    for d in docs:
        if not ok:
            break
        try:
            out.append(checker(d))
        except FakeLLMError:
            ok = False
    return out


def until_two_failed(docs: list[str]) -> tuple[list[str], int]:
    out, failures = [], 0
    for d in docs:
        if failures >= 2:
            break
        try:
            out.append(checker(d))
        except FakeLLMError:
            failures += 1
    return out, failures


def until_an_error_is_noted(docs: list[str]) -> tuple[list[str], list[str]]:
    out: list[str] = []
    errors: list[str] = []
    for d in docs:
        if errors:
            continue
        try:
            out.append(checker(d))
        except FakeLLMError as e:
            errors.append(str(e))
    return out, errors


def until_a_late_check_fails(docs: list[str]) -> list[str]:
    out = []
    for i, d in enumerate(docs):
        try:
            out.append(checker(d))
        except FakeLLMError:
            if i > 1:
                break
            out.append("skipped")
    return out


def until_a_helper_flags(docs: list[str]) -> list[str]:
    out, ok = [], True

    def failed() -> None:
        nonlocal ok
        ok = False

    for d in docs:
        if not ok:
            break
        try:
            out.append(checker(d))
        except FakeLLMError:
            failed()
    return out


def while_flagged(docs: list[str]) -> list[str]:
    i, ok, out = 0, True, []
    while i < len(docs) and ok:
        try:
            out.append(checker(docs[i]))
        except FakeLLMError:
            ok = False
        i += 1
    return out


def flagged_in_finally(docs: list[str]) -> list[str]:
    ok, out = True, []
    for d in docs:
        if not ok:
            break
        done = False
        try:
            out.append(checker(d))
            done = True
        except FakeLLMError:
            pass
        finally:
            ok = done
    return out


def flagged_from_a_fallback(docs: list[str]) -> list[str | None]:
    ok, out = True, []
    for d in docs:
        if not ok:
            break
        try:
            r = checker(d)
        except FakeLLMError:
            r = None
        ok = r is not None
        out.append(r)
    return out


def while_falling_back(docs: list[str]) -> list[str]:
    i, out = 0, []
    while i < len(docs):
        try:
            out.append(checker(docs[i]))
        except FakeLLMError:
            out.append("failed")
        i += 1
    return out


def falling_back(docs: list[str]) -> list[str | None]:
    out = []
    for d in docs:
        try:
            r = checker(d)
        except FakeLLMError:
            r = None
        out.append(r)
    return out


STOPPED_BY_A_HANDLER = [
    until_flagged,
    until_two_failed,
    until_an_error_is_noted,
    until_a_late_check_fails,
    until_a_helper_flags,
    while_flagged,
    flagged_in_finally,
    flagged_from_a_fallback,
]
GOING_ON_AFTER_A_HANDLER = [while_falling_back, falling_back]
