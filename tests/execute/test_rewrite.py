"""Tests of xcs_bc.execute.rewrite: clones whose call sites go through a dispatcher.

Every test compares the clone with the ORIGINAL function: same results, same
exceptions at the same traceback positions, the same calls (callee, arguments)
seen by a recording dispatcher, and site keys equal to the offsets an observer
of the original reports (sys.monitoring on 3.12+, settrace 'opcode' events and
``frame.f_lasti`` on 3.10/3.11).
"""

from __future__ import annotations

import asyncio
import dis
import inspect
import json
import sys
import textwrap
import traceback
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xcs_bc.errors import ConfigError
from xcs_bc.execute.callsites import FRAME_SENSITIVE, SiteKey, code_tree
from xcs_bc.execute.rewrite import Rewritten, SiteRefusal, call_sites, rewrite

PY311 = sys.version_info >= (3, 11)
PY312 = sys.version_info >= (3, 12)


# -- sample code ----------------------------------------------------------------


class Client:
    """A fake model client: methods of every kind, an attribute chain, a context manager."""

    def __init__(self, name: str = "c", depth: int = 2) -> None:
        self.name = name
        self.sub = Client(f"{name}.sub", depth - 1) if depth else None
        self.entered = 0

    def complete(self, prompt: str, *, temperature: float = 0.0, **extra: Any) -> str:
        if prompt == "boom":
            raise ValueError(f"boom: bad prompt for {self.name}")
        return f"{self.name}:{prompt}:{temperature}:{sorted(extra.items())}"

    @staticmethod
    def shout(text: str) -> str:
        return text.upper()

    @classmethod
    def make(cls, name: str) -> Client:
        return cls(name, depth=0)

    def __enter__(self) -> Client:
        self.entered += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.entered -= 1


class SubClient(Client):
    def complete(self, prompt: str, **kw: Any) -> str:
        parent = super()  # tag: bare-super
        first = super().complete(prompt, **kw)  # tag: super-method
        second = super(SubClient, self).shout(prompt)  # noqa: UP008  # tag: super-two-args
        return f"sub({first}|{parent.shout(prompt)}|{second})"


def helper(x: int, y: int = 1) -> int:
    return x * 10 + y


def target(client: Client, docs: list[str], *extra: int, flag: bool = True, **options: Any) -> Any:
    """The target docstring."""
    out: list[Any] = []
    out.append(helper(1))  # tag: plain
    local_fn = helper
    out.append(local_fn(2, y=3))  # tag: local-kw
    out.append(client.complete("a"))  # tag: method
    out.append(client.complete("b", temperature=0.5))  # tag: method-kw
    args, kw = ("c",), {"temperature": 1.0}
    out.append(client.complete(*args, **kw))  # tag: star-both
    out.append(helper(*(4,)))  # tag: star
    out.append(client.complete("d", temperature=2.0, **options))  # tag: kw-and-star
    out.append([client.complete(d) for d in docs])  # tag: listcomp
    out.append({d: len(d) for d in docs})  # tag: dictcomp
    out.append(sum(len(d) for d in docs))  # tag: genexpr
    out.append((lambda s: helper(len(s)))("xyz"))  # tag: lambda
    out.append(client.complete("e") if flag else helper(0))  # tag: conditional
    out.append(client.sub.sub.complete("f"))  # tag: chain
    out.append(Client.shout("g") + client.shout("h"))  # tag: static
    out.append(Client.make("m").complete("i"))  # tag: classmethod
    out.append(getattr(client, "complete")("j"))  # noqa: B009  # tag: getattr
    out.append(client.complete(f"k-{len(docs)}-{helper(5)!r}"))  # tag: fstring
    n = 0
    while True:
        n = n + helper(0, 1)  # tag: loop
        if n >= 3:
            break
    try:
        client.complete("boom")  # tag: raising
    except ValueError as exc:
        out.append(str(exc))
    with client as ctx:  # tag: with
        out.append(ctx.complete("w"))

    def closure(x: int) -> int:
        return helper(x, n)  # tag: closure-body

    out.append(closure(7))  # tag: closure-call
    out.append(SubClient("s", 0).complete("t"))  # tag: subclient
    out.append(extra)
    return out, closure


def gen_target(client: Client, docs: list[str]) -> Any:
    for d in docs:
        got = yield client.complete(d)  # tag: gen-yield
        if got:
            yield helper(got)
    last = helper((yield "last"), 2)  # tag: gen-yield-in-args
    return helper(last)  # tag: gen-return


async def async_target(client: Client, docs: list[str]) -> list[int]:
    async def one(d: str) -> str:
        await asyncio.sleep(0)
        return client.complete(d)  # tag: async-inner

    results = await asyncio.gather(*(one(d) for d in docs))  # tag: async-gather
    first = helper(len(await one("z")), y=len(results))  # tag: await-in-args
    return [first] + [helper(len(r)) for r in results]


def frame_sensitive(x: int) -> Any:
    later = helper(x)
    a = list(locals().items())  # tag: locals
    b = eval("x + 1")  # tag: eval
    c = sorted(vars())  # tag: vars
    d = dir()  # tag: dir
    exec("pass")  # tag: exec
    return a, b, c, d, later


