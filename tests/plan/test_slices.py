"""Slices: pure expressions compiled with `bytecode` compute what Python computes, and nothing else runs."""

from __future__ import annotations

import dis
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xcs_bc.ir import ExprKind, PathStep, Source, ValueRef
from xcs_bc.ir.values import const, expr
from xcs_bc.plan import slices
from xcs_bc.plan.slices import Env, NotComputable, Slice, evaluate

DOCS = ["alpha", "beta", "gamma"]


def env(**args: Any) -> Env:
    return Env(args, {"TEMPLATE": "{lang}: {text}", "json": json}, {}, outputs={4: "four", 5: ["x", "y"]})


def inp(name: str, *path: PathStep) -> ValueRef:
    return ValueRef(Source.INPUT, name=name, path=path)


def out(op: int, *path: PathStep) -> ValueRef:
    return ValueRef(Source.OUTPUT, op=op, path=path)


def glob(name: str, *path: PathStep) -> ValueRef:
    return ValueRef(Source.GLOBAL, name=name, path=path)


def attr(name: str) -> PathStep:
    return PathStep("attr", name)


def fmt(ref: ValueRef, spec: str | None = None) -> ValueRef:
    return expr(ExprKind.FORMAT, (ref,) if spec is None else (ref, const(spec)))


ITEM1 = inp("docs", PathStep("iter", 1))

CASES: list[tuple[str, ValueRef, Any]] = [
    ("f-string", expr(ExprKind.FSTRING, (const("Summarize: "), fmt(ITEM1))), "Summarize: beta"),
    ("format spec", expr(ExprKind.FSTRING, (const("["), fmt(inp("n"), ">4"), const("]"))), "[   7]"),
    ("f-string of a result", expr(ExprKind.FSTRING, (fmt(out(4)), const("/"), fmt(out(5, PathStep("item", 1))))), "four/y"),
    ("str + str", expr(ExprKind.ADD, (const("Q: "), inp("q"))), "Q: why"),
    ("int arithmetic", expr(ExprKind.MUL, (expr(ExprKind.ADD, (inp("n"), const(1))), const(3))), 24),
    ("comparison", expr(ExprKind.LT, (inp("n"), const(10))), True),
    ("in", expr(ExprKind.IN, (const("beta"), inp("docs"))), True),
    ("not", expr(ExprKind.NOT, (inp("q"),)), False),
    ("list display", expr(ExprKind.LIST, (ITEM1, out(4), const(3))), ["beta", "four", 3]),
    ("tuple display", expr(ExprKind.TUPLE, (inp("q"), inp("n"))), ("why", 7)),
    ("set display", expr(ExprKind.SET, (const("a"), const("b"))), {"a", "b"}),
    ("set of ints", expr(ExprKind.SET, (inp("n"), const(1))), {7, 1}),
    ("dict display", expr(ExprKind.DICT, (const("role"), const("user"), const("content"), ITEM1)),
     {"role": "user", "content": "beta"}),
    ("dict with an int key", expr(ExprKind.DICT, (inp("n"), inp("q"))), {7: "why"}),
    ("subscript", expr(ExprKind.GETITEM, (inp("docs"), const(-1))), "gamma"),
    ("slice", expr(ExprKind.GETITEM, (inp("docs"), expr(ExprKind.SLICE, (const(1), const(None))))), ["beta", "gamma"]),
    ("binary slice", expr(ExprKind.BINARY_SLICE, (inp("docs"), const(0), const(2))), ["alpha", "beta"]),
    ("const", expr(ExprKind.CONST, (const("x"),)), "x"),
    ("len", expr(ExprKind.CALL, (glob("len"), inp("docs"))), 3),
    ("sorted, reverse", expr(ExprKind.CALL_KW, (glob("sorted"), inp("docs"), const(True), const(("reverse",)))),
     ["gamma", "beta", "alpha"]),
    ("str.format with keywords", expr(ExprKind.CALL_KW, (glob("TEMPLATE", attr("format")), const("fr"), ITEM1,
                                                   const(("lang", "text")))), "fr: beta"),
    ("str.join", expr(ExprKind.CALL, (ValueRef(Source.EXPR, kind=ExprKind.CONST, operands=(const("\n"),), path=(attr("join"),)),
                               inp("docs"))), "alpha\nbeta\ngamma"),
    ("json.dumps", expr(ExprKind.CALL, (glob("json", attr("dumps")), expr(ExprKind.DICT, (const("k"), inp("n"))))), '{"k": 7}'),
    ("zip consumed by list", expr(ExprKind.CALL, (glob("list"), expr(ExprKind.CALL, (glob("zip"), inp("docs"), inp("docs"))))),
     [("alpha", "alpha"), ("beta", "beta"), ("gamma", "gamma")]),
    ("path on an expression", ValueRef(Source.EXPR, kind=ExprKind.ADD, operands=(const("ab"), const("cd")),
                                       path=(PathStep("item", 1),)), "b"),
    ("a leaf alone", out(5, PathStep("iter", 0)), "x"),
]  # fmt: skip


