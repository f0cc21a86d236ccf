"""Memoized callees: every call that may share a cache entry must go through the dispatcher.

`memo_sites_dispatched` takes back the recipes of a memoized callee (`functools.cache` and
friends) when a replay could also call it somewhere the replay does not dispatch, where the call
would not wait for one issued ahead for the same key and both would miss the cache.
"""

from __future__ import annotations

import dis
import types
from dataclasses import replace

from xcs_bc.build import purity
from xcs_bc.build.trace import RunFacts
from xcs_bc.ir import ComputationGraph, OpType, Source, ValueRef
from xcs_bc.ir.values import describe_callee
from xcs_bc.plan.recipes import Recipe, Refusal, RefusalKind

__all__ = ["memo_sites_dispatched"]


def memo_sites_dispatched(
    graph: ComputationGraph, recipes: tuple[Recipe, ...], cutoff: int, run: RunFacts
) -> tuple[Recipe, ...]:
    """Calls of a memoized callee are issued ahead only when every place of the function that names it
    and a replay may run is a call site the replay dispatches.

    A replay never makes two calls at once that may read the same cache entry: a call issued ahead
    waits for a running one, and one made in its turn at a dispatched site waits too.  But a site is
    dispatched only when the trace made a slow call there: a cache hit is fast (glue, no operation),
    and a site on a path the trace did not take made none.  Such a site calls the wrapper directly,
    next to a call issued ahead for the same key, and both miss the cache: the function behind it
    runs twice where the plain run calls it once.  So the code of the function (and the code nested
    in it) must name the wrapper, by the names its planned calls reach it through or its own name:
    where the trace ran, only at dispatched call sites; where it did not, nowhere, unless the replay
    surely goes the trace's way (every branch it took was on values a guard checks, no exception was
    handled, and no decision cut the plan off), so that it does not run there either.  Nor may the
    callee of another planned call reach the wrapper (`purity.reaches`: a helper that calls it, or
    the jitted function called again).  (A helper calling it through an object or a cell is not
    seen: see the assumptions on hidden state in docs/jit.md.)
    """
    root, executed = run.root_code, run.executed
    guarded = not run.unguarded_paths and cutoff >= len(graph.operations)
    sites: dict[int, set[tuple[int, int]]] = {}  # id(wrapper) -> dispatched call sites that called it
    names: dict[int, set[str]] = {}  # id(wrapper) -> the names it is reached through
    wrappers: dict[int, object] = {}
    for recipe in recipes:
        op = recipe.op
        wrapper = purity.memo_wrapper(recipe.facts.callee)
        if wrapper is None or op.op_type is not OpType.CALL:
            continue
        wrappers[id(wrapper)] = wrapper
        sites.setdefault(id(wrapper), set()).add((id(recipe.facts.code), op.site.offset))
        found = names.setdefault(id(wrapper), {str(getattr(wrapper, "__name__", ""))})
        found.add(_handle(recipe.callee) or "")
    undispatched: dict[int, bool] = {}  # id(wrapper) -> may a replay call it where it is not dispatched?
    for key, wanted in names.items():
        ran, not_run = _loads(root, wanted, executed) if isinstance(root, types.CodeType) else (1, 1)
        undispatched[key] = "" in wanted or ran > len(sites[key]) or bool(not_run and not guarded)
    # and inside another planned call: a helper, or the jitted function itself called again, whose
    # code calls the wrapper (each replay waits only for its own calls of it)
    callees = {id(recipe.facts.callee): recipe.facts.callee for recipe in recipes}
    for wrapper in wrappers.values():
        undispatched[id(wrapper)] = undispatched[id(wrapper)] or any(
            purity.memo_wrapper(callee) is not wrapper and purity.reaches(callee, wrapper)
            for callee in callees.values()
        )
    reaching: dict[int, bool] = {}  # id(callee) -> may it call a memoized function (not being one)?
    out = []
    for recipe in recipes:
        callee = recipe.facts.callee
        wrapper = purity.memo_wrapper(callee) if recipe.ahead else None
        if recipe.ahead and wrapper is None:
            if id(callee) not in reaching:
                reaching[id(callee)] = purity.reaches_memo(callee)
            if reaching[id(callee)]:
                # a helper calling one: its calls issued at once could both miss an entry the second
                # would find, made one after the other (`summarize(d)` calling `@cache ask(p)`)
                why = (
                    f"its callee {describe_callee(callee)} may call a memoized function: calls made at "
                    "once could both miss a cache entry that, made in turn, the second would find"
                )
                recipe = replace(recipe, ahead=False, refusal=Refusal(RefusalKind.MEMO_UNDISPATCHED, why))
        if wrapper is not None and undispatched[id(wrapper)]:
            name = describe_callee(wrapper)
            why = (
                f"the function calls {name} (a memoized callee) at a site that is not dispatched too "
                "(a cache hit while tracing, or a path the trace did not take): it would not wait "
                "for a call issued ahead that fills the same cache entry"
            )
            recipe = replace(recipe, ahead=False, refusal=Refusal(RefusalKind.MEMO_UNDISPATCHED, why))
        out.append(recipe)
    return tuple(out)


def _handle(ref: ValueRef) -> str | None:
    """The name a callee ref is read by at its call site: a global, cell, input, or attribute."""
    if ref.path:
        last = ref.path[-1]
        return str(last.key) if last.kind == "attr" else None
    if ref.source in (Source.GLOBAL, Source.CELL, Source.INPUT) and ref.name:
        return ref.name
    return None


def _loads(code: types.CodeType, names: set[str], executed: frozenset[tuple[int, int]]) -> tuple[int, int]:
    """How many instructions of `code` and the code nested in it read one of `names` (as a global, a
    local, a cell or an attribute): those that ran while tracing (`executed`), and the others.  Not
    those handing a cell to a nested function's closure (LOAD_CLOSURE, which 3.13 spells LOAD_FAST):
    the nested code reads it itself."""
    ran = not_run = 0
    todo = [code]
    while todo:
        current = todo.pop()
        todo.extend(const for const in current.co_consts if isinstance(const, types.CodeType))
        cells = set(current.co_cellvars) | set(current.co_freevars)
        for ins in dis.get_instructions(current):
            if not ins.opname.startswith("LOAD_") or ins.opname == "LOAD_CLOSURE":
                continue
            argval = ins.argval
            loaded = argval if isinstance(argval, tuple) else (argval,)
            closure = ins.opname.startswith("LOAD_FAST")  # of a cell: only to build a closure (3.13)
            count = sum(
                isinstance(name, str) and name in names and not (closure and name in cells) for name in loaded
            )
            if (id(current), ins.offset) in executed:
                ran += count
            else:
                not_run += count
    return ran, not_run
