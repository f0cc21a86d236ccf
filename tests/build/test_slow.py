"""Which calls only their time could make slow steps: never a built-in that runs no user code.

Under load (a collection, another process on the core) any call can take milliseconds; a call that
cannot run user code on the values it takes must never become a slow call of the plan, or a
consumer's map (`list(map(llm, docs))`) is cut off at a `map` taken for a slow call."""

from __future__ import annotations

from typing import Any

import pytest

from xcs_bc.build.slow import plain_builtin
from xcs_bc.ir import MISSING
from xcs_bc.ir.values import const, unknown


def llm(prompt: str) -> str:
    return prompt


class Pages:
    """An iterable of the user's: taking its iterator runs its `__iter__`."""

    def __iter__(self) -> Any:
        return iter(["a", "b"])


DOCS = ["a", "b"]


@pytest.mark.parametrize(
    ("callee", "args"),
    [
        (map, (llm, DOCS)),
        (map, (llm, DOCS, ("x", "y"))),
        (filter, (None, DOCS)),
        (filter, (len, (1, 2))),
        (zip, (DOCS, range(2))),
        (enumerate, (DOCS, 1)),
        (reversed, (DOCS,)),
        (map, (llm, map(str, DOCS))),  # (an iterator's iterator is itself)
        (list, (DOCS,)),
        (str, (3,)),
        (tuple, ()),
        (len, (DOCS,)),
        ("-".join, (DOCS,)),
    ],
)
def test_a_built_in_running_no_user_code_on_plain_values_is_never_slow(
    callee: Any, args: tuple[Any, ...]
) -> None:
    assert plain_builtin(callee, tuple(const(arg) for arg in args))


@pytest.mark.parametrize(
    ("callee", "args"),
    [
        (map, (llm, Pages())),  # Pages.__iter__ runs
        (zip, (DOCS, Pages())),
        (list, (map(llm, DOCS),)),  # the consumer calls llm
        (list, (Pages(),)),
        (str, (Pages(),)),  # its __str__ / __repr__ may be the user's
        (llm, ("a",)),
        (map, (llm,)),  # (raises: no iterable)
    ],
)
def test_a_call_that_may_run_user_code_is_judged_by_its_time(callee: Any, args: tuple[Any, ...]) -> None:
    assert not plain_builtin(callee, tuple(const(arg) for arg in args))


def test_a_value_the_builder_holds_no_object_for_is_not_plain() -> None:
    docs = unknown(0)
    assert docs.value is MISSING
    assert not plain_builtin(map, (const(llm), docs))
    assert not plain_builtin(list, (docs,))
