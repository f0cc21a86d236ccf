"""`ValueRef`'s hand-written `__init__` (see `xcs_bc.ir.refs`): the dataclass's, without its cost."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from xcs_bc.ir import MISSING, Source, ValueRef


def test_its_init_takes_exactly_the_fields_with_their_defaults() -> None:
    fields = [f for f in dataclasses.fields(ValueRef) if f.init]
    parameters = list(inspect.signature(ValueRef.__init__).parameters.values())[1:]
    assert [p.name for p in parameters] == [f.name for f in fields]
    assert [p.default for p in parameters] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in fields
    ]


def test_it_sets_every_field_and_replace_keeps_the_others() -> None:
    ref = ValueRef(Source.INPUT, name="x", deps=frozenset({1}), value=3)
    assert [getattr(ref, f.name) for f in dataclasses.fields(ValueRef)] == [
        Source.INPUT,
        "x",
        (),
        (),
        None,
        frozenset({1}),
        3,
        "",
        None,
        None,
        None,
        False,
        (),
        -1,
    ]
    other = dataclasses.replace(ref, value=MISSING)
    assert other.name == "x" and other.deps == frozenset({1}) and other.value is MISSING
    assert ref.depth == 0 and other.depth == 0


def test_replaced_is_dataclasses_replace() -> None:
    """`ValueRef.replaced` copies every field by hand: a field added to the class and not to it fails
    here.  A ref's measured depth is kept unless its operands change."""
    leaf = ValueRef(Source.CONST, value=1)
    ref = ValueRef(Source.EXPR, name="n", operands=(leaf,), op=2, deps=frozenset({2}), value="v", origin="o")
    assert ref.depth == 1
    init = [f.name for f in dataclasses.fields(ValueRef) if f.init]
    for name in init:
        new = ValueRef(Source.UNKNOWN) if name == "operands" else object()
        value = (new,) if name == "operands" else new
        mine, theirs = ref.replaced(**{name: value}), dataclasses.replace(ref, **{name: value})
        assert [getattr(mine, f) for f in init] == [getattr(theirs, f) for f in init]
    assert ref.replaced(value=2).depth == 1 and ref.replaced(operands=()).depth == 0
    with pytest.raises(TypeError, match="colour"):
        ref.replaced(colour="red")
