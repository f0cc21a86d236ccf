"""`xcs.capture()` around a call of untouched code traces through the user's functions.

The block calls into code it does not contain (`tests/untouched.py`, the legacy pipelines of
`tests/pipelines_legacy.py`): the graph holds the slow calls made inside, at any depth, with the
stack of functions each was made in, and the dependencies between them.  On every version:
the same dump; the block runs as it does without the capture (results, exceptions, the calls
the fakes received); and every graph is sound: a call whose arguments hold the text another
call returned depends on it.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from test_jit_pipelines import calls_of, fresh_state, outcome

import pipelines_legacy as legacy
import untouched as U
import xcs_bc as xcs
from strategies import Grammar, Inputs, Program, input_sequences, programs
from xcs_bc import ComputationGraph
from xcs_bc.analyze.wrapping import worth_wrapping
from xcs_bc.ir.check import check
from xcs_bc.observe import hooks
from xcs_bc.testing import FakeLLM, FakeLLMError

MIN_MS = 10.0  # the fakes take 20-25 ms; the glue far less


def deps(graph: ComputationGraph) -> dict[int, list[int]]:
    return {op.id: sorted(dep.id for dep in graph.dependencies(op)) for op in graph.operations}


def stacks(graph: ComputationGraph) -> list[list[str]]:
    return [[caller.function for caller in op.stack] for op in graph.operations]


def well_formed(graph: ComputationGraph) -> ComputationGraph:
    check(graph)
    assert graph.metadata["resyncs"] == [], "the shadow stack lost track of the real one"
    return graph


def ancestors(graph: ComputationGraph) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for op in graph.operations:  # (in id order: an op's dependencies come before it)
        found: set[int] = set()
        for dep in graph.dependencies(op):
            found |= {dep.id} | out[dep.id]
        out[op.id] = found
    return out


def assert_sound(graph: ComputationGraph) -> None:
    """A call whose arguments hold the text an earlier call returned depends on that call (or on one
    of the calls that returned the same text)."""
    above = ancestors(graph)
    made: dict[str, set[int]] = {}
    for op in graph.operations:
        arguments = op.metadata.get("args")
        if arguments is not None:
            text = repr(arguments)
            for result, ops in made.items():
                assert ops & above[op.id] or result not in text, (
                    f"%{op.id} {op.name} was handed the result of {sorted(ops)} but does not depend on it\n"
                    f"{graph}"
                )
        value = op.outputs[0].value if op.outputs else None
        if isinstance(value, str) and len(value) >= 10:
            made.setdefault(value, set()).add(op.id)


# -- an untouched module -----------------------------------------------------------------------------


def _capture_report() -> tuple[xcs.capture, str]:
    with xcs.capture(min_call_ms=MIN_MS) as cap:
        out = U.report("ai", ["d1", "d2"])
    return cap, out


GOLDEN = """\
graph _capture_report@{line}():
  in report:                                                                    # test_capture_through.py:{call}
    %0 = call search('ai')                                                      # untouched.py:65
    in analyze:                                                                 # untouched.py:66
      in outline:                                                               # untouched.py:53
        in outline:                                                             # untouched.py:25
          in Client.ask:                                                        # untouched.py:45
            %1 = call llm(effect(Client(llm, '> ')).prefix + f"Outline: {{format('d1')}}")  # untouched.py:40
      in keywords:                                                              # untouched.py:53
        in Client.ask:                                                          # untouched.py:49
          %2 = call llm(effect(Client(llm, '> ')).prefix + f"Keywords ({{format(STYLE['tone'])}}): {{format('d1')}}")  # untouched.py:40
    in analyze:                                                                 # untouched.py:66
      in outline:                                                               # untouched.py:53
        in outline:                                                             # untouched.py:25
          in Client.ask:                                                        # untouched.py:45
            %3 = call llm(effect(Client(llm, '> ')).prefix + f"Outline: {{format('d2')}}")  # untouched.py:40
      in keywords:                                                              # untouched.py:53
        in Client.ask:                                                          # untouched.py:49
          %4 = call llm(effect(Client(llm, '> ')).prefix + f"Keywords ({{format(STYLE['tone'])}}): {{format('d2')}}")  # untouched.py:40
    in make_checker.<locals>.check:                                             # untouched.py:69
      in Client.ask:                                                            # untouched.py:58
        %5 = call llm(effect(Client(llm, '> ')).prefix + f"Check: {{format(%0 + '\\n'.join(generated(%1 + %2, %3 + %4)))}}")  # untouched.py:40