def raising(client: Client, value: str) -> Any:
    x = helper(1)
    if value == "c-error":
        return int(value)  # tag: c-raise
    return client.complete(  # tag: py-raise
        value,
        temperature=x,
    )


def star_call(x: Any) -> Any:
    return helper(*x)


def print_star(x: Any) -> Any:
    return print(*x)


# -- helpers ----------------------------------------------------------------------


def line_of(fn: Callable[..., Any], tag: str) -> int:
    """Source line carrying ``# tag: <tag>`` inside `fn`."""
    lines, start = inspect.getsourcelines(fn)
    found = [start + i for i, text in enumerate(lines) if text.rstrip().endswith(f"# tag: {tag}")]
    assert len(found) == 1, (tag, found)
    return found[0]


class Recorder:
    """A dispatcher that records every call and calls through."""

    def __init__(self) -> None:
        self.calls: list[tuple[SiteKey, Any, tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, key: SiteKey, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self.calls.append((key, fn, args, kwargs))
        return fn(*args, **kwargs)

    @property
    def keys(self) -> list[SiteKey]:
        return [call[0] for call in self.calls]

    def at(self, rewritten: Rewritten, line: int) -> list[tuple[Any, tuple[Any, ...], dict[str, Any]]]:
        """(callee, args, kwargs) of the calls made from sites on `line`."""
        return [(fn, args, kwargs) for key, fn, args, kwargs in self.calls if rewritten.sites[key] == line]


def is_append(fn: Any) -> bool:
    """The ``out.append`` around most sample calls."""
    return getattr(fn, "__name__", None) == "append"


def passthrough(key: SiteKey, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return fn(*args, **kwargs)


def _call_offsets(code: types.CodeType) -> set[int]:
    names = {"CALL", "CALL_KW", "CALL_FUNCTION", "CALL_FUNCTION_KW", "CALL_METHOD", "CALL_FUNCTION_EX"}
    return {ins.offset for ins in dis.get_instructions(code) if ins.opname in names}


def observe_calls(
    fn: types.FunctionType, run: Callable[[], Any], events: str = "instruction"
) -> tuple[Any, list[SiteKey]]:
    """Run `run()` while recording the key of every call instruction executed in `fn`'s code tree.

    The keys come from the interpreter: on 3.12+ sys.monitoring INSTRUCTION
    events (``events="instruction"``, every executed instruction) or CALL events
    (``events="call"``); on 3.10/3.11 settrace 'opcode' events at ``frame.f_lasti``.
    """
    tree = code_tree(fn)
    path_of = {id(code): path for path, code in tree.items()}
    offsets = {id(code): _call_offsets(code) for code in tree.values()}
    keys: list[SiteKey] = []

    def seen(code: types.CodeType, offset: int) -> None:
        if offset in offsets.get(id(code), ()):
            keys.append((path_of[id(code)], offset))

    if PY312:
        return _observe_monitoring(list(tree.values()), run, seen, events), keys

    def local(frame: types.FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            seen(frame.f_code, frame.f_lasti)
        return local

    def tracer(frame: types.FrameType, event: str, arg: Any) -> Any:
        if id(frame.f_code) not in path_of:
            return None
        frame.f_trace_opcodes = True
        return local

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        return run(), keys
    finally:
        sys.settrace(previous)


def _observe_monitoring(
    codes: list[types.CodeType],
    run: Callable[[], Any],
    seen: Callable[[types.CodeType, int], None],
    events: str,
) -> Any:
    mon = sys.monitoring  # type: ignore[attr-defined]
    tool = next(i for i in range(6) if mon.get_tool(i) is None)
    mon.use_tool_id(tool, "xcs-test-rewrite")
    event = mon.events.INSTRUCTION if events == "instruction" else mon.events.CALL
    mon.register_callback(tool, event, lambda code, offset, *rest: seen(code, offset))
    try:
        for code in codes:
            mon.set_local_events(tool, code, event)
        return run()
    finally:  # free_tool_id does not clear events or callbacks on 3.12/3.13
        for code in codes:
            mon.set_local_events(tool, code, 0)
        mon.register_callback(tool, event, None)
        mon.free_tool_id(tool)


def run_target(fn: Callable[..., Any]) -> Any:
    out, closure = fn(Client(), ["x", "yy"], 1, 2, flag=True, top_p=0.9)
    return out, closure(5)


def tb_position(exc: BaseException, name: str) -> tuple[Any, ...]:
    """Line (and on 3.11+ end line and columns) of the innermost traceback entry in function `name`."""
    (entry,) = [e for e in traceback.extract_tb(exc.__traceback__) if e.name == name]
    if PY311:
        return entry.lineno, entry.end_lineno, entry.colno, entry.end_colno
    return (entry.lineno,)


# -- the clone behaves like the original ------------------------------------------


def test_clone_returns_what_the_original_returns() -> None:
    rewritten = rewrite(target, passthrough)
    assert run_target(rewritten.function) == run_target(target)
    assert rewritten.function is not target
    assert rewritten.function.__code__ is not target.__code__


def test_clone_keeps_the_function_metadata() -> None:
    def annotated(a: int, b: int = 2, *, c: int = 3) -> int:
        """Doc."""
        return helper(a + b + c)

    annotated.custom = "attribute"  # type: ignore[attr-defined]
    clone = rewrite(annotated, passthrough).function
    for attr in ("__name__", "__qualname__", "__module__", "__doc__", "__defaults__", "__kwdefaults__"):
        assert getattr(clone, attr) == getattr(annotated, attr), attr
    assert clone.__annotations__ == annotated.__annotations__
    assert clone.__globals__ is annotated.__globals__
    assert clone.__dict__ == {"custom": "attribute"}
    assert clone.__code__.co_flags == annotated.__code__.co_flags
    assert clone(1) == annotated(1) == helper(6)


def test_closure_cells_are_shared_with_the_original() -> None:
    counter = [0]

    def bump() -> int:
        counter.append(helper(len(counter)))
        return len(counter)

    clone = rewrite(bump, passthrough).function
    assert clone.__closure__ is bump.__closure__
    assert clone() == 2 and bump() == 3 and counter == [0, 11, 21]


def test_every_call_site_is_rewritten_or_refused_and_call_sites_lists_them() -> None:
    rewritten = rewrite(target, passthrough)
    listed = call_sites(target)
    assert len({key for key, _ in listed}) == len(listed)
    assert set(rewritten.sites) | {r.key for r in rewritten.refused} == {key for key, _ in listed}
    assert not set(rewritten.sites) & {r.key for r in rewritten.refused}
    assert dict(listed) == {**rewritten.sites, **{r.key: r.line for r in rewritten.refused}}
    # listed parents first, each in offset order
    paths = list(dict.fromkeys(path for (path, _), _ in listed))
    assert paths[0] == ("target",)
    for path in paths:
        offsets = [off for (p, off), _ in listed if p == path]
        assert offsets == sorted(offsets)


def test_code_paths_name_nested_code_objects() -> None:
    paths = {path for (path, _), _ in call_sites(target)}
    assert ("target", "<genexpr>") in paths and ("target", "<lambda>") in paths
    assert ("target", "closure") in paths
    assert (("target", "<listcomp>") in paths) == (not PY312)  # PEP 709 inlines list comprehensions
    assert set(code_tree(target)) >= paths


def test_repeated_names_of_nested_code_get_numbered_paths() -> None:
    def two_lambdas() -> Any:
        f = lambda: helper(1)  # noqa: E731
        g = lambda: helper(2)  # noqa: E731
        return f() + g()

    tree = code_tree(two_lambdas)
    assert ("two_lambdas", "<lambda>") in tree and ("two_lambdas", "<lambda>#1") in tree
    recorder = Recorder()
    assert rewrite(two_lambdas, recorder).function() == two_lambdas()
    inner = [key for key in recorder.keys if key[0] != ("two_lambdas",)]
    assert [path for path, _ in inner] == [("two_lambdas", "<lambda>"), ("two_lambdas", "<lambda>#1")]


# -- what the dispatcher sees -------------------------------------------------------


def test_dispatcher_gets_the_exact_callee_args_and_kwargs() -> None:
    recorder = Recorder()
    rewritten = rewrite(target, recorder)
    client = Client()
    rewritten.function(client, ["x", "yy"], 1, 2, top_p=0.9)

    def only(tag: str) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
        calls = [c for c in recorder.at(rewritten, line_of(target, tag)) if not is_append(c[0])]
        assert len(calls) == 1, (tag, calls)
        return calls[0]

    assert only("plain") == (helper, (1,), {})
    assert only("local-kw") == (helper, (2,), {"y": 3})
    fn, args, kwargs = only("method")
    assert isinstance(fn, types.MethodType) and fn.__self__ is client and fn.__func__ is Client.complete
    assert (args, kwargs) == (("a",), {})
    fn, args, kwargs = only("method-kw")
    assert fn == client.complete and (args, kwargs) == (("b",), {"temperature": 0.5})
    assert only("star-both")[1:] == (("c",), {"temperature": 1.0})
    assert only("star") == (helper, (4,), {})
    assert only("kw-and-star")[1:] == (("d",), {"temperature": 2.0, "top_p": 0.9})
    fn, args, _ = only("chain")
    assert fn.__self__ is client.sub.sub and args == ("f",)
    static = recorder.at(rewritten, line_of(target, "static"))
    assert [c[0] for c in static if not is_append(c[0])] == [Client.shout, Client.shout]
    made = recorder.at(rewritten, line_of(target, "classmethod"))
    assert made[0][0] == Client.make and made[0][0].__self__ is Client
    getattr_calls = recorder.at(rewritten, line_of(target, "getattr"))
    assert getattr_calls[0] == (getattr, (client, "complete"), {})
    assert getattr_calls[1][0] == client.complete and getattr_calls[1][1] == ("j",)
    appends = [c for c in recorder.calls if c[1] == client.complete and c[2] == ("a",)]
    assert len(appends) == 1


def test_nested_code_dispatches_with_its_own_keys() -> None:
    recorder = Recorder()
    rewritten = rewrite(target, recorder)
    out, closure = rewritten.function(Client(), ["x", "yy"])
    genexpr = [c for c in recorder.calls if c[0][0] == ("target", "<genexpr>")]
    assert [(fn, args) for _, fn, args, _ in genexpr] == [(len, ("x",)), (len, ("yy",))]
    lam = [c for c in recorder.calls if c[0][0] == ("target", "<lambda>")]
    assert [fn for _, fn, _, _ in lam] == [len, helper]
    comp_path = ("target",) if PY312 else ("target", "<listcomp>")
    comp_line = line_of(target, "listcomp")
    comp = [c for c in recorder.calls if c[0][0] == comp_path and rewritten.sites[c[0]] == comp_line]
    assert [args for _, _, args, _ in comp if args != (out[7],)] == [("x",), ("yy",)]
    # the nested function, called after the clone returned, still dispatches
    before = len(recorder.calls)
    assert closure(2) == helper(2, 3)
    (late,) = recorder.calls[before:]
    assert late[0][0] == ("target", "closure") and late[1:] == (helper, (2, 3), {})
    assert rewritten.sites[late[0]] == line_of(target, "closure-body")


def test_dispatcher_result_and_exception_become_the_call_result() -> None:
    def dispatch(key: SiteKey, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if fn is helper:
            return ("served", args)
        if fn is len:
            raise LookupError("from the dispatcher")
        return fn(*args, **kwargs)

    def uses(x: int) -> Any:
        first = helper(x)
        try:
            len([x])
        except LookupError as exc:
            return first, str(exc)
        return first, None

    assert rewrite(uses, dispatch).function(4) == (("served", (4,)), "from the dispatcher")


def test_star_args_errors_match_cpython() -> None:
    for fn in (star_call, print_star):
        clone = rewrite(fn, passthrough).function
        for bad in (5, None):
            with pytest.raises(TypeError) as original:
                fn(bad)
            with pytest.raises(TypeError) as cloned:
                clone(bad)
            assert str(cloned.value) == str(original.value)
        assert clone(iter([3])) == fn(iter([3]))


def test_star_kwargs_reach_the_dispatcher_as_a_fresh_dict() -> None:
    recorder = Recorder()
    options = {"y": 5}

    def spread(opts: dict[str, int]) -> int:
        return helper(1, **opts)

    assert rewrite(spread, recorder).function(options) == 15
    (_, _, args, kwargs) = recorder.calls[0]
    assert (args, kwargs) == ((1,), {"y": 5}) and kwargs is not options


# -- exceptions and tracebacks --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "exc_type", "tag"), [("boom", ValueError, "py-raise"), ("c-error", ValueError, "c-raise")]
)
def test_exceptions_keep_type_message_and_traceback_position(value: str, exc_type: type, tag: str) -> None:
    rewritten = rewrite(raising, Recorder())
    assert all(r.reason != "unsupported stack shape" for r in rewritten.refused)
    with pytest.raises(exc_type) as original:
        raising(Client(), value)
    with pytest.raises(exc_type) as cloned:
        rewritten.function(Client(), value)
    assert str(cloned.value) == str(original.value)
    assert tb_position(cloned.value, "raising") == tb_position(original.value, "raising")
    assert tb_position(cloned.value, "raising")[0] == line_of(raising, tag)


# -- only= ------------------------------------------------------------------------------


def test_only_limits_rewriting_to_the_named_sites() -> None:
    line = line_of(target, "method-kw")
    keys = [key for key, at in call_sites(target) if at == line]
    recorder = Recorder()
    rewritten = rewrite(target, recorder, only=keys)
    assert set(rewritten.sites) == set(keys) and rewritten.refused == ()
    assert run_target(rewritten.function) == run_target(target)
    assert {key for key in recorder.keys} == set(keys)
    assert len(recorder.calls) == 2  # the method call and the append around it


def test_only_with_a_refused_site_reports_it() -> None:
    refused = [r for r in rewrite(target, passthrough).refused if r.reason == "with-statement exit"]
    rewritten = rewrite(target, passthrough, only=[refused[0].key])
    assert rewritten.sites == {} and rewritten.refused == (refused[0],)
    assert rewritten.function.__code__ is target.__code__  # nothing to change: same code


def test_only_rejects_keys_that_are_not_call_sites() -> None:
    with pytest.raises(ConfigError, match="no call instruction"):
        rewrite(target, passthrough, only=[(("target",), 1)])
    with pytest.raises(ConfigError, match="plain Python function"):
        rewrite(Client().complete, passthrough)  # type: ignore[arg-type]


# -- refusals -------------------------------------------------------------------------


def reasons(rewritten: Rewritten) -> dict[str, set[int | None]]:
    """Refusal reason -> the source lines refused for it."""
    found: dict[str, set[int | None]] = {}
    for refusal in rewritten.refused:
        found.setdefault(refusal.reason, set()).add(refusal.line)
    return found


def test_frame_sensitive_builtins_are_refused_and_still_work() -> None:
    rewritten = rewrite(frame_sensitive, Recorder())
    found = reasons(rewritten)
    for name in ("locals", "eval", "vars", "dir", "exec"):
        assert found[f"frame-sensitive builtin {name}()"] == {line_of(frame_sensitive, name)}
    assert rewritten.function(3) == frame_sensitive(3)
    assert {"super", "globals", "breakpoint"} <= FRAME_SENSITIVE


def test_frame_getters_are_refused_by_name_and_by_attribute() -> None:
    import inspect as inspect_module

    def frames() -> Any:
        here = sys._getframe()  # tag: getframe
        also = inspect_module.currentframe()  # tag: currentframe
        return here is also, here.f_code.co_name, helper(1)

    rewritten = rewrite(frames, passthrough)
    found = reasons(rewritten)
    assert found["frame-sensitive builtin _getframe()"] == {line_of(frames, "getframe")}
    assert found["frame-sensitive builtin currentframe()"] == {line_of(frames, "currentframe")}
    assert rewritten.function() == frames() == (True, "frames", 11)


def test_compiler_generated_calls_are_refused() -> None:
    rewritten = rewrite(target, passthrough)
    found = reasons(rewritten)
    assert found["with-statement exit"] == {line_of(target, "with")}
    comprehension_lines = {line_of(target, "genexpr"), line_of(target, "dictcomp")}
    if not PY312:  # 3.10/3.11 call a function for every comprehension
        comprehension_lines.add(line_of(target, "listcomp"))
    else:
        comprehension_lines.discard(line_of(target, "dictcomp"))
    assert found["compiler-generated call (comprehension)"] == comprehension_lines
    assert set(found) == {"with-statement exit", "compiler-generated call (comprehension)"}


def test_zero_argument_super_in_a_rewritten_method() -> None:
    recorder = Recorder()
    rewritten = rewrite(SubClient.complete, recorder)
    client = SubClient("s", 0)
    assert rewritten.function(client, "p", temperature=1.0) == client.complete("p", temperature=1.0)
    refused = {(r.reason, r.line) for r in rewritten.refused}
    assert ("frame-sensitive builtin super()", line_of(SubClient.complete, "bare-super")) in refused
    # super().complete(...) itself goes through the dispatcher with the bound parent method
    (call,) = recorder.at(rewritten, line_of(SubClient.complete, "super-method"))
    fn, args, kwargs = call
    assert fn.__func__ is Client.complete and fn.__self__ is client
    assert (args, kwargs) == (("p",), {"temperature": 1.0})
    two_args = recorder.at(rewritten, line_of(SubClient.complete, "super-two-args"))
    assert (Client.shout, ("p",), {}) in two_args


def test_async_with_exit_is_refused() -> None:
    class Manager:
        async def __aenter__(self) -> str:
            return "in"

        async def __aexit__(self, *exc: object) -> None:
            return None

    async def uses() -> str:
        async with Manager() as value:
            return helper(len(value)).__str__()

    rewritten = rewrite(uses, passthrough)
    assert "with-statement exit" in reasons(rewritten)
    assert asyncio.run(rewritten.function()) == asyncio.run(uses()) == "21"


def test_class_creation_inside_the_function_is_not_dispatched() -> None:
    def builds() -> Any:
        class Local:
            value = helper(2)

            def get(self) -> int:
                return helper(self.value)

        return Local().get()

    recorder = Recorder()
    rewritten = rewrite(builds, recorder)
    assert "compiler-generated call (class creation)" in reasons(rewritten)
    assert rewritten.function() == builds()
    assert [fn for _, fn, _, _ in recorder.calls if fn is helper] == [helper, helper]


def compiled(source: str, name: str) -> types.FunctionType:
    """A function compiled from `source` (pytest rewrites asserts in this module's own code)."""
    namespace: dict[str, Any] = {"helper": helper}
    exec(compile(textwrap.dedent(source), "<test source>", "exec"), namespace)
    fn: types.FunctionType = namespace[name]
    return fn


def test_assert_messages_are_not_dispatched() -> None:
    checks = compiled(
        """
        def checks(x):
            assert x > 0, "x must be positive"
            return helper(x)
        """,
        "checks",
    )
    recorder = Recorder()
    rewritten = rewrite(checks, recorder)
    assert "compiler-generated call (assert message)" in reasons(rewritten)
    assert rewritten.function(2) == 21
    with pytest.raises(AssertionError, match="x must be positive"):
        rewritten.function(-1)
    assert [fn for _, fn, _, _ in recorder.calls] == [helper]


@pytest.mark.skipif(not PY312, reason="type parameter syntax is 3.12+")
def test_type_parameter_scopes_are_not_dispatched() -> None:
    outer = compiled(
        """
        def outer():
            def inner[T](x: T) -> T:
                return helper(x)
            return inner(4)
        """,
        "outer",
    )
    rewritten = rewrite(outer, passthrough)
    assert "compiler-generated call (type parameters)" in reasons(rewritten)
    assert rewritten.function() == outer() == 41


def test_decorators_are_dispatched_with_the_function_as_argument() -> None:
    import functools

    def wraps_inner() -> Any:
        @functools.lru_cache(maxsize=None)  # noqa: UP033  # tag: decorator
        def inner(x: int) -> int:
            return helper(x)

        return inner(2), inner(2), inner.cache_info().hits

    recorder = Recorder()
    rewritten = rewrite(wraps_inner, recorder)
    assert rewritten.refused == ()
    assert rewritten.function() == wraps_inner() == (21, 21, 1)
    factory = recorder.at(rewritten, line_of(wraps_inner, "decorator"))[0]
    assert factory == (functools.lru_cache, (), {"maxsize": None})
    # the decorator itself is called with the new function: dec(inner)
    (application,) = [c for c in recorder.calls if c[2] and isinstance(c[2][0], types.FunctionType)]
    assert application[2][0].__name__ == "inner" and application[3] == {}


def test_a_method_load_shared_by_duplicated_tails() -> None:
    """The compiler copies ``obj.m(A if c else B)``'s call into both branches (not on 3.11)."""

    def tails(obj: Client, c: bool) -> str:
        return obj.complete("yes" if c else "no")

    keys = [key for key, _ in call_sites(tails)]
    assert len(keys) == (1 if sys.version_info[:2] == (3, 11) else 2)
    for only in ([keys[0]], [keys[-1]], keys):
        recorder = Recorder()
        clone = rewrite(tails, recorder, only=only).function
        client = Client()
        assert [clone(client, True), clone(client, False)] == [tails(client, True), tails(client, False)]
        assert set(recorder.keys) == set(only)  # both branches ran
        assert len(recorder.calls) == (2 if set(only) == set(keys) else 1)
        assert all(fn == client.complete for _, fn, _, _ in recorder.calls)


# -- generators and coroutines ------------------------------------------------------------


def drive(gen: Any) -> list[Any]:
    transcript = [next(gen)]
    try:
        while True:
            transcript.append(gen.send(len(transcript)))
    except StopIteration as stop:
        transcript.append(("return", stop.value))
    return transcript


def test_generator_clone_is_a_generator_with_the_same_behaviour() -> None:
    recorder = Recorder()
    rewritten = rewrite(gen_target, recorder)
    assert inspect.isgeneratorfunction(rewritten.function)
    assert rewritten.function.__code__.co_flags == gen_target.__code__.co_flags
    assert drive(rewritten.function(Client(), ["a", "b"])) == drive(gen_target(Client(), ["a", "b"]))
    for tag in ("gen-yield", "gen-yield-in-args", "gen-return"):
        assert line_of(gen_target, tag) in {rewritten.sites[k] for k in recorder.keys}, tag


def test_coroutine_clone_runs_under_asyncio() -> None:
    recorder = Recorder()
    rewritten = rewrite(async_target, recorder)
    assert inspect.iscoroutinefunction(rewritten.function)
    assert rewritten.function.__code__.co_flags == async_target.__code__.co_flags
    assert asyncio.run(rewritten.function(Client(), ["a", "bb"])) == asyncio.run(
        async_target(Client(), ["a", "bb"])
    )
    inner = [c for c in recorder.calls if c[0][0] == ("async_target", "one")]
    assert [args for _, fn, args, _ in inner if fn.__name__ == "complete"] == [("a",), ("bb",), ("z",)]
    assert any(fn is asyncio.gather for _, fn, _, _ in recorder.calls)
    assert (helper, (len("c:z:0.0:[]"),), {"y": 2}) in recorder.at(
        rewritten, line_of(async_target, "await-in-args")
    )


# -- site keys equal the offsets observers report for the original -------------------------


def assert_keys_match_observer(
    fn: types.FunctionType, run: Callable[[types.FunctionType], Any]
) -> list[SiteKey]:
    recorder = Recorder()
    rewritten = rewrite(fn, recorder)
    expected, observed = observe_calls(fn, lambda: run(fn))
    assert run(rewritten.function) == expected
    assert observed, "the observer saw nothing"
    assert set(observed) <= {key for key, _ in call_sites(fn)}
    assert [key for key in observed if key in rewritten.sites] == recorder.keys
    # refused sites run in the original and are never dispatched by the clone
    assert not {r.key for r in rewritten.refused} & set(recorder.keys)
    return observed


def test_site_keys_match_the_observed_offsets_of_the_original() -> None:
    observed = assert_keys_match_observer(target, run_target)
    assert {r.key for r in rewrite(target, passthrough).refused} <= set(observed)


@pytest.mark.skipif(not PY312, reason="sys.monitoring is 3.12+")
def test_monitoring_call_events_report_the_same_offsets() -> None:
    """CALL events name the same keys, except that 3.12 sends none for CALL_FUNCTION_EX of a Python callee."""
    by_instruction = observe_calls(target, lambda: run_target(target))[1]
    by_call = observe_calls(target, lambda: run_target(target), events="call")[1]
    if sys.version_info < (3, 13):
        ex = {
            (p, off)
            for p, code in code_tree(target).items()
            for off in _call_offsets(code)
            if dis.opname[code.co_code[off]] == "CALL_FUNCTION_EX"
        }
        assert set(by_instruction) & ex and set(by_call) <= set(by_instruction)
        by_instruction = [key for key in by_instruction if key not in ex]
        by_call = [key for key in by_call if key not in ex]
    assert by_call == by_instruction


def test_site_keys_match_in_generators_and_coroutines() -> None:
    assert_keys_match_observer(gen_target, lambda f: drive(f(Client(), ["a", "b", "c"])))
    observed = observe_calls(async_target, lambda: asyncio.run(async_target(Client(), ["a", "b"])))[1]
    recorder = Recorder()
    rewritten = rewrite(async_target, recorder)
    asyncio.run(rewritten.function(Client(), ["a", "b"]))
    # Same keys, but not in the same order: the observer sees gather's CALL_FUNCTION_EX
    # before `*(genexpr)` is expanded, the dispatcher (like the callee) after it.
    gather = (("async_target",), max(_call_offsets(async_target.__code__) & {k[1] for k in recorder.keys}))
    assert sorted(key for key in observed if key in rewritten.sites) == sorted(recorder.keys)
    assert gather in recorder.keys


# -- real code: the standard library ------------------------------------------------------


def _stdlib_functions() -> Iterator[types.FunctionType]:
    import argparse
    import dataclasses
    import difflib
    import email.utils
    import fractions
    import shlex

    for module in (argparse, dataclasses, difflib, email.utils, fractions, json.encoder, shlex, textwrap):
        for value in vars(module).values():
            members = vars(value).values() if isinstance(value, type) else [value]
            for member in members:
                if isinstance(member, types.FunctionType) and member.__module__ == module.__name__:
                    yield member


CODE_ATTRS = ("co_name", "co_filename", "co_firstlineno", "co_flags", "co_argcount", "co_kwonlyargcount",
              "co_posonlyargcount", "co_varnames", "co_freevars", "co_cellvars")  # fmt: skip


def test_rewriting_standard_library_functions_keeps_every_site_and_code_attribute() -> None:
    count = 0
    for fn in _stdlib_functions():
        rewritten = rewrite(fn, passthrough)
        considered = set(rewritten.sites) | {r.key for r in rewritten.refused}
        assert considered == {key for key, _ in call_sites(fn)}, fn
        unsupported = [r for r in rewritten.refused if r.reason.startswith("unsupported")]
        assert not unsupported, (fn, unsupported)
        original, clone = code_tree(fn), code_tree(rewritten.function)
        assert list(clone) == list(original), fn
        for path, code in original.items():
            for attr in CODE_ATTRS:
                assert getattr(clone[path], attr) == getattr(code, attr), (fn, path, attr)
        count += 1
    assert count > 200


def test_rewritten_standard_library_functions_behave_the_same() -> None:
    import difflib
    import shlex

    text = "  The quick brown fox jumps over the lazy dog, twice over.\n  And again."
    cases: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = [
        (textwrap.dedent, (text,), {}),
        (textwrap.fill, (text,), {"width": 17}),
        (textwrap.shorten, (text,), {"width": 30}),
        (json.dumps, ({"a": [1, 2.5, None], "b": "x"},), {"indent": 2, "sort_keys": True}),
        (shlex.split, ("a 'b c' d",), {}),
    ]
    for fn, args, kwargs in cases:
        recorder = Recorder()
        assert rewrite(fn, recorder).function(*args, **kwargs) == fn(*args, **kwargs), fn
        assert recorder.calls, fn
    diff = rewrite(difflib.unified_diff, passthrough).function  # a generator function
    assert list(diff(["a\n", "b\n"], ["a\n", "c\n"])) == list(
        difflib.unified_diff(["a\n", "b\n"], ["a\n", "c\n"])
    )


def _rewrite_all(modules: list[types.ModuleType], dispatch: Recorder) -> list[tuple[Any, str, Any]]:
    """Replace every function and method of `modules` by its clone; returns what to restore."""
    saved: list[tuple[Any, str, Any]] = []
    for module in modules:
        for owner in [module, *(v for v in vars(module).values() if isinstance(v, type))]:
            if owner is not module and owner.__module__ != module.__name__:
                continue
            for name, value in list(vars(owner).items()):
                func = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
                if not isinstance(func, types.FunctionType) or func.__module__ != module.__name__:
                    continue
                clone = rewrite(func, dispatch).function
                saved.append((owner, name, value))
                setattr(owner, name, type(value)(clone) if func is not value else clone)
    return saved


def test_standard_library_modules_run_the_same_with_every_function_rewritten() -> None:
    import difflib
    import fractions
    import shlex

    def workload() -> list[Any]:
        text = "The quick brown fox jumps over the lazy dog. " * 4
        return [
            textwrap.fill(text, width=23),
            textwrap.shorten(text, width=40),
            json.dumps({"a": [1, 2.5, None, {"b": "c\u1234"}]}, indent=2, sort_keys=True),
            json.loads('{"x": [1, 2, {"y": null}], "z": 1.5}'),
            list(difflib.unified_diff(["a\n", "b\n", "c\n"], ["a\n", "B\n", "c\n"])),
            difflib.SequenceMatcher(None, "abcdefg", "abxdefz").get_opcodes(),
            str(fractions.Fraction(3, 7) + fractions.Fraction("1/3") * 2),
            shlex.split("a 'b c' \"d e\" f\\ g"),
        ]

    expected = workload()
    recorder = Recorder()
    modules = [textwrap, json, json.encoder, json.decoder, difflib, fractions, shlex]
    saved = _rewrite_all(modules, recorder)
    try:
        got = workload()
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)
    assert len(saved) > 100 and len(recorder.calls) > 500
    assert got == expected


def test_large_functions_with_extended_args_keep_their_keys() -> None:
    lines = [f"    v{i} = helper({i}, y={i + 1000})" for i in range(300)]
    big = compiled(
        "def big():\n" + "\n".join(lines) + "\n    return [" + ", ".join(f"v{i}" for i in range(300)) + "]\n",
        "big",
    )
    assert any(ins.opname == "EXTENDED_ARG" for ins in dis.get_instructions(big))
    observed = assert_keys_match_observer(big, lambda f: f())
    assert len(observed) == 300


@pytest.mark.skipif(not PY312, reason="sys.monitoring is 3.12+")
def test_rewriting_code_that_is_being_monitored() -> None:
    def inside() -> tuple[Any, list[tuple[SiteKey, int | None]]]:
        rewritten = rewrite(target, passthrough)
        return run_target(rewritten.function), call_sites(target)

    (result, sites), _ = observe_calls(target, inside)
    assert result == run_target(target) and sites == call_sites(target)


def test_known_difference_callees_see_the_dispatcher_frames_as_their_caller() -> None:
    """Frame-inspecting callees (warnings stacklevel, logging's findCaller) see extra frames."""

    def caller_name() -> str:
        return sys._getframe(1).f_code.co_name

    def calls() -> str:
        return caller_name()

    assert calls() == "calls"
    assert rewrite(calls, passthrough).function() == "passthrough"


# -- generated programs ---------------------------------------------------------------------


class Fake:
    """A slow call that counts itself: its result depends on the call number and the arguments."""

    def __init__(self) -> None:
        self.log: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        self.log.append((args, kwargs))
        return len(self.log) * 7 + len(repr(args)) + 3 * len(kwargs)

    def method(self, *args: Any, **kwargs: Any) -> int:
        return self(*args, **kwargs) + 1


@st.composite
def programs(draw: st.DrawFn) -> str:
    """Source of ``def prog(fake, obj, items)``: assigned calls, if/else, for loops, comprehensions."""
    names: list[str] = []
    body: list[str] = []

    def argument() -> str:
        choice = draw(st.integers(0, 3)) if names else draw(st.integers(0, 1))
        if choice == 0:
            return repr(draw(st.integers(-3, 9)))
        if choice == 1:
            return repr(draw(st.sampled_from(["a", "bc", ""])))
        if choice == 2:
            return draw(st.sampled_from(names))
        return f'f"{{{draw(st.sampled_from(names))}}}-{draw(st.integers(0, 9))}"'

    def call() -> str:
        callee = draw(st.sampled_from(["fake", "obj.method", "G", "fake"]))
        args = [argument() for _ in range(draw(st.integers(0, 3)))]
        kwargs = [f"k{i}={argument()}" for i in range(draw(st.integers(0, 2)))]
        if draw(st.integers(0, 4)) == 0:  # spread arguments: CALL_FUNCTION_EX
            args.append(f"*[{argument()}]")
            kwargs.append(f"**{{'kx': {argument()}}}")
        return f"{callee}({', '.join(args + kwargs)})"

    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["assign", "assign", "if", "for", "comprehension"]))
        name = f"v{len(names)}"
        if kind == "assign":
            body.append(f"{name} = {call()}")
        elif kind == "if" and names:
            body.append(f"if {call()} % 2:\n        {name} = {call()}\n    else:\n        {name} = {call()}")
        elif kind == "comprehension":
            comprehension = draw(st.sampled_from(["[{}]", "sum({})", "{{it: {}}}"]))
            body.append(f"{name} = " + comprehension.format(f"fake(it, {argument()}) for it in items"))
        else:
            body.append(f"{name} = 0\n    for it in items:\n        {name} = {name} + fake(it, {argument()})")
        names.append(name)
    lines = "\n    ".join(body)
    return f"def prog(fake, obj, items):\n    {lines}\n    return [{', '.join(names)}]\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_generated_programs_behave_the_same(source: str) -> None:
    def run(fn: Callable[..., Any]) -> tuple[Any, list[Any]]:
        fake, obj = Fake(), Fake()
        namespace["G"] = fake
        result = fn(fake, obj, [1, 2, 3])
        return result, fake.log + obj.log

    namespace: dict[str, Any] = {}
    exec(compile(source, "<generated>", "exec"), namespace)
    prog = namespace["prog"]
    recorder = Recorder()
    rewritten = rewrite(prog, recorder)
    # only the compiler's own call of a comprehension's function is left alone
    assert {r.reason for r in rewritten.refused} <= {"compiler-generated call (comprehension)"}
    expected, observed = observe_calls(prog, lambda: run(prog))
    assert run(rewritten.function) == expected
    assert recorder.keys == [key for key in observed if key in rewritten.sites]
    assert {key for key in observed if key not in rewritten.sites} <= {r.key for r in rewritten.refused}


def test_refusal_is_a_frozen_value() -> None:
    refusal = SiteRefusal((("f",), 2), 3, "with-statement exit")
    with pytest.raises(AttributeError):
        refusal.reason = "x"  # type: ignore[misc]
    assert refusal == SiteRefusal((("f",), 2), 3, "with-statement exit")
