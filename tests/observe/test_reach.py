"""`observe.reach`: which functions a capture traces through, and which are leaves."""

from __future__ import annotations

import json
import types

import pytest

import xcs_bc.testing
from xcs_bc.errors import ConfigError
from xcs_bc.observe.reach import Reach


def mine(x: int) -> int:
    return x


def produce() -> types.GeneratorType:  # type: ignore[type-arg]
    yield 1


async def fetch() -> int:
    return 1


def decide(reach: Reach, function: object, module: object = None) -> bool:
    code = function.__code__  # type: ignore[attr-defined]
    return reach(code, module if module is not None else function.__module__)  # type: ignore[attr-defined]


def test_the_users_code_is_traced_through_and_libraries_are_leaves() -> None:
    reach = Reach()
    assert decide(reach, mine)
    assert not decide(reach, json.dumps)  # the standard library
    assert not decide(reach, xcs_bc.testing.FakeLLM.__call__)  # xcs_bc itself
    assert not decide(reach, produce) and not decide(reach, fetch)  # generators and coroutines
    installed = compile("def f(): pass", "/venv/lib/python3.12/site-packages/client/api.py", "exec")
    code = next(const for const in installed.co_consts if isinstance(const, types.CodeType))
    assert not reach(code, "client.api")
    assert Reach(through=["client"])(code, "client.api")
    assert not Reach(through=["client"], leaves=["client.api"])(code, "client.api")  # leaves win
    assert reach(mine.__code__, None)  # code exec'd without a module name: the user's


def test_leaves_by_module_cover_submodules_and_by_function_that_function() -> None:
    assert not decide(Reach(leaves=[__name__.split(".")[0]]), mine)
    assert decide(Reach(leaves=[__name__ + "_other"]), mine)  # a prefix of a name is no parent module
    assert not decide(Reach(leaves=[mine]), mine)
    assert not decide(Reach(leaves=[Reach.__call__]), Reach.__call__, "app")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"leaves": "openai"}, "for one, write leaves=['openai']"),
        ({"leaves": [1.5]}, "leaves= takes module names and Python functions, got 1.5"),
        ({"leaves": ["a..b"]}, "'a..b', which is no module name"),
        ({"through": [mine]}, "through= takes module names (strings)"),
        ({"through": 3}, "through= takes a list of module names, got 3"),
    ],
)
def test_bad_options_name_what_is_wrong(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Reach(**options)  # type: ignore[arg-type]
    assert message in str(info.value)
