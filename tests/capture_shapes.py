"""Python's less common shapes, in functions a capture traces through: metaclasses, super(),
properties, static and class methods, callable objects, __getattr__, dataclasses, context managers,
generators, *args/**kwargs, decorators, try/finally, a class body, map and sort keys, match, the
walrus, a generator expression, recursion and a global (`tests/e2e/test_capture_through.py`)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools

from xcs_bc.testing import FakeLLM

llm = FakeLLM("llm", 0.005)
G = ""


class Meta(type):
    pass


class Base:
    def ask(self, x):
        return llm(f"base {x}")


class Child(Base, metaclass=Meta):
    def __init__(self, k):
        self.k = k

    def ask(self, x):
        return super().ask(x) + llm(f"child {x}")

    @property
    def prop(self):
        return llm("prop")

    @staticmethod
    def st(x):
        return llm(f"st {x}")

    @classmethod
    def cm(cls, x):
        return llm(f"cm {x}")

    def __call__(self, x):
        return llm(f"call {x}")

    def __getattr__(self, name):
        return name


@dataclasses.dataclass
class D:
    a: int
    b: list = dataclasses.field(default_factory=list)


@contextlib.contextmanager
def ctx():
    yield llm("ctx")


def gen(n):
    for i in range(n):
        yield llm(f"gen {i}")


def kw(a, *rest, b=2, **more):
    return llm(f"{a} {rest} {b} {more}")


def deco(fn):
    @functools.wraps(fn)
    def w(*a, **k):
        return fn(*a, **k)

    return w


@deco
def decorated(x, y=1):
    return llm(f"dec {x} {y}")


def tryfinally(x):
    try:
        return llm(x)
    finally:
        llm("finally")


def classdef():
    class Local:
        v = llm("classbody")

    return Local.v


def with_ctx():
    with ctx() as c:
        return llm(c)


def lambdas(xs):
    return list(map(lambda x: llm(x), xs)) + sorted(xs, key=lambda x: llm(x))


def matcher(v):
    match v:
        case {"k": x}:
            return llm(f"match {x}")
        case _:
            return llm("nomatch")


def walrus(xs):
    if (n := len(xs)) > 1:
        return llm(f"n {n}")


def nested_gen(xs):
    return "".join(llm(x) for x in xs)


def star_call(args, kwargs):
    return kw(*args, **kwargs)


def rec(n):
    return llm("bottom") if n == 0 else rec(n - 1)


def global_set():
    global G
    G = llm("g")


def run():
    c = Child(3)
    out = [
        c.ask("q"),
        c.prop,
        c.st(1),
        c.cm(2),
        c("z"),
        c.missing,
        D(1).a,
        list(gen(2)),
        kw(1, 2, 3, b=4, c=5),
        decorated(1, y=2),
        tryfinally("t"),
        classdef(),
        with_ctx(),
        lambdas(["a", "b"]),
        matcher({"k": 1}),
        matcher(3),
        walrus([1, 2]),
        nested_gen(["x", "y"]),
        star_call((1, 2), {"b": 3, "z": 4}),
        rec(5),
    ]
    global_set()
    out.append(llm(G))
    try:
        kw()
    except TypeError as e:
        out.append(str(e)[:10])
    return out