@pytest.mark.parametrize(("ref", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_each_form_computes_what_python_computes(ref: ValueRef, expected: Any) -> None:
    got = evaluate(ref, env(docs=DOCS, q="why", n=7))
    assert got == expected and type(got) is type(expected)


def test_a_recipe_slice_returns_callee_and_arguments_together() -> None:
    prompt = expr(ExprKind.FSTRING, (const("Summarize: "), fmt(ITEM1)))
    assert Slice((glob("len"), prompt, inp("n")))(env(docs=DOCS, n=7)) == (len, "Summarize: beta", 7)


def _helpers() -> set[Any]:
    return {
        value
        for name, value in vars(slices).items()
        if name.startswith("_") and callable(value) and getattr(value, "__module__", "") == slices.__name__
    }


ALLOWED_OPS = {
    "RESUME", "LOAD_FAST", "LOAD_CONST", "PUSH_NULL", "PRECALL", "CALL", "CALL_FUNCTION", "BUILD_LIST",
    "BUILD_TUPLE", "BUILD_SET", "BUILD_MAP", "BUILD_STRING", "RETURN_VALUE", "RETURN_CONST", "CACHE",
}  # fmt: skip


def assert_calls_only_helpers(compiled: Slice) -> None:
    """The compiled code loads its leaves and constants, builds displays, and calls the checking helpers."""
    if compiled.function is None:
        return
    code = compiled.function.__code__
    ops = {instr.opname for instr in dis.get_instructions(code)}
    assert ops <= ALLOWED_OPS, ops - ALLOWED_OPS
    called = {c for c in code.co_consts if callable(c)}
    assert called <= _helpers() | set(slices._OPERATORS.values()), called


@pytest.mark.parametrize("ref", [case[1] for case in CASES], ids=[case[0] for case in CASES])
def test_the_compiled_code_calls_nothing_but_the_checking_helpers(ref: ValueRef) -> None:
    assert_calls_only_helpers(Slice((ref,)))


def test_one_function_per_shape() -> None:
    """Items of a loop (and new lengths, and other constants) share one compiled function."""
    made = [Slice((glob("len"), expr(ExprKind.FSTRING, (const(f"S{k}: "), fmt(inp("docs", PathStep("iter", k)))))))
            for k in range(50)]  # fmt: skip
    assert len({id(s.function) for s in made}) == 1
    assert [s(env(docs=[str(i) for i in range(50)]))[1] for s in made[:3]] == ["S0: 0", "S1: 1", "S2: 2"]
    other = Slice((glob("len"), expr(ExprKind.FSTRING, (fmt(inp("docs", PathStep("iter", 0))), const("!")))))
    assert other.function is not made[0].function  # another shape


def test_one_function_for_every_key_of_an_expression_s_path() -> None:
    """A path into an expression (`sorted(docs)[k]`, the items of a loop over a template's sequence) is
    a parameter, not compiled in: a loop's rounds at a new length compile nothing new (each round
    compiled its own function, about a millisecond per round the first time a length was met)."""
    ordered = expr(ExprKind.CALL, (glob("sorted"), inp("docs")))
    made = [
        Slice((ordered.replaced(path=(PathStep("item", k), PathStep("attr", "upper"))),)) for k in range(40)
    ]
    assert len({id(s.function) for s in made}) == 1
    docs = [f"d{i:02}" for i in range(40)]
    assert [s(env(docs=docs))[0]() for s in made] == [d.upper() for d in sorted(docs)]
    assert Slice((ordered.replaced(path=(PathStep("item", True),)),))(env(docs=docs)) == ("d01",)
    with pytest.raises(NotComputable):
        made[39](env(docs=docs[:3]))  # (an index past the end: not computable, as before)


def test_a_constant_that_is_not_a_string_is_checked_when_joined() -> None:
    """A constant is a parameter, so an f-string of a non-str constant goes through the checking join."""
    assert evaluate(expr(ExprKind.FSTRING, (const("a"), fmt(inp("q")))), env(q="b")) == "ab"
    with pytest.raises(NotComputable, match="not known to be pure"):
        evaluate(expr(ExprKind.FSTRING, (const(3), fmt(inp("q")))), env(q="b"))


class Tricky:
    """Every method that an expression over it could run counts itself."""

    ran: list[str] = []

    def __add__(self, other: Any) -> Any:
        self.ran.append("add")
        return "added"

    def __format__(self, spec: str) -> str:
        self.ran.append("format")
        return "formatted"

    def __getitem__(self, key: Any) -> Any:
        self.ran.append("getitem")
        return "item"

    def __hash__(self) -> int:
        self.ran.append("hash")
        return 1

    def __eq__(self, other: object) -> bool:
        self.ran.append("eq")
        return True

    def __len__(self) -> int:
        self.ran.append("len")
        return 1

    @property
    def text(self) -> str:
        self.ran.append("property")
        return "text"


REFUSED: list[tuple[str, ValueRef, str]] = [
    ("operator", expr(ExprKind.ADD, (inp("obj"), const("x"))), "not known to be pure"),
    ("format", expr(ExprKind.FSTRING, (const("a"), fmt(inp("obj")))), "not known to be pure"),
    ("subscript", expr(ExprKind.GETITEM, (inp("obj"), const(0))), "not known to be pure"),
    ("set of objects", expr(ExprKind.SET, (inp("obj"),)), "not known to be pure"),
    ("dict keyed by an object", expr(ExprKind.DICT, (inp("obj"), const(1))), "not known to be pure"),
    ("comparison", expr(ExprKind.EQ, (inp("obj"), const(1))), "not known to be pure"),
    ("pure call on an object", expr(ExprKind.CALL, (glob("len"), inp("obj"))), "could run user code"),
    ("property", inp("obj", attr("text")), "cannot be read without running user code"),
    ("impure callee", expr(ExprKind.CALL, (inp("fn"), const(1))), "not known to be pure"),
    ("unknown kind", expr(ExprKind.EFFECT, (inp("q"),)), "not known to be pure"),
    ("result not in yet", expr(ExprKind.FSTRING, (const("a"), fmt(out(9)))), "has not returned yet"),
    (
        "unknown",
        ValueRef(Source.UNKNOWN, origin="helper()", op=0),
        r"helper\(\), which is not known to be pure",
    ),
]


@pytest.mark.parametrize(("ref", "why"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_nothing_that_could_run_user_code_runs(ref: ValueRef, why: str) -> None:
    Tricky.ran.clear()
    called: list[int] = []
    with pytest.raises(NotComputable, match=why):
        evaluate(ref, env(obj=Tricky(), q="q", fn=lambda x: called.append(x)))
    assert Tricky.ran == [] and called == []
    assert_calls_only_helpers(Slice((ref,)))


def test_a_refusal_names_the_expression_that_stopped_it() -> None:
    wrapped = expr(ExprKind.LIST, (const("ok"), expr(ExprKind.ADD, (inp("obj"), const("x")))))
    with pytest.raises(NotComputable, match=r"obj \+ 'x' is not known to be pure"):
        evaluate(wrapped, env(obj=Tricky()))


def test_an_error_while_computing_is_not_computable() -> None:
    def first_word(text: str) -> str:  # pure (as purity sees it), but raises on an empty string
        return text.split()[0]

    with pytest.raises(NotComputable, match="raised IndexError"):
        evaluate(expr(ExprKind.CALL, (const(first_word), inp("q"))), env(q=""))
    with pytest.raises(NotComputable, match="not known to be pure"):  # an index out of range: not peekable
        evaluate(expr(ExprKind.GETITEM, (inp("docs"), const(9))), env(docs=DOCS))


# -- generated trees -------------------------------------------------------------------------------

_LEAVES = {"q": "why not", "n": 7, "docs": ["a", "bb", "ccc"]}


def _leaf() -> st.SearchStrategy[tuple[ValueRef, Any]]:
    return st.one_of(
        st.sampled_from([(inp(name), value) for name, value in _LEAVES.items()]),
        st.sampled_from([(inp("docs", PathStep("iter", k)), _LEAVES["docs"][k]) for k in range(3)]),  # type: ignore[index]
        st.text(max_size=4).map(lambda s: (const(s), s)),
        st.integers(-5, 5).map(lambda i: (const(i), i)),
    )


def _grow(children: st.SearchStrategy[tuple[ValueRef, Any]]) -> st.SearchStrategy[tuple[ValueRef, Any]]:
    def fstring(parts: list[tuple[ValueRef, Any]]) -> tuple[ValueRef, Any]:
        return expr(ExprKind.FSTRING, [fmt(ref) for ref, _ in parts]), "".join(format(v) for _, v in parts)

    def display(kind: ExprKind, parts: list[tuple[ValueRef, Any]]) -> tuple[ValueRef, Any]:
        build = {ExprKind.LIST: list, ExprKind.TUPLE: tuple}[kind]
        return expr(kind, [ref for ref, _ in parts]), build(v for _, v in parts)

    def text_dict(parts: list[tuple[ValueRef, Any]]) -> tuple[ValueRef, Any]:
        operands = [o for k, (ref, _) in enumerate(parts) for o in (const(f"k{k}"), ref)]
        return expr(ExprKind.DICT, operands), {f"k{k}": v for k, (_, v) in enumerate(parts)}

    def call(name: str, part: tuple[ValueRef, Any]) -> tuple[ValueRef, Any]:
        function = {"str": str, "repr": repr}[name]
        return expr(ExprKind.CALL, (glob(name), part[0])), function(part[1])

    def concat(a: tuple[ValueRef, Any], b: tuple[ValueRef, Any]) -> tuple[ValueRef, Any]:
        return expr(
            ExprKind.ADD,
            (expr(ExprKind.CALL, (glob("str"), a[0])), expr(ExprKind.CALL, (glob("repr"), b[0]))),
        ), str(a[1]) + repr(b[1])

    parts = st.lists(children, max_size=4)
    return st.one_of(
        parts.map(fstring),
        st.tuples(st.sampled_from([ExprKind.LIST, ExprKind.TUPLE]), parts).map(lambda t: display(*t)),
        parts.map(text_dict),
        st.tuples(children, children).map(lambda t: concat(*t)),
        st.tuples(st.sampled_from(["str", "repr"]), children).map(lambda t: call(*t)),
        parts.map(
            lambda p: (expr(ExprKind.CALL, (glob("len"), expr(ExprKind.LIST, [r for r, _ in p]))), len(p))
        ),
    )


TREES = st.recursive(_leaf(), _grow, max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(TREES)
def test_generated_expressions_compute_what_python_computes(case: tuple[ValueRef, Any]) -> None:
    ref, expected = case
    compiled = Slice((glob("print"), ref))
    callee, value = compiled(env(**_LEAVES))
    assert callee is print and value == expected and type(value) is type(expected)
    assert_calls_only_helpers(compiled)


def test_equal_path_keys_of_other_types_are_other_shapes() -> None:
    """`[q][0]` and `[q][0.0]` are equal cache keys, but only the first can be computed."""
    ref_int, ref_float = (
        ValueRef(Source.EXPR, kind=ExprKind.LIST, operands=(inp("q"),), path=(PathStep("item", key),))
        for key in (0, 0.0)
    )
    assert evaluate(ref_int, env(q="why")) == "why"
    with pytest.raises(NotComputable):
        evaluate(ref_float, env(q="why"))  # a list index must be an int: not peekable


def unpack(ref: ValueRef) -> ValueRef:
    return expr(ExprKind.UNPACK, (ref,))


def test_keyword_arguments_are_merged_from_dicts_with_built_in_keys() -> None:
    # `tool(**step["args"])` passes `{**step["args"]}`: the values are carried over, never touched
    ref = expr(ExprKind.DICT, (unpack(inp("a")), unpack(inp("b"))))
    obj = Tricky()
    Tricky.ran.clear()
    assert evaluate(ref, env(a={"x": 1, "y": 2}, b={"y": obj})) == {"x": 1, "y": obj}
    assert Tricky.ran == []
    refused = ({Tricky(): 1}, [("x", 1)])  # keys compared by user code; not a dict
    Tricky.ran.clear()
    for a in refused:
        with pytest.raises(NotComputable, match="not known to be pure"):
            evaluate(ref, env(a=a, b={}))
    assert Tricky.ran == []
    assert_calls_only_helpers(Slice((ref,)))


def test_sorted_and_friends_of_a_dict_read_its_keys_only() -> None:
    tools = {"search": Tricky(), "calculate": Tricky()}
    Tricky.ran.clear()
    for name, expected in [
        ("sorted", ["calculate", "search"]),
        ("list", ["search", "calculate"]),
        ("min", "calculate"),
    ]:
        assert evaluate(expr(ExprKind.CALL, (glob(name), inp("tools"))), env(tools=tools)) == expected
    assert Tricky.ran == []
    keyed_by_objects = {Tricky(): 1}
    Tricky.ran.clear()
    with pytest.raises(NotComputable, match="could run user code"):
        evaluate(expr(ExprKind.CALL, (glob("sorted"), inp("tools"))), env(tools=keyed_by_objects))
    assert Tricky.ran == []
