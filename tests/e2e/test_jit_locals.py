"""Planned calls that read objects the function itself made (`patch = ImagePatch(img)`).

No recipe can rebuild such an object, but once the real run has made it, a replay reads it from
the function's frame and issues the calls that use it (see plan._ready_at).  These tests compare
every jitted run with the plain function (results and calls) and show the overlap with
FakeLLM.max_concurrency; the refusals show that a local assigned twice, assigned under a branch on
a result, or changed in place between the read and the call is never read early.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from test_jit import MIN_MS, fakes, fresh, run_both

import xcs_bc as xcs
from xcs_bc.testing import FakeLLM

(vqa,) = fakes("vqa")
(tool,) = fakes("tool")


class ImagePatch:
    def __init__(self, image: str) -> None:
        self.image = image

    def query(self, question: str) -> str:
        return vqa(f"{question} about {self.image}")

    def crop(self) -> None:
        self.image = self.image + "[cropped]"


def three_questions(image: str) -> str:
    patch = ImagePatch(image)
    a = patch.query("what")
    b = patch.query("who")
    c = patch.query("where")
    return vqa(f"{a} | {b} | {c}")


def replayed(fn: Any, watch: list[FakeLLM], runs: int = 3) -> Any:
    fast = xcs.jit(fn, min_call_ms=MIN_MS)
    for _ in range(runs):
        run_both(fn, fast, fresh("img"), watch=watch)
    return fast


def test_calls_on_an_object_the_function_made_overlap() -> None:
    fast = replayed(three_questions, [vqa])
    assert vqa.max_concurrency == 3  # the three questions go out once the patch is made
    assert fast.stats.traces == 1 and fast.stats.mispredictions == 0 and fast.stats.wasted == 0
    # ImagePatch(image) in its turn on each replay (its result recorded); the rest served
    assert fast.stats.served == 2 * 4 and fast.stats.in_place == 2
    text = fast.explain()
    assert "%0 ImagePatch at" in text and "runs in its turn, because it is a fast call" in text
    assert "%1 ImagePatch.query" in text and "issued ahead once %0 is known" in text


def three_questions_maybe(image: str) -> str:
    patch = ImagePatch(image) if image else None  # not `x = f(...)`: read from the frame
    a = patch.query("what")
    b = patch.query("who")
    c = patch.query("where")
    return vqa(f"{a} | {b} | {c}")


def test_calls_on_an_object_read_from_the_frame_overlap() -> None:
    fast = replayed(three_questions_maybe, [vqa])
    assert vqa.max_concurrency == 3  # who and where go out while what runs in its turn
    assert fast.stats.traces == 1 and fast.stats.mispredictions == 0 and fast.stats.wasted == 0
    assert fast.stats.served == 2 * 3 and fast.stats.in_place == 2  # %0 in its turn on each replay
    text = fast.explain()
    assert "issued ahead when the run reaches %0, reading patch" in text
    assert "%0 ImagePatch.query" in text and "no earlier call is a point to read it at" in text


def test_a_record_parsed_from_a_tool_result() -> None:
    @dataclass
    class Record:
        name: str
        city: str

    def lookup(user: str) -> tuple[str, str, str]:
        raw = tool(f"lookup {user}")
        record = Record(**json.loads(json.dumps({"name": raw, "city": raw[::-1]})))
        first = vqa(f"greet {record.name}")
        second = vqa(f"weather in {record.city}")
        third = vqa(f"news for {record.name} in {record.city}")
        return first, second, third

    fast = replayed(lookup, [vqa, tool])
    assert vqa.max_concurrency == 3
    assert fast.stats.mispredictions == 0 and fast.stats.wasted == 0


def test_a_change_in_place_between_the_read_and_the_call_is_never_read_early() -> None:
    def crops(image: str) -> tuple[str, str]:
        patch = ImagePatch(image)
        a = patch.query("before")
        patch.crop()  # a function not known to be pure: patch may have changed
        b = patch.query("after")
        return a, b

    def sets_attribute(image: str) -> tuple[str, str]:
        patch = ImagePatch(image)
        a = patch.query("before")
        patch.image = patch.image + "!"
        b = patch.query("after")
        return a, b

    for fn in (crops, sets_attribute):
        fast = replayed(fn, [vqa])
        assert vqa.max_concurrency == 1
        # the first query goes once the patch is made; the second waits for the change
        assert fast.stats.served == 2 and fast.stats.wasted == 0
        assert "%2 ImagePatch.query" in fast.explain() and "runs in its turn" in fast.explain()


def test_an_attribute_set_on_an_input_before_the_call_is_seen_by_the_call() -> None:
    # regression: STORE_ATTR's operands were swapped, so the change in place was not recorded and
    # the call was issued ahead with the object before the glue changed it
    def annotate(patch: ImagePatch) -> tuple[str, str]:
        a = vqa(f"look {patch.image}")
        patch.image = patch.image + "!"
        b = patch.query("after")
        return a, b

    fast = xcs.jit(annotate, min_call_ms=MIN_MS)
    for _ in range(3):
        image = fresh("img")
        expected = annotate(ImagePatch(image))
        assert fast(ImagePatch(image)) == expected
    assert fast.stats.wasted == 0 and fast.stats.mispredictions == 0


def test_a_local_assigned_twice_or_under_a_branch_on_a_result_is_not_read() -> None:
    def reassigned(image: str) -> tuple[str, str]:
        patch = ImagePatch(image)
        a = patch.query("one")
        patch = ImagePatch(image + "2")
        b = patch.query("two")
        return a, b

    def on_a_result(image: str) -> tuple[str, str]:
        first = vqa(f"look at {image}")
        if first.endswith(")"):  # noqa: SIM108 - two assignments are the point
            patch = ImagePatch(image)
        else:
            patch = ImagePatch(image + "?")
        a = patch.query("one")
        b = patch.query("two")
        return a, b

    for fn in (reassigned, on_a_result):
        fast = replayed(fn, [vqa])
        assert vqa.max_concurrency == 1
        assert fast.stats.wasted == 0 and fast.stats.mispredictions == 0


def test_an_exception_in_a_call_issued_from_the_frame_is_raised_at_its_call_site() -> None:
    failing = FakeLLM("vqa", 0.03, fail_on="who")

    class Patch:
        def __init__(self, image: str) -> None:
            self.image = image

        def query(self, question: str) -> str:
            return failing(f"{question} about {self.image}")

    def ask(image: str) -> list[str]:
        patch = Patch(image)
        out = [patch.query("what")]
        try:
            out.append(patch.query("who"))
        except Exception as exc:  # noqa: BLE001 - the test compares the message
            out.append(f"caught {exc}")
        out.append(patch.query("where"))
        return out

    fast = replayed(ask, [failing])
    assert fast.stats.wasted == 0 and fast.stats.mispredictions == 0
    assert failing.max_concurrency >= 2