parallel %0, %1, %2, %3, %4"""


def test_the_calls_inside_an_untouched_function_print_alike_on_every_version() -> None:
    U.llm.reset()
    plain = U.report("ai", ["d1", "d2"])
    plain_calls = U.llm.calls
    U.llm.reset()
    cap, out = _capture_report()
    assert out == plain and U.llm.calls == plain_calls
    graph = well_formed(cap.graph)
    line = _capture_report.__code__.co_firstlineno
    assert str(graph) == GOLDEN.format(line=line + 1, call=line + 2)
    # a decorator's wrapper, a method, a class's __init__ and a closure over a client were traced
    assert deps(graph) == {0: [], 1: [], 2: [], 3: [], 4: [], 5: [0, 1, 2, 3, 4]}
    assert stacks(graph)[1] == ["report", "analyze", "outline", "outline", "Client.ask"]
    assert [str(caller.site) for caller in graph.operations[5].stack][1:] == [
        "untouched.py:69",
        "untouched.py:58",
    ]
    report = cap.report()
    assert "5 calls at untouched.py:40-65 are independent: search, llm x4 (%0-%4)" in report


def test_the_reports_share_for_the_jit_is_what_the_jit_issues_ahead() -> None:
    """The capture saw that `Client.ask` changes only `client.sent`; the jit cannot look inside the
    `analyze` helper, so its second call waits for the first: the report says so, and the jit does."""
    cap, _ = _capture_report()
    wraps = {wrap.function: wrap for wrap in worth_wrapping(cap.graph)}
    report = wraps["report"]
    # search | analyze, analyze (one after the other) | check: about 20 of the 60 ms the dataflow allows
    assert report.bound < report.today < report.sequential
    assert report.held == (
        "analyze (untouched.py:66) waits for the call before it, a helper call handed the same Client "
        "(`client`), which it may change (to the jit's plan a helper call is one call)"
    )
    assert "    of which the jit saves about " in cap.report()
    assert wraps["analyze"].today == pytest.approx(wraps["analyze"].sequential)  # outline, then keywords
    fast = xcs.jit(U.report, min_call_ms=MIN_MS)
    for _ in range(2):
        fast("ai", ["d1", "d2"])
    said = [line.split(": ", 1)[1] for line in fast.explain().splitlines() if " analyze at " in line]
    # (once the Client is made: its result, or on 3.10 and 3.11 the comprehension's cell, read then)
    assert said[0].startswith("issued ahead "), fast.explain()
    assert said[1].startswith("runs in its turn, because "), fast.explain()
    assert "analyze() at untouched.py:66" in said[1], fast.explain()


def test_a_leaf_named_by_module_or_function_is_one_call() -> None:
    with xcs.capture(min_call_ms=MIN_MS, leaves=["untouched"]) as cap:
        U.report("ai", ["d1"])
    assert [op.name for op in cap.graph.operations] == ["report"]
    with xcs.capture(min_call_ms=MIN_MS, leaves=[U.analyze, U.Client.ask]) as cap:
        U.report("ai", ["d1"])
    graph = well_formed(cap.graph)
    assert [op.name for op in graph.operations] == ["search", "analyze", "Client.ask"]
    assert stacks(graph) == [["report"], ["report"], ["report", "make_checker.<locals>.check"]]


# -- legacy pipelines: run as plain, and a sound graph ------------------------------------------------


def _chunks(n: int) -> list[legacy.Chunk]:
    return [legacy.Chunk(f"a-{i}", f"passage {i}", 0.9 - i / 10) for i in range(n)]


def _rag() -> legacy.RAGPipeline:
    return legacy.RAGPipeline(legacy.Retriever(legacy.search_backend), legacy.LLMClient(legacy.llm))


def _chat() -> list[str]:
    session = legacy.ChatSession(legacy.LLMClient(legacy.llm))
    return [session.reply("hello"), session.reply("and then?")]


LEGACY: dict[str, Callable[[], Any]] = {
    "rag": lambda: _rag().answer("the big revenue growth today"),
    "rag over chunks": lambda: _rag().answer_over("q", _chunks(3)),
    "agent": lambda: legacy.run_agent("weather in Paris tomorrow"),
    "best of n": lambda: legacy.best_of_n("q", [legacy.llm, legacy.writer, legacy.checker]),
    "rank by judge": lambda: legacy.rank_by_judge("q", ["a", "b", "c"]),
    "relevant": lambda: legacy.answer_from_relevant("q", ["[relevant] one", "two", "[relevant] three"]),
    "map reduce": lambda: legacy.map_reduce(
        [legacy.Doc(title="t", body="x" * 50), legacy.Doc(title="u", body="y")]
    ),
    "map reduce textwrap": lambda: legacy.map_reduce_textwrap([legacy.Doc(title="t", body="a b c d " * 8)]),
    "helper retry": lambda: legacy.summarize_with_helper_retry(["a", "flaky b", "c"]),
    "inline retry": lambda: legacy.summarize_with_inline_retry(["a", "flaky", "down"]),
    "while retry raises": lambda: legacy.summarize_with_while_retry(["a", "down"]),
    "self consistency": lambda: legacy.self_consistency("q"),
    "triage": lambda: legacy.triage(
        [{"id": "1", "subject": "s", "body": "b"}, {"id": "2", "subject": "t", "body": "c"}]
    ),
    "moderator": lambda: legacy.Moderator(legacy.LLMClient(legacy.llm)).moderate(["p1", "p2"]),
    "chat": _chat,
    "summarizer": lambda: legacy.Summarizer(legacy.LLMClient(legacy.llm)).summarize_all(["a", "b"]),
    "research agent": lambda: legacy.ResearchAgent().run("ai"),
    "assistant": lambda: legacy.Assistant().answer("u1", "q"),
    "translate": lambda: legacy.translate_and_check("hello"),
    "balanced": lambda: legacy.balanced_summaries(["a", "b"]),
    "audited": lambda: legacy.audited_answers(["q1", "q2"]),
    "few shot": lambda: legacy.few_shot_classify(["t1", "t2"]),
}


def _fresh() -> None:
    fresh_state()
    legacy._REQUEST_NO = 0


@pytest.mark.parametrize("name", sorted(LEGACY))
def test_a_legacy_pipeline_runs_as_plain_under_capture_and_its_graph_is_sound(name: str) -> None:
    run = LEGACY[name]
    _fresh()
    plain, plain_calls = outcome(run), calls_of(*legacy.ALL_FAKES)
    _fresh()

    def captured() -> Any:
        with xcs.capture(min_call_ms=MIN_MS) as cap:
            holder.append(cap)
            return run()

    holder: list[xcs.capture] = []
    got, got_calls = outcome(captured), calls_of(*legacy.ALL_FAKES)
    assert got == plain and got_calls == plain_calls
    graph = well_formed(holder[0].graph)
    assert len(graph.operations) == sum(plain_calls.values())  # every fake's call, seen inside
    assert all(op.stack for op in graph.operations)  # made inside the pipeline's functions
    assert_sound(graph)
    holder[0].report()  # (reads every operation's stack and site)


def test_a_map_over_documents_inside_a_helper_is_found_independent() -> None:
    _fresh()
    with xcs.capture(min_call_ms=MIN_MS) as cap:
        _rag().answer_over("q", _chunks(3))
    graph = well_formed(cap.graph)
    assert deps(graph) == {0: [], 1: [], 2: [], 3: [0, 1, 2]}
    assert stacks(graph)[0] == ["RAGPipeline.answer_over", "LLMClient.complete"]


def test_state_kept_on_self_between_methods_is_a_dependency() -> None:
    _fresh()
    with xcs.capture(min_call_ms=MIN_MS) as cap:
        legacy.ResearchAgent().run("ai")
    graph = well_formed(cap.graph)
    # gather() stores the two searches in self.notes; write_report() reads them
    assert deps(graph) == {0: [], 1: [], 2: [0, 1]}
    assert stacks(graph)[2] == ["ResearchAgent.run", "ResearchAgent.write_report"]


# -- values across frames ------------------------------------------------------------------------------

llm = FakeLLM("llm", 0.02)
other = FakeLLM("other", 0.02)
CONFIG: dict[str, str] = {}
LAST = ""


class Store:
    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def put(self, key: str, value: str) -> None:
        self.data[key] = value

    def get(self, key: str) -> str:
        return self.data[key]


def fill(store: Store, text: str) -> None:
    store.put("answer", llm(text))


def set_last(value: str) -> None:
    global LAST
    LAST = value


def use_last() -> str:
    return other(LAST)


def test_values_flow_through_attributes_containers_and_globals_across_functions() -> None:
    with xcs.capture(min_call_ms=MIN_MS) as cap:
        store = Store()
        fill(store, "q")
        first = other(store.get("answer"))  # a dict held by an object, filled in a method
        set_last(llm("r"))
        second = use_last()  # a global assigned in one function, read in another
        CONFIG["mode"] = llm("s")
        third = other(CONFIG["mode"])  # a module's dict
        alone = other("t")
    graph = well_formed(cap.graph)
    assert (first, second, third, alone) == ("other(llm(q))", "other(llm(r))", "other(llm(s))", "other(t)")
    assert deps(graph) == {0: [], 1: [0], 2: [], 3: [2], 4: [], 5: [4], 6: []}


def _descend(n: int) -> str:
    return llm(f"bottom {n}") if n == 0 else _descend(n - 1)


def test_recursion_deeper_than_the_follow_limit_ends_in_a_leaf() -> None:
    from xcs_bc.build.following import MAX_FOLLOW_DEPTH

    with xcs.capture(min_call_ms=MIN_MS) as cap:
        shallow = _descend(3)
        deep = _descend(MAX_FOLLOW_DEPTH + 10)
    graph = well_formed(cap.graph)
    assert (shallow, deep) == ("llm(bottom 0)", "llm(bottom 0)")
    assert [op.name for op in graph.operations] == ["llm", "_descend"]
    assert len(graph.operations[0].stack) == 4 and len(graph.operations[1].stack) == MAX_FOLLOW_DEPTH


def _summarize(doc: str) -> str:
    return llm(f"Summarize: {doc}")


def test_functions_a_builtin_calls_back_are_traced_through() -> None:
    """`list(map(f, docs))` and `sorted(xs, key=...)` call back the user's functions: the slow calls
    made in them are seen, each depending on what the built-in was handed."""
    with xcs.capture(min_call_ms=MIN_MS) as cap:
        summaries = list(map(_summarize, ["a", "b"]))
        ranked = sorted(["x", "y"], key=lambda text: llm(f"Rate {text}"))
        judged = other(" ".join(ranked))
    assert summaries == ["llm(Summarize: a)", "llm(Summarize: b)"] and judged == "other(x y)"
    graph = well_formed(cap.graph)
    assert [op.name for op in graph.operations] == ["llm"] * 4 + ["other"]
    assert stacks(graph)[:2] == [["_summarize"], ["_summarize"]]
    assert stacks(graph)[2][0].endswith("<lambda>")
    # the order `sorted` returns depends on the keys: the last call depends on them (and, as what a
    # built-in makes of what its call-backs did is not modelled, on every call before it)
    assert deps(graph) == {0: [], 1: [], 2: [], 3: [], 4: [0, 1, 2, 3]}


def _boom_key(text: str) -> str:
    return failing(text)


def test_a_call_back_that_raises_ends_the_builtin_like_plain() -> None:
    with pytest.raises(FakeLLMError):
        with xcs.capture(min_call_ms=MIN_MS) as cap:
            sorted(["a", "boom"], key=_boom_key)
    graph = well_formed(cap.graph)
    assert [op.name for op in graph.operations] == ["failing", "failing"]
    assert "exception" in graph.operations[1].metadata


# -- exceptions ----------------------------------------------------------------------------------------

failing = FakeLLM("failing", 0.02, fail_on="boom")


def _inner(text: str) -> str:
    return failing(text)


def _middle(text: str) -> str:
    return _inner(text).upper()


def _guarded(text: str) -> str:
    try:
        return failing(text)
    except FakeLLMError:
        return llm("fallback")


def test_an_exception_deep_inside_propagates_unchanged_with_its_call_recorded() -> None:
    with pytest.raises(FakeLLMError) as info:
        with xcs.capture(min_call_ms=MIN_MS) as cap:
            llm("before")
            _middle("boom")
    assert "failing failed on 'boom'" in str(info.value)
    graph = well_formed(cap.graph)
    assert [op.name for op in graph.operations] == ["llm", "failing"]
    assert graph.operations[1].metadata["exception"] is info.value
    assert stacks(graph)[1] == ["_middle", "_inner"]
    assert graph.metadata["exception"] is info.value


def test_an_exception_handled_inside_a_helper_is_a_branch_of_that_helper() -> None:
    with xcs.capture(min_call_ms=MIN_MS) as cap:
        a = _guarded("boom")
        b = _guarded("fine")
        c = other("independent")
    graph = well_formed(cap.graph)
    assert (a, b, c) == ("llm(fallback)", "failing(fine)", "other(independent)")
    assert [op.name for op in graph.operations] == ["failing", "llm", "failing", "other"]
    # the fallback runs because the first call raised; the later calls do not depend on it
    assert deps(graph) == {0: [], 1: [0], 2: [], 3: []}


# -- options and hooks ---------------------------------------------------------------------------------

INSTALLED = """\
from xcs_bc.testing import FakeLLM

