"""Analysis passes over hand-built graphs: dependencies, levels, groups, critical path, patterns."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from irfactory import (
    GraphFactory,
    attr,
    chain_graph,
    control_graph,
    empty_graph,
    ensemble_graph,
    expr,
    fstring,
    it,
    judge_graph,
    map_graph,
    random_graphs,
    two_maps_graph,
    unknown_graph,
)
from xcs_bc.analyze import patterns
from xcs_bc.analyze.patterns import Pattern
from xcs_bc.errors import IRError
from xcs_bc.ir import ComputationGraph, Operation, OpType, Site, Source, ValueRef, passes
from xcs_bc.ir.check import check
from xcs_bc.ir.passes import CriticalPath


def ids(ops: object) -> list[int]:
    """Operation ids, sorted, of a set or tuple of operations."""
    assert isinstance(ops, (set, tuple, list))
    return sorted(op.id for op in ops)


def kinds(graph: ComputationGraph) -> list[tuple[str, list[int]]]:
    return [(p.kind, [op.id for op in p.operations]) for p in patterns.patterns(graph)]


# --- dependencies, levels, independent sets ---------------------------------


def test_dependencies_follow_deps_of_inputs_and_control() -> None:
    graph = judge_graph()
    a, b, judge = graph.operations
    assert passes.dependencies(graph, a) == set()
    assert passes.dependencies(graph, judge) == {a, b}
    assert graph.dependencies(judge) == {a, b}  # the IR method delegates here


def test_dependencies_include_control() -> None:
    graph = control_graph()
    classify, log, escalate = graph.operations
    assert passes.dependencies(graph, escalate) == {classify}
    assert passes.control_dependencies(graph, escalate) == {classify}
    assert passes.control_dependencies(graph, log) == set()


def test_levels_are_asap() -> None:
    assert passes.levels(chain_graph()) == {0: 0, 1: 1, 2: 2, 3: 3}
    assert passes.levels(judge_graph()) == {0: 0, 1: 0, 2: 1}
    assert judge_graph().levels() == {0: 0, 1: 0, 2: 1}


def test_ensemble_of_five_on_one_prompt_runs_together() -> None:
    graph = ensemble_graph()
    assert [ids(group) for group in passes.independent_sets(graph)] == [[0, 1, 2, 3, 4]]
    assert graph.independent_sets() == passes.independent_sets(graph)


def test_map_over_docs_runs_together() -> None:
    assert [ids(group) for group in passes.independent_sets(map_graph(8))] == [list(range(8))]


def test_pure_chain_has_no_group() -> None:
    assert passes.independent_sets(chain_graph()) == []


def test_two_maps_then_combine() -> None:
    graph = two_maps_graph()
    assert [ids(group) for group in passes.independent_sets(graph)] == [[0, 1, 2, 3, 4, 5]]
    assert passes.levels(graph)[6] == 1


def test_unknown_argument_depends_on_everything_before_it() -> None:
    graph = unknown_graph()
    a, b, c, d = graph.operations
    assert passes.dependencies(graph, c) == {a, b}
    # d comes after the unknown value but does not read it: it still needs nothing.
    assert [ids(group) for group in passes.independent_sets(graph)] == [[0, 1, 3]]


def test_groups_are_in_level_order() -> None:
    g = GraphFactory()
    x = g.input("x")
    first = [g.call("f", it(x, index), line=1) for index in range(2)]
    g.call("g", first[0], line=2)
    g.call("g", first[1], line=2)
    g.call("h", x, line=3)  # level 0 too
    assert [ids(group) for group in passes.independent_sets(g.graph())] == [[0, 1, 4], [2, 3]]


def test_empty_graph() -> None:
    graph = empty_graph()
    assert passes.levels(graph) == {}
    assert passes.independent_sets(graph) == []
    assert passes.critical_path(graph) == CriticalPath((), 0.0)
    assert passes.sequential_seconds(graph) == 0.0
    assert passes.speedup_bound(graph) == 1.0
    assert patterns.patterns(graph) == []


# --- critical path and speedup bound ----------------------------------------


def test_critical_path_follows_the_longest_durations() -> None:
    graph = judge_graph(durations=(1.0, 3.0, 2.0))
    path = passes.critical_path(graph)
    assert ids(path.operations) == [1, 2]
    assert path.seconds == pytest.approx(5.0)
    assert graph.critical_path() == path
    assert passes.sequential_seconds(graph) == pytest.approx(6.0)


def test_critical_path_without_durations_is_the_longest_chain() -> None:
    path = passes.critical_path(chain_graph())
    assert [op.name for op in path.operations] == ["draft", "critique", "revise", "polish"]
    assert path.seconds == 0.0


def test_critical_path_ties_prefer_smaller_ids() -> None:
    path = passes.critical_path(judge_graph(durations=(1.0, 1.0, 1.0)))
    assert ids(path.operations) == [0, 2]


def test_speedup_bound_keeps_time_outside_calls() -> None:
    # Calls: 1 + 3 + 2 = 6 s sequential; critical 5 s; 1 s outside the calls.
    graph = judge_graph(durations=(1.0, 3.0, 2.0), wall_time=7.0)
    assert passes.speedup_bound(graph) == pytest.approx(7.0 / 6.0)


def test_speedup_bound_without_wall_time_uses_sequential_time() -> None:
    graph = map_graph(4, duration=1.0)
    assert passes.speedup_bound(graph) == pytest.approx(4.0)


@pytest.mark.parametrize("wall", [0.0, -1.0, 0.5])
def test_speedup_bound_is_never_below_one(wall: float) -> None:
    # wall < sequential: the calls already overlapped; wall <= 0: a broken clock.
    assert passes.speedup_bound(map_graph(4, duration=1.0)) >= 1.0
    graph = map_graph(4, duration=1.0)
    graph.metadata["wall_time"] = wall
    assert passes.speedup_bound(graph) == 1.0


def test_speedup_bound_of_a_chain_is_one() -> None:
    assert passes.speedup_bound(chain_graph(duration=0.5)) == pytest.approx(1.0)


# --- patterns ----------------------------------------------------------------


def test_map_pattern_names_the_iterated_input() -> None:
    graph = map_graph(8)
    assert patterns.patterns(graph) == [
        Pattern(
            "map",
            tuple(graph.operations),
            "8 calls at pipeline.py:14 are independent: a map of summarize over docs",
        )
    ]


def test_map_pattern_through_an_fstring_and_attribute_path() -> None:
    g = GraphFactory()
    self_ = g.input("self")
    for index in range(3):
        text = attr(it(attr(self_, "docs"), index), "text")  # self.docs[k].text
        g.call("summarize", fstring("Summarize: ", text), line=7)
    (pattern,) = patterns.patterns(g.graph())
    assert (
        pattern.description == "3 calls at pipeline.py:7 are independent: a map of summarize over self.docs"
    )


def test_map_without_iterated_input_names_no_container() -> None:
    g = GraphFactory()
    x = g.input("x")
    for _ in range(3):
        g.call("sample", x, line=5)
    (pattern,) = patterns.patterns(g.graph())
    assert pattern.description == "3 calls at pipeline.py:5 are independent: a map of sample"


def test_same_site_in_a_dependent_loop_is_no_map() -> None:
    g = GraphFactory()
    value = g.input("x")
    for _ in range(3):
        value = g.call("refine", value, line=5)
    assert kinds(g.graph()) == [("chain", [0, 1, 2])]


def test_ensemble_of_five_models() -> None:
    found = kinds(ensemble_graph())
    assert found == [("ensemble", [0, 1, 2, 3, 4]), ("reduce", [0, 1, 2, 3, 4, 5])]
    ensemble = patterns.patterns(ensemble_graph())[0]
    assert ensemble.description == (
        "5 independent calls receive the same arguments: an ensemble of "
        "ask_gpt, ask_claude, ask_gemini, ask_llama, ask_mistral"
    )


def test_ensemble_over_a_list_of_models_at_one_site_is_also_a_map() -> None:
    g = GraphFactory()
    models = g.input("models")
    prompt = g.input("prompt")
    for index in range(3):
        g.call("Model.__call__", prompt, line=9, callee=it(models, index))
    found = patterns.patterns(g.graph())
    assert [(p.kind, ids(p.operations)) for p in found] == [("map", [0, 1, 2]), ("ensemble", [0, 1, 2])]
    assert found[0].description.endswith("a map of Model.__call__ over models")
    assert found[1].description.endswith("an ensemble of Model.__call__ at pipeline.py:9")


def test_same_call_repeated_at_one_site_is_not_an_ensemble() -> None:
    g = GraphFactory()
    prompt = g.input("prompt")
    for _ in range(3):
        g.call("llm", prompt, line=4)
    assert kinds(g.graph()) == [("map", [0, 1, 2])]


def test_ensemble_needs_equal_arguments_by_provenance() -> None:
    g = GraphFactory()
    x = g.input("x")
    g.call("f", fstring("q: ", x), 1, line=1)
    g.call("g", fstring("q: ", x), 1, line=2)
    g.call("h", fstring("q: ", x), True, line=3)  # True is not 1
    g.call("k", fstring("Q: ", x), 1, line=4)  # another text
    g.call("m", g.unknown(), line=5)
    g.call("n", g.unknown(), line=6)  # unknown values are never known equal
    found = [(p.kind, ids(p.operations)) for p in patterns.patterns(g.graph()) if p.kind == "ensemble"]
    assert found == [("ensemble", [0, 1])]


def test_calls_without_arguments_are_no_ensemble() -> None:
    g = GraphFactory()
    g.call("fetch_users", line=1)
    g.call("fetch_orders", line=2)
    assert kinds(g.graph()) == []


def test_judge_over_candidates_is_a_reduce() -> None:
    found = patterns.patterns(judge_graph())
    assert [(p.kind, ids(p.operations)) for p in found] == [("ensemble", [0, 1]), ("reduce", [0, 1, 2])]
    reduce = found[1]
    assert reduce.operations[-1].name == "judge"
    assert reduce.description == "judge at judge.py:12 combines 2 independent results: %0 gen_a, %1 gen_b"


def test_chain_pattern() -> None:
    (pattern,) = patterns.patterns(chain_graph())
    assert pattern.kind == "chain"
    assert pattern.description == (
        "4 calls form a chain: draft -> critique -> revise -> polish; they cannot overlap"
    )


def test_chain_through_unknown_values() -> None:
    # Each call reads an unknown value, so it needs *all* earlier calls; the
    # transitive reduction still shows a chain.
    g = GraphFactory()
    for line in range(1, 4):
        g.call("step", g.unknown(), line=line)
    assert kinds(g.graph()) == [("chain", [0, 1, 2])]


def test_two_calls_are_no_chain_and_forks_split_chains() -> None:
    g = GraphFactory()
    x = g.input("x")
    a = g.call("a", x, line=1)
    g.call("b", a, line=2)
    b = g.call("b2", a, line=3)  # a forks into b and b2: no chain through a
    g.call("c", b, line=4)
    assert [kind for kind, _ in kinds(g.graph())] == ["ensemble"]  # b and b2 both read a

    g = GraphFactory()
    g.call("c", g.call("a", g.input("x"), line=1), line=2)  # two calls are too short for a chain
    assert kinds(g.graph()) == []


def test_two_maps_then_combine_patterns() -> None:
    found = kinds(two_maps_graph())
    assert found == [("map", [0, 1, 2]), ("reduce", [0, 1, 2, 3, 4, 5, 6]), ("map", [3, 4, 5])]
    descriptions = [p.description for p in patterns.patterns(two_maps_graph())]
    assert descriptions[2] == "3 calls at pipeline.py:21 are independent: a map of caption over self.images"


def test_reduce_uses_only_immediate_dependencies() -> None:
    # c needs a and b, d needs c and (again) a: d reduces nothing new.
    g = GraphFactory()
    x = g.input("x")
    a = g.call("a", x, line=1)
    b = g.call("b", x, line=2)
    c = g.call("c", a, b, line=3)
    g.call("d", c, a, line=4)
    assert [(k, o) for k, o in kinds(g.graph()) if k == "reduce"] == [("reduce", [0, 1, 2])]


def test_patterns_of_the_unknown_and_control_graphs() -> None:
    assert kinds(unknown_graph()) == [("ensemble", [0, 1, 3]), ("reduce", [0, 1, 2])]
    assert kinds(control_graph()) == [("ensemble", [0, 1])]


# --- broken graphs ------------------------------------------------------------


def _op(op_id: int, deps: frozenset[int]) -> Operation:
    callee = ValueRef(Source.GLOBAL, name="f")
    arg = ValueRef(Source.OUTPUT, op=min(deps, default=0), deps=deps)
    return Operation(op_id, OpType.CALL, "f", Site("x.py", 1, "run", 0), (callee, arg), ())


def test_forward_dependence_raises_irerror() -> None:
    graph = ComputationGraph([_op(0, frozenset({1})), _op(1, frozenset())])
    with pytest.raises(IRError, match="%0 f at x.py:1 depends on %1, which is not an earlier operation"):
        passes.levels(graph)
    with pytest.raises(IRError):
        patterns.patterns(graph)
    with pytest.raises(IRError):
        passes.critical_path(graph)


def test_dependence_on_a_missing_operation_raises_irerror() -> None:
    graph = ComputationGraph([_op(0, frozenset({7}))])
    with pytest.raises(IRError, match="depends on %7, which is not in the graph"):
        passes.dependencies(graph, graph.operations[0])


# --- properties over random graphs --------------------------------------------


@settings(max_examples=150, deadline=None)
@given(random_graphs())
def test_properties_of_random_graphs(graph: ComputationGraph) -> None:
    check(graph)
    levels = passes.levels(graph)
    ancestors = _closure(graph)
    for op in graph.operations:
        for dep in passes.dependencies(graph, op):
            assert levels[dep.id] < levels[op.id]
    for group in passes.independent_sets(graph):
        assert len(group) >= 2
        assert all(not ancestors[a.id] & {b.id for b in group} for a in group)
    path = passes.critical_path(graph)
    for before, after in zip(path.operations, path.operations[1:], strict=False):
        assert before in passes.dependencies(graph, after)
    assert path.seconds == pytest.approx(sum(op.duration for op in path.operations))
    assert path.seconds <= passes.sequential_seconds(graph) + 1e-9
    assert all(path.seconds + 1e-9 >= op.duration for op in graph.operations)
    assert passes.speedup_bound(graph) >= 1.0
    for pattern in patterns.patterns(graph):
        _assert_pattern_holds(graph, pattern, ancestors)


def _closure(graph: ComputationGraph) -> dict[int, set[int]]:
    """Every operation's transitive dependencies, computed the slow, obvious way."""
    closure: dict[int, set[int]] = {}
    for op in graph.operations:
        closure[op.id] = set()
        for dep in passes.dependencies(graph, op):
            closure[op.id] |= {dep.id} | closure[dep.id]
    return closure


