"""Benchmark scenarios whose control flow the run decides: calls under branches on results.

Imported by `jit_bench.py`, which measures them beside its other rows.  Every call gets a fresh
input, and the branches go another way from one call to the next (the trace saw one of them).
The hand-written versions wait for each result and then fan out, as a good engineer would.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from xcs_bc.testing import FakeLLM


class Tool(FakeLLM):
    """A slow tool that answers a bool: does the image (after " in ") hold "+<thing>"?  Its calls are
    logged like a FakeLLM's."""

    def __call__(self, prompt: object, **kwargs: Any) -> Any:
        super().__call__(prompt, **kwargs)
        thing, _, image = str(prompt).partition(" in ")
        return f"+{thing}" in image


classifier = FakeLLM("classifier", 0.05)
solver = FakeLLM("solver", 0.05)
combiner = FakeLLM("combine", 0.05)
exists = Tool("exists", 0.05)
FAKES = [classifier, solver, combiner, exists]
POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="handwritten-branches")
_counter = itertools.count()


# -- a router: a classifier, then three solvers and a combine, or a single call ------------------------


def router(question):
    kind = classifier(f"Classify: {question}")
    if "math" in kind:
        a = solver(f"Solve with algebra: {question}")
        b = solver(f"Solve with geometry: {question}")
        c = solver(f"Solve with estimation: {question}")
        return combiner(f"Combine: {a} | {b} | {c}")
    return combiner(f"Answer in prose: {kind}")


def router_pool(question):
    kind = classifier(f"Classify: {question}")
    if "math" in kind:
        prompts = [f"Solve with {way}: {question}" for way in ("algebra", "geometry", "estimation")]
        a, b, c = POOL.map(solver, prompts)
        return combiner(f"Combine: {a} | {b} | {c}")
    return combiner(f"Answer in prose: {kind}")


def fresh_questions() -> Callable[[], str]:
    """Math, math, prose, math, prose, ...: the branch flips between calls."""
    kinds = itertools.cycle(["math", "math", "prose", "math", "prose"])
    return lambda: f"{next(kinds)} question #{next(_counter)}"


# -- tv and phone: boolean answers decide which checks follow ------------------------------------------


def tv_and_phone(image):
    has_tv = exists(f"television in {image}")
    if not has_tv:
        has_tv = exists(f"tv in {image}")
    has_phone = exists(f"telephone in {image}")
    if not has_phone:
        a = exists(f"cell phone in {image}")
        b = exists(f"mobile phone in {image}")
        c = exists(f"phone in {image}")
        has_phone = a or b or c
    return f"tv: {has_tv}, phone: {has_phone}"


def tv_and_phone_pool(image):
    def tv():
        return exists(f"television in {image}") or exists(f"tv in {image}")

    def phone():
        if exists(f"telephone in {image}"):
            return True
        a, b, c = POOL.map(exists, [f"{p} in {image}" for p in ("cell phone", "mobile phone", "phone")])
        return a or b or c

    has_tv, has_phone = POOL.submit(tv), POOL.submit(phone)
    return f"tv: {has_tv.result()}, phone: {has_phone.result()}"


def fresh_images() -> Callable[[], str]:
    """Images whose objects change every call, so each branch goes both ways."""
    contents = itertools.cycle(
        ["+tv +cell phone", "+television +telephone", "", "+tv +mobile phone", "+phone"]
    )
    return lambda: f"image #{next(_counter)} {next(contents)}"