llm = FakeLLM("pkg", 0.02)


def ask(text):
    return llm(text)
"""


def test_installed_packages_are_leaves_unless_named_in_through(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / "fakepkg_for_capture.py").write_text(textwrap.dedent(INSTALLED))
    sys.path.insert(0, str(site))
    try:
        import fakepkg_for_capture as pkg
    finally:
        sys.path.remove(str(site))
    try:
        with xcs.capture(min_call_ms=MIN_MS) as cap:
            pkg.ask("x")
        assert [(op.name, op.stack) for op in cap.graph.operations] == [("ask", ())]
        with xcs.capture(min_call_ms=MIN_MS, through=["fakepkg_for_capture"]) as cap:
            pkg.ask("x")
        assert [op.name for op in cap.graph.operations] == ["pkg"]
        assert stacks(cap.graph) == [["ask"]]
        with xcs.capture(
            min_call_ms=MIN_MS, through=["fakepkg_for_capture"], leaves=["fakepkg_for_capture"]
        ) as cap:
            pkg.ask("x")
        assert [op.name for op in cap.graph.operations] == ["ask"]  # leaves wins
    finally:
        sys.modules.pop("fakepkg_for_capture", None)


@pytest.mark.parametrize(  # (every message: tests/observe/test_reach.py)
    ("options", "message"),
    [
        ({"leaves": "openai"}, "for one, write leaves=['openai']"),
        ({"through": None}, "through= takes a list of module names, got None"),
    ],
)
def test_bad_leaves_or_through_are_refused_by_capture_itself(options: dict[str, Any], message: str) -> None:
    with pytest.raises(xcs.ConfigError) as info:
        xcs.capture(**options)
    assert message in str(info.value)


def test_following_leaves_no_hook_behind() -> None:
    with xcs.capture(min_call_ms=MIN_MS) as cap:
        U.report("ai", ["d1"])
    assert len(cap.graph.operations) == 4
    assert not hooks.is_observing() and sys.gettrace() is None
    if sys.version_info >= (3, 12):
        assert not hooks._tool.masks and hooks._tool.tool_id is None
        for tool_id in range(6):
            for code in (
                U.report.__code__,
                U.analyze.__code__,
                U.Client.ask.__code__,
                U.Client.__init__.__code__,
            ):
                assert sys.monitoring.get_local_events(tool_id, code) == 0


CELL = """\
import xcs_bc as xcs