def _assert_pattern_holds(graph: ComputationGraph, pattern: Pattern, ancestors: dict[int, set[int]]) -> None:
    ops = pattern.operations
    if pattern.kind in ("map", "ensemble"):
        assert len(ops) >= 2
        assert all(not ancestors[a.id] & {b.id for b in ops} for a in ops)
    if pattern.kind == "map":
        assert len({op.site for op in ops}) == 1
    if pattern.kind == "chain":
        assert len(ops) >= 3
        for before, after in zip(ops, ops[1:], strict=False):
            assert before in passes.dependencies(graph, after)
            assert ancestors[after.id] == {before.id} | ancestors[before.id]
    if pattern.kind == "reduce":
        *inputs, reducer = ops
        assert len(inputs) >= 2
        assert all(op.id in ancestors[reducer.id] for op in inputs)
        assert all(not ancestors[a.id] & {b.id for b in inputs} for a in inputs)


def test_reads_unknown_looks_through_operands_and_control() -> None:
    g = GraphFactory()
    x = g.input("x")
    g.call("a", x, line=1)
    g.call("b", fstring("q: ", g.unknown()), line=2)
    g.call("c", x, line=3, control=[expr("not", g.unknown())])
    a, b, c = g.graph().operations
    assert [passes.reads_unknown(op) for op in (a, b, c)] == [False, True, True]


def test_same_name_read_after_a_call_that_may_change_it_is_not_the_same_argument() -> None:
    g = GraphFactory()
    prompt = g.input("prompt")
    g.call("mutate", prompt, line=1)
    changed = ValueRef(Source.INPUT, name="prompt", deps=frozenset({0}))
    g.call("f", changed, line=2)
    g.call("g", prompt, line=3)
    g.call("h", changed, line=4)
    ensembles = [ids(p.operations) for p in patterns.patterns(g.graph()) if p.kind == "ensemble"]
    assert ensembles == [[0, 2], [1, 3]]


def test_dependencies_on_a_graph_whose_ids_are_not_positions() -> None:
    graph = judge_graph()
    a, b, judge = graph.operations
    shuffled = ComputationGraph([judge, a, b])
    assert passes.dependencies(shuffled, judge) == {a, b}