def use():
    return other(data)

with xcs.capture(min_call_ms=10) as cap:
    data = llm("x")
    out = use()
    alone = other("y")
"""


def test_a_module_variable_assigned_in_the_block_is_a_global_of_the_functions_it_calls() -> None:
    """A block at a script's or a notebook cell's top level: `use()` reads the global `data` the
    block assigned from a slow call."""
    namespace: dict[str, Any] = {"llm": llm, "other": other, "__name__": "cell"}
    exec(compile(CELL, "<cell>", "exec"), namespace)
    graph = well_formed(namespace["cap"].graph)
    assert namespace["out"] == "other(llm(x))"
    assert deps(graph) == {0: [], 1: [0], 2: []}
    assert stacks(graph) == [[], ["use"], []]


def test_a_nonlocal_variable_a_nested_function_assigns_keeps_its_dependency() -> None:
    def outer() -> str:
        answer = ""

        def ask() -> None:
            nonlocal answer
            answer = llm("inner")

        ask()
        return other(answer)

    with xcs.capture(min_call_ms=MIN_MS) as cap:
        out = outer()
        alone = other("z")
    assert (out, alone) == ("other(llm(inner))", "other(z)")
    assert deps(well_formed(cap.graph)) == {0: [], 1: [0], 2: []}


def test_less_common_shapes_run_as_plain_and_give_a_sound_graph_alike_on_every_version() -> None:
    import capture_shapes as shapes

    plain = shapes.run()
    with xcs.capture(min_call_ms=2) as cap:
        got = shapes.run()
    assert got == plain
    graph = well_formed(cap.graph)
    assert len(graph.operations) == 27
    assert_sound(graph)


class Box:
    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get(self, key: str) -> str:  # pure: it only reads what it is handed
        return self.data[key]


def test_a_change_to_an_object_held_by_another_is_seen_by_a_call_handed_the_holder() -> None:
    with xcs.capture(min_call_ms=MIN_MS) as cap:
        rows: list[list[str]] = [[]]
        rows[0].append(llm("x"))
        a = other(str(rows))  # str() reads the inner list llm's result went into
        box = Box()
        box.data["k"] = llm("y")
        b = other(box.get("k"))  # a pure method reading self.data
        c = other("z")
    assert (a, b, c) == ("other([['llm(x)']])", "other(llm(y))", "other(z)")
    assert deps(well_formed(cap.graph)) == {0: [], 1: [0], 2: [], 3: [2], 4: []}


# -- generated programs -----------------------------------------------------------------------------


@settings(
    deadline=None,
    derandomize=True,
    database=None,
    max_examples=int(os.environ.get("XCS_BC_HUNT_EXAMPLES", "40")),
    suppress_health_check=list(HealthCheck),
)
@given(
    programs(
        Grammar(effects=True, resize_input=True, free_breaks=True, hidden=True, recent=True, tools=True)
    ),
    input_sequences(),
)
def test_generated_programs_run_as_plain_under_capture_and_give_sound_graphs(
    program: Program, sequence: list[Inputs]
) -> None:
    """The block calls the generated `f` (untouched): the capture traces through it, its helpers and
    its fakes' Python wrappers; the run is the plain one, and every graph is well formed and sound."""
    from test_jit_generated import Fakes, compile_program, outcome  # (its world: fakes, helpers, prelude)

    note(program.source)
    fakes = Fakes.make()
    fn = compile_program(program.source, fakes)
    for inputs in sequence[:2]:
        fakes.reset()
        plain, plain_log = outcome(fn, inputs), fakes.log()
        fakes.reset()
        with xcs.capture(min_call_ms=1.0) as cap:
            got = outcome(fn, inputs)
        assert got == plain and fakes.log() == plain_log
        graph = well_formed(cap.graph)
        assert_sound(graph)
