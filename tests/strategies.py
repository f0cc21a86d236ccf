"""Hypothesis strategies: small legacy-style functions as Python source, and inputs for them.

A generated function has the signature ``def f(xs, flag):`` (``xs`` a list of
short strings, ``flag`` a bool or a small int) and reads its slow callees from
its globals (see `GLOBALS_DOC`): ``llm`` and ``judge`` always answer, ``bad``
raises ``FakeLLMError`` when ``"boom"`` is in its prompt.  The *core* grammar:

* slow calls assigned to variables, with arguments *derived* from constants,
  the inputs and earlier results: f-strings (also ``!r`` and ``len()`` inside),
  ``str.format`` with keywords, ``+``, ``%`` formatting, ``str.join`` (also
  ``"\\n".join`` of a list of results), ``json.dumps`` of a dict, subscripts,
  slices (``s[:10]``), ``str.upper``, ``len()``, ``str()``, ``sorted()``,
  tuple/list/dict displays, keyword arguments, and calls to `render`, a pure
  helper defined in the generated module itself (`HELPER_SOURCE`);
* glue assignments (the same expressions, no call);
* branches on the inputs (``if flag:``, ``if len(xs) > 1:``) and on earlier
  results (``if "a" in v2:``), with or without ``else``;
* ``for`` loops over ``xs`` (or ``range(flag)``) appending slow results, with an
  optional ``continue`` and a chained second call; list and dict comprehensions
  (over ``xs`` or a list a loop built); (extended) also over ``enumerate(xs)``,
  ``zip(xs, xs[1:])``, ``range(len(xs))``, ``sorted(xs)``, ``reversed(xs)``,
  slices of ``xs`` and lists built earlier, with a local carried from round to
  round (a running summary), and the loop variable read after the loop;
* calls that may raise, bare or inside ``try``/``except FakeLLMError``;

and ends with ``return (v1, v3, ...)``.  The *extended* grammar (``effects=True``)
adds what legacy code also does: nested calls ``llm(judge(x))``, ``a if c else b``
and ``a or b`` around calls, ``*args``/``**kwargs`` and ``prompt=`` keyword calls,
a method of a client object, a slow helper making two calls, a pure helper,
loops of calls inside an argument (a generator expression over a string, a
comprehension over ``xs[:2]``: nested loops when in a loop's round);
in-place changes of the input list and of local lists (also under branches on
results), ``break`` and early ``return`` (on inputs and on results), ``while``
loops, and loops over sequences derived from a result (``v2.split()[:4]``,
``enumerate(v2.split("e"))``), whose length the run decides.  The input list
keeps its length unless ``resize_input=True`` (appends and pops on ``xs``,
which change how often a later loop over it runs), and a loop is left by ``break`` only on a test of its current item unless
``free_breaks=True`` (``break`` on the flag or on a slow call's result).
``hidden=True`` adds `touch()`, a helper that changes the global list
``NOTES`` it is not handed, and calls whose prompt is ``NOTES`` itself.
``arms=True`` adds, in arms of branches on results, a change the code after
the branch reads (a local assigned again, a list changed in place), and
``tools=True`` adds ``v = lookup(...)``, a fast helper not known to be pure
returning a list, then a loop, a comprehension or a branch on its length.
``holders=True`` adds, in a loop's rounds, a call of a callable object or a
``partial`` made before the loop over a list each round then grows, a call that
may raise after which the round goes on to the next (``except: continue``), a
retry of it (a call site visited once or twice a round), and one whose handler
counts a failure the next rounds check first (``if ok > 0: break``).

Two options shape programs for calls with input lists of *other lengths* than
the traced one.  ``must_loop=True`` makes every program loop over the input
list at least once (a ``for`` loop or a comprehension, over ``xs`` or a form of
it).  ``uniform=True`` keeps only programs whose plan traced with two items or
more should be replayed for any length without tracing again (see
`xcs_bc.plan.generalize`): its loops run over ``xs``, ``enumerate(xs)``, ``sorted(xs)``,
``range(len(xs))`` or a list an earlier loop built, and make the same calls
every round, unconditionally, from the round's item, its index, the round's
own earlier results and values computed before the loop; no ``break``,
``continue``, filter, ``while``, ``or``/``if`` around calls, no read of ``xs``
by position, no branch on ``xs`` (or on glue computed from it), no in-place
changes, and ``xs`` itself is never a prompt (a callee handed the list could
change it: nothing after that call is planned), no local carried from round
to round, no loop variable read after its loop, no nested loop.  Branches on
the flag (which the length does not change) and on slow results (no guard
checks those) remain, and so does every derived argument.

``recent=True`` adds the forms the library learned recently: generator expressions of calls
(over ``xs``, ``sorted(xs)``, ``reversed(xs)``, ``enumerate(xs, start=1)``, ``zip()`` of unequal
lengths or a local list) consumed by ``any()``, ``all()``, ``next(gen, default)``, ``next()`` of a
filtered or chained generator and without a default (StopIteration), ``sum()``, ``str.join``,
``sorted()``, ``max()`` (ValueError when empty; also with ``default=``) and ``list()``, by a
``for`` loop left by ``break`` on a result (maybe kept in a variable, the rest taken after the
loop) or in two steps (``next()``, then the rest); ``enumerate(xs, 1)``, ``enumerate(xs, start=k)``
(a constant, the flag, ``len(xs)``), ``zip()`` of lists of different lengths (the shortest wins)
and ``zip(..., strict=True)`` (ValueError on unequal lengths), also of local lists, and
``reversed()`` of local lists; f-string conversions (``!r``, ``!s``, ``!a``) and format specs
(``:>8``, ``!r:>12``, a width computed in the field); ``recall``, a memoized callee
(``functools.cache`` or ``lru_cache``, bounded or not, defined in the module or by the factory
below) calling the fake, with keys that repeat (the bare item, ``t=`` and positional keys) and
``t=2`` through `bad` (an exception caches nothing); loops changing the list they walk
(``pop()``, ``pop(0)``, ``del xs[0]``, ``append`` under a length bound); and ``f`` made by a
factory ``make(llm, judge, prefix)``, reading ``llm``, ``judge`` and ``prefix`` from closure cells
(its generator expressions too: 3.13 hands them the cells in an instruction of its own), maybe
counting its calls in a ``nonlocal`` cell.  A memoized callee's cache and the counter cell are
reset by the test before every run (plain or jitted), and inputs are fresh lists per run, so both
start alike.  With ``uniform=True`` only what keeps the rounds alike stays: consumers that take
every item, top-level generator expressions over ``xs``, ``sorted(xs)``, ``enumerate(xs, start=1)``
or a list with an item per item of ``xs``, ``enumerate()`` with a constant start, ``zip(xs,
'abcdefgh')`` (the shortest is ``xs``) and ``zip(xs, xs, strict=True)``; no read of the counter
(a recipe reading a cell the function changed is checked against its value after the run, and
refused).

Four options reach what unit suites missed.  ``module_state=True``: ``retune(s)`` (fast) rebinds
the global ``MODE``, ``configure(s)`` (fast) changes the global dict ``CONFIG``, ``v = remember(p)``
(slow) calls ``llm`` and then rebinds ``LAST`` and changes ``CONFIG``, ``v = styled(p)`` (slow)
reads ``MODE`` and ``CONFIG``; prompts and keywords read
them (``MODE``, ``CONFIG['style']``, ``LAST``, ``style=CONFIG['style']``).  ``nested=True``:
``inner(p, n)``, which the test jits too, called once or per item of a list, and ``f`` calling
``f(xs[1:], flag)`` as its first statement (not in a closure program), which in the jitted run is
the jitted ``f``.
``recursion=True``: ``deep(p, n)``, ``n`` judges around an ``llm`` call by recursion, ``n`` from the
inputs (``len(xs)``, ``flag``) or a constant.  ``lookalikes=True``: branches that tell ``True``, ``1``
and ``1.0`` apart (``flag is True``, ``type(flag) is int``, ``str(flag) == '1'``), with
``input_sequences(lookalikes=True)``, whose flags may be floats and whose later flag may be an
equal one of another type.

Programs stay small (at most `MAX_STATEMENTS` statements, counting those inside
blocks) so an example runs in a fraction of a second.  String literals are
single-quoted and f-strings never nest, so the source parses on 3.10 too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hypothesis import strategies as st

MAX_STATEMENTS = 12
WORDS = ("a", "b", "ab", "ba", "c", "boom")  # "boom" makes `bad` raise
CONSTANTS = ("a", "b", "q", "note")
SLICE_ENDS = (1, 3, 6, 10)
NEEDLES = ("a", "b", "boom", "(", "llm", "judge")  # for `if NEEDLE in v:` branches
INPUT_CONDITIONS = (
    "flag",
    "not flag",
    "flag > 1",
    "len(xs) > 1",
    "xs",
    "flag and xs",
    "'boom' in xs",
    "flag == 2",
)
FLAG_CONDITIONS = ("flag", "not flag", "flag > 1", "flag == 2")  # the same for lists of any length
LOOKALIKE_CONDITIONS = (  # (lookalikes) True == 1 == 1.0, but these tell them apart
    "flag is True",
    "type(flag) is int",
    "isinstance(flag, float)",
    "str(flag) == '1'",
    "flag == 1",
)

GLOBALS_DOC = """\
llm, judge       FakeLLM: answer 'name(prompt)'
bad              FakeLLM(fail_on='boom')
FakeLLMError     what bad raises
client           an object whose .ask(p) calls FakeLLM 'client'     (extended)
twice(p)         judge(llm(p)): a helper making two slow calls      (extended)
shout(s)         s.upper() + '!': a pure helper                      (extended)
json             the json module
render(h, *ps)   a pure helper defined in the generated module (`HELPER_SOURCE`)
NOTES, touch()   a global list, and a helper appending 't' to it     (hidden)
MODE, retune(s)  a global str, and a fast helper rebinding it        (module_state)
CONFIG, configure(s)  a global dict, and a fast helper changing it   (module_state)
styled(p)        llm(p + MODE, style=CONFIG['style']): a slow reader (module_state)
LAST, remember(p)  a slow helper: llm(p), kept in LAST and CONFIG     (module_state)
inner(p, n)      judge of n llm calls; the test jits it               (nested)
f                the test jits f, so f(xs[1:], flag) calls the jit    (nested)
deep(p, n)       llm(p) under n judges, by recursion                  (recursion)
each(ps), tagged(ps)  llm of each prompt; judge of each, NOTES and MODE between (follows)
client.ask_each(ps)   client.ask of each prompt                                 (follows)
pieces(ps), halves(ps)  generators of pieces of each prompt: pure           (generators)
moded(ps), noted(ps)  pure but reading MODE; appending to NOTES at each item (generators)
Holder(h), hold(h)  a slow callable object and a partial over h: llm/judge of p and len(h) (holders)
"""


@dataclass(frozen=True)
class Grammar:
    effects: bool = False  # the extended grammar
    resize_input: bool = False  # (with effects) xs.append / xs.pop, so a later loop over xs changes length
    free_breaks: bool = False  # (with effects) `break` on anything, not only on the loop's current item
    hidden: bool = False  # hidden changes of a global list by a helper
    arms: bool = False  # (with effects) arms of branches on results change what the code after them reads
    tools: bool = False  # `v = lookup(...)`, a fast tool not known to be pure, then a loop or branch on it
    must_loop: bool = False  # every program loops over the input list at least once
    uniform: bool = False  # only loops a plan traced with >= 2 items replays for any length (see module doc)
    recent: bool = False  # the forms the library learned recently (see the module doc)
    guesses: bool = False  # the first call in an arm of a branch on a result reads only the inputs
    module_state: bool = False  # helpers that rebind a global or change a global dict a later call reads
    nested: bool = False  # `inner()`, a jitted helper; f calling (the jitted) f on xs[1:]
    recursion: bool = False  # `deep(p, n)`: a helper calling itself n times around slow calls
    lookalikes: bool = False  # branches telling True, 1 and 1.0 apart (`flag is True`, `type(flag)`)
    glue: bool = False  # a loop of glue over a long list built from xs (its later rounds run unobserved)
    tails: bool = False  # (with effects) a loop's round goes on after its last call (see `_round_tail`)
    holders: bool = False  # (with effects) rounds calling what holds a list they grow, retries (`_held`)
    maps: bool = False  # (with recent, not uniform) a "list" or "join" consumer is now and then a map's
    follows: bool = False  # `each(ps)`, `tagged(ps)`: helpers with loops of slow calls, which the jit follows
    generators: bool = False  # loops over generators of the program's own (`pieces(xs)`), pure or not


HELPER_SOURCE = """\
def render(head, *parts, sep=' | '):
    return '<{}> {}'.format(head, sep.join(parts))[:40]

"""  # a pure helper in the generated module: f's calls take their arguments through it


MEMO_SOURCE = """\
import functools


{decorator}
def recall(prompt, t=0):
    return (bad if t == 2 else llm)(prompt, t=t)

"""  # (recent) a memoized slow callee in the generated module: `recall(p)` calls llm once per cache entry
MEMO_DECORATORS = (
    "@functools.cache",
    "@functools.lru_cache(maxsize=None)",
    "@functools.lru_cache",  # maxsize=128
    "@functools.lru_cache(maxsize=32)",
    "@functools.lru_cache(maxsize=2)",  # evicts: its calls may run in their turn
)
PREFIX = "pre"  # (recent) what a closure program's `prefix` cell holds


@dataclass
class Program:
    """A generated function: its body and the names it returns; `source` is `HELPER_SOURCE` and
    ``def f(xs, flag): ...``.  (recent) With `memo`, the source defines `recall` (`MEMO_SOURCE`) under
    that decorator; with `closure`, ``f`` is made by a factory ``make(llm, judge, prefix)``, so that it
    reads ``llm``, ``judge`` and ``prefix`` from closure cells (and so do its generator expressions)."""

    body: list[str]
    returns: list[str] = field(default_factory=list)
    memo: str | None = None
    closure: bool = False
    memo_inside: bool = False  # (closure) `recall` is made by the factory: f reads it from a cell
    counter: bool = False  # (closure) f counts its calls in the factory's cell `count` (`nonlocal`)

    @property
    def source(self) -> str:
        lines = [HELPER_SOURCE]
        memo = MEMO_SOURCE.format(decorator=self.memo) if self.memo is not None else ""
        if memo and not (self.closure and self.memo_inside):
            lines.append(memo)
        indent = "    "
        if self.closure:
            lines.append("def make(llm, judge, prefix):")
            if memo and self.memo_inside:
                lines += ["    " + line if line else "" for line in memo.splitlines()]
            if self.counter:
                lines.append("    count = 0")
            indent = "        "
        lines.append(indent[4:] + "def f(xs, flag):")
        if self.closure and self.counter:
            lines += [indent + "nonlocal count", indent + "count += 1"]
        lines += [indent + line for line in self.body]
        lines.append(indent + "return " + _tuple(self.returns))
        if self.closure:
            lines += ["    return f", "", "", f"f = make(llm, judge, {PREFIX!r})"]
        return "\n".join(lines) + "\n"


def _tuple(names: list[str]) -> str:
    return "(" + "".join(f"{name}, " for name in names) + ")"


@dataclass
class _Scope:
    """What a statement may read: string and list variables, the loop variable; and statement count."""

    grammar: Grammar
    strs: list[str] = field(default_factory=list)
    lists: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)
    loop_var: str | None = None
    count: int = 0  # statements so far
    next_name: int = 0
    in_loop: bool = False
    results: list[str] = field(default_factory=list)  # the strs holding a slow call's result
    round_lists: list[str] = field(default_factory=list)  # lists with an item per item of xs, built by loops
    loops_over_xs: int = 0
    memo: bool = False  # (recent) the program defines `recall`, a memoized slow callee
    closure: bool = False  # (recent) f reads `prefix` (and its callees) from closure cells
    counter: bool = False  # (recent, closure) f counts its calls in the cell `count`

    def fresh(self) -> str:
        self.next_name += 1
        return f"v{self.next_name}"

    def inner(self, **changes: object) -> _Scope:
        """A scope for a block: sees the same names; names it makes stay inside."""
        scope = _Scope(self.grammar, list(self.strs), list(self.lists), list(self.others), self.loop_var)
        scope.next_name, scope.in_loop = self.next_name, self.in_loop
        scope.results, scope.round_lists = list(self.results), list(self.round_lists)
        scope.memo, scope.closure, scope.counter = self.memo, self.closure, self.counter
        for key, value in changes.items():
            setattr(scope, key, value)
        return scope


# -- expressions -----------------------------------------------------------------------------------


def _atom(draw: st.DrawFn, scope: _Scope) -> str:
    options = ["const", "flag"] if scope.grammar.uniform else ["const", "xs0", "xs_last", "flag"]
    if scope.strs:
        options += ["var", "var"]
    if scope.loop_var:
        options += ["loop", "loop", "loop"]
    if scope.closure:
        # (a recipe reading `count` is checked against its value after the run, which f changed: such
        # calls run in their turn, so uniform programs do not read it)
        options += ["prefix"] + ["count"] * (scope.counter and not scope.grammar.uniform)
    if scope.grammar.module_state:
        options += ["state"]
    kind = draw(st.sampled_from(options))
    if kind == "state":  # module state a helper may have changed
        return draw(st.sampled_from(["MODE", "CONFIG['style']", "LAST", "CONFIG['last']"]))
    if kind == "prefix":
        return "prefix"  # a closure cell of the factory
    if kind == "count":
        return "str(count)"  # a cell f changes on every call
    if kind == "const":
        return repr(draw(st.sampled_from(CONSTANTS)))
    if kind == "xs0":
        return "xs[0]"  # IndexError on an empty list: a plain exception the jit must reproduce
    if kind == "xs_last":
        return "xs[-1]"
    if kind == "flag":
        return "str(flag)"
    if kind == "var":
        return draw(st.sampled_from(scope.strs))
    assert scope.loop_var is not None
    return scope.loop_var


def _str_expr(draw: st.DrawFn, scope: _Scope, depth: int = 2, in_fstring: bool = False) -> str:
    """An expression whose value is a str when it does not raise."""
    if depth <= 0 or draw(st.integers(0, 2)) == 0:
        return _atom(draw, scope)
    options = ["plus", "plus_sep", "upper", "slice", "join_xs"]
    options += ["format_kw", "percent", "percent_len", "json", "len", "str_display", "sorted_xs", "render"]
    if scope.grammar.effects:
        options += ["join_xs_slice"]
    if not in_fstring:
        options += ["fstring"] * (3 if scope.grammar.recent else 1)  # (recent) conversions and specs
    if scope.lists:
        options += ["join_list", "join_list", "index_list", "sorted_list", "json_list", "len_list"]
    if scope.grammar.effects:
        options += ["shout", "nested_call"]
        if not scope.grammar.uniform:  # a loop of calls in an argument (nested in a loop's round)
            options += ["genexpr", "inner_comp"]
    if scope.grammar.hidden:
        options += ["join_notes"]
    if scope.grammar.recent and not scope.grammar.uniform and not in_fstring:  # (maybe in a loop's round)
        options += ["consumer"] * 3
    kind = draw(st.sampled_from(options))
    if kind == "consumer":
        return _consumer(draw, scope, "str")[0]
    if kind == "fstring":
        a = _str_expr(draw, scope, depth - 1, in_fstring=True)
        b = _str_expr(draw, scope, depth - 1, in_fstring=True)
        if scope.grammar.recent and draw(st.integers(0, 3)):  # conversions and format specs
            return _formatted(draw, a, b)
        form = draw(st.sampled_from(["and", "repr", "len"]))
        if form == "repr":
            return f'f"{{{a}!r}}: {{{b}}}"'
        if form == "len":
            return f'f"{{{a}}} ({{len({b})}}/{{len(xs)}})"'
        return f'f"{{{a}}} and {{{b}}}"'
    if kind == "sorted_xs":
        return f"{draw(st.sampled_from(['-', ',']))!r}.join(sorted(xs))"
    if kind == "json_list":
        return f"json.dumps({{'r': {draw(st.sampled_from(scope.lists))}, 'n': len(xs)}})"
    if kind == "len_list":
        return f"str(len({draw(st.sampled_from(scope.lists))}))"
    if kind == "sorted_list":
        return f"' '.join(sorted({draw(st.sampled_from(scope.lists))}))"
    if kind == "nested_call":  # a slow call as an argument: llm(judge(x))
        return _call(draw, scope, depth - 1)
    if kind == "join_notes":
        return "'+'.join(NOTES)"
    if kind == "inner_comp":
        return "'+'.join([judge(y) for y in xs[:2]])"
    a = _str_expr(draw, scope, depth - 1, in_fstring)
    if kind == "plus":
        return f"{a} + {_str_expr(draw, scope, depth - 1, in_fstring)}"
    if kind == "plus_sep":
        return f"{a} + ' / ' + {_str_expr(draw, scope, depth - 1, in_fstring)}"
    if kind == "upper":
        return f"({a}).upper()"
    if kind == "shout":
        return f"shout({a})"
    if kind == "genexpr":  # a call per character of (at most two of) a string
        return f"' '.join(llm(c) for c in ({a})[:2])"
    if kind == "slice":
        return f"({a})[:{draw(st.sampled_from(SLICE_ENDS))}]"
    if kind == "format_kw":
        return f"'{{q}} ~ {{n}}'.format(q={a}, n={_str_expr(draw, scope, depth - 1, in_fstring)})"
    if kind == "percent":
        return f"'%s: %s' % ({a}, {_str_expr(draw, scope, depth - 1, in_fstring)})"
    if kind == "percent_len":
        return f"'%s #%d' % ({a}, len(xs))"
    if kind == "json":
        b = _str_expr(draw, scope, depth - 1, in_fstring)
        return f"json.dumps({{'q': {a}, 'n': {b}}}, sort_keys=True)"
    if kind == "len":
        return f"str(len({a}))"
    if kind == "str_display":
        b = _str_expr(draw, scope, depth - 1, in_fstring)
        return f"str(({a}, {b}))" if draw(st.booleans()) else f"str([{a}, {b}])"
    if kind == "render":
        if draw(st.booleans()):
            return f"render({a}, {_str_expr(draw, scope, depth - 1, in_fstring)}, sep='/')"
        return f"render({a})"
    if kind == "join_xs":
        return f"{draw(st.sampled_from(['-', ' ', ', ']))!r}.join(xs)"
    if kind == "join_xs_slice":
        return f"'.'.join(xs[{draw(st.sampled_from(['1:', ':flag', ':-1', '::2']))}])"
    if kind == "join_list":  # no backslash inside an f-string before 3.12
        separators = ["|", " "] if in_fstring else ["|", " ", "\n", "\n"]
        return f"{draw(st.sampled_from(separators))!r}.join({draw(st.sampled_from(scope.lists))})"
    return f"{draw(st.sampled_from(scope.lists))}[{draw(st.sampled_from([0, -1]))}]"


# (recent) consumers of a generator expression ``(E for g in S)``: form, value type, takes every item
_CONSUMERS = {
    "any": ("str(any('a' in {e} for {t} in {s}))", "str", False),
    "all": ("str(all('b' not in {e} for {t} in {s}))", "str", False),
    "next": ("next(({e} for {t} in {s}), 'none')", "str", False),
    "next_filtered": ("next(({e} for {t} in {s} if 'a' in g), 'none')", "str", False),
    "next_chained": ("next((r for r in ({e} for {t} in {s}) if 'b' in r), 'none')", "str", False),
    "next_bare": ("next({e} for {t} in {s} if 'b' not in g)", "str", False),  # StopIteration when none
    "sum": ("str(sum(len({e}) for {t} in {s}))", "str", True),
    "join": ("'|'.join({e} for {t} in {s})", "str", True),
    "sorted_join": ("' '.join(sorted({e} for {t} in {s}))", "str", True),
    "max": ("max({e} for {t} in {s})", "str", True),  # ValueError on an empty sequence
    "max_default": ("max(({e} for {t} in {s}), default='')", "str", True),
    "sorted": ("sorted({e} for {t} in {s})", "list", True),
    "list": ("list({e} for {t} in {s})", "list", True),
}
# (maps) a map taken whole, its calls made from the consumer's C code: drawn instead of a "list" or
# "join" consumer now and then (not in the uniform grammar: the consumer's one slow call is no loop
# a replay resizes), over the items alone (a lambda of one parameter)
_MAPS = {
    "list": "list(map(lambda g: {e}, {s}))",
    "join": "'|'.join(map(lambda g: {e}, {s}))",
}


def _consumer(draw: st.DrawFn, scope: _Scope, want: str | None = None) -> tuple[str, str, bool]:
    """(recent) A generator expression of calls over a form of the input list or a local list, and its
    consumer: the source, its value's type ("str" or "list"), and whether it is a round per item of xs.
    `uniform`: only consumers that take every item, over xs or a list with an item per item of xs."""
    names = [name for name, (_, kind, _) in _CONSUMERS.items() if want is None or kind == want]
    per_item_overs = ["xs", "xs", "sorted(xs)", "enumerate(xs, start=1)", *scope.round_lists]
    if scope.grammar.uniform:
        names = [name for name in names if _CONSUMERS[name][2]]
        overs = per_item_overs
    else:
        overs = [*per_item_overs, "xs[:2]", "reversed(xs)", "zip(xs, ('p', 'q'))", *scope.lists]
    name = draw(st.sampled_from(names))
    form, kind, _ = _CONSUMERS[name]
    if name in _MAPS and scope.grammar.maps and not scope.grammar.uniform and draw(st.booleans()):
        form = _MAPS[name]
        overs = [over for over in overs if not over.startswith(("enumerate(", "zip("))]
    over = draw(st.sampled_from(overs))
    target, element = _genexpr_element(draw, scope, over)
    return form.format(e=element, s=over, t=target), kind, over in per_item_overs


def _genexpr_element(draw: st.DrawFn, scope: _Scope, over: str) -> tuple[str, str]:
    """The target of a generator expression over `over`, and a call for its items (reading `g`)."""
    inner = scope.inner(loop_var="g", in_loop=True)
    target = "g"
    if over.startswith("enumerate("):
        target = "i, g"
        inner.strs.append("str(i)")
    elif over.startswith("zip("):
        target = "g, h"
        inner.strs.append("h")
    return target, _call(draw, inner, 1)


_FORMATS = (  # (recent) f-string conversions and format specs, of two str expressions a and b
    'f"{{{a}!r}} / {{{b}!s}}"',
    'f"{{{a}!s}} / {{{b}!a}}"',
    'f"{{{a}!a}} / {{{b}!r}}"',
    'f"[{{{a}:>8}}] {{{b}:<6}}"',
    'f"[{{{a}:^10}}] {{{b}:.3}}"',
    'f"[{{{a}!r:>12}}] {{{b}!a:*<9}}"',
    'f"{{{a}:_>4}} #{{len({b}):03d}}"',
    'f"[{{{a}:>{{len(xs) + 2}}}}] {{{b}}}"',  # a width computed in the field: a format spec of its own
)


def _formatted(draw: st.DrawFn, a: str, b: str) -> str:
    return draw(st.sampled_from(_FORMATS)).format(a=a, b=b)


def _prompt(draw: st.DrawFn, scope: _Scope, depth: int = 2) -> str:
    """A prompt: a str, or a container of strs (and of the raw flag), or a list object."""
    kinds = ["str", "str", "str", "str", "tuple", "list", "dict", "sorted", "nested_dict"]
    if not scope.grammar.uniform:  # the input list itself: a callee could change it, so no loop after
        kinds += ["xs"]  # it is planned (the plan's cutoff), and none is replayed for another length
    if scope.grammar.effects:
        kinds += ["flag_tuple"] + ["local_list"] * bool(scope.lists)
    if scope.grammar.hidden:
        kinds += ["notes", "notes"]
    kind = draw(st.sampled_from(kinds))
    sub = max(depth - 1, 0)
    if kind == "str":
        return _str_expr(draw, scope, depth)
    if kind == "tuple":
        return f"({_str_expr(draw, scope, sub)}, {_str_expr(draw, scope, sub)})"
    if kind == "flag_tuple":
        return f"(flag, {_str_expr(draw, scope, sub)})"
    if kind == "list":
        return f"[{_str_expr(draw, scope, sub)}, {_str_expr(draw, scope, sub)}]"
    if kind == "dict":
        return f"{{'q': {_str_expr(draw, scope, sub)}, 'n': {_str_expr(draw, scope, sub)}}}"
    if kind == "nested_dict":  # a dict holding a tuple and a list of results (or of the inputs)
        # not the input list in `uniform` programs, where no call is handed the input list
        items = draw(st.sampled_from(["list(xs)" if scope.grammar.uniform else "xs", *scope.lists]))
        return f"{{'pair': ({_str_expr(draw, scope, sub)}, str(flag)), 'items': {items}}}"
    if kind == "sorted":
        return f"sorted({draw(st.sampled_from(['xs', *scope.lists]))})"
    if kind == "local_list":
        return draw(st.sampled_from(scope.lists))  # the list object itself, maybe changed later
    if kind == "notes":
        return "NOTES"
    return "xs"


def _call(draw: st.DrawFn, scope: _Scope, depth: int = 2) -> str:
    """A slow call expression."""
    callees = ["llm", "judge", "bad"]
    if scope.grammar.effects:
        callees += ["client.ask", "twice"]
    if scope.memo:
        callees += ["recall", "recall", "recall"]
    callee = draw(st.sampled_from(callees))
    if callee == "recall":  # a cache key: a str, often the bare item (repeated items hit the cache)
        prompt = _atom(draw, scope) if draw(st.booleans()) else _str_expr(draw, scope, depth)
        # keys: `recall(p)`, `recall(p, 1)` and `recall(p, t=1)` are three; t=2 calls `bad` (raises on boom)
        keyword = draw(st.sampled_from(["", "", "t=1", "1", "t=flag", "t=2"]))
        return f"recall({prompt}{', ' + keyword if keyword else ''})"
    prompt = _prompt(draw, scope, depth)
    form = "plain"
    if scope.grammar.effects and callee in ("llm", "judge", "bad"):
        form = draw(st.sampled_from(["plain", "plain", "plain", "plain", "star", "kwstar", "prompt_kw"]))
    keywords = ["", "", "", "t=0", "t=flag", "style='short'"]
    if scope.grammar.module_state:
        keywords += ["style=CONFIG['style']", "style=MODE"]
    keyword = draw(st.sampled_from(keywords))
    if callee in ("client.ask", "twice"):
        keyword = ""
    if form == "star":
        if prompt in ("xs", "NOTES"):  # the shared list through a display: the open "display" bug
            prompt = f"list({prompt})"
        return f"{callee}(*[{prompt}]{', ' + keyword if keyword else ''})"
    if form == "kwstar":
        kw = draw(st.sampled_from(["{}", "{'t': 1}", "{'t': flag}"]))
        return f"{callee}({prompt}, **{kw})"
    if form == "prompt_kw":
        return f"{callee}(prompt={prompt}{', ' + keyword if keyword else ''})"
    return f"{callee}({prompt}{', ' + keyword if keyword else ''})"


def _slow_expr(draw: st.DrawFn, scope: _Scope) -> str:
    """The right-hand side of a slow assignment: a call, or (extended) calls under `if`/`or`."""
    kind = "call"
    if scope.grammar.effects and not scope.grammar.uniform:  # `if`/`or` around calls: branches on results
        kind = draw(st.sampled_from(["call", "call", "call", "call", "ternary", "or"]))
    if kind == "ternary":
        return f"{_call(draw, scope, 1)} if {_condition(draw, scope)} else {_call(draw, scope, 1)}"
    if kind == "or":
        first = draw(st.sampled_from(["(xs[0] if xs else '')", _call(draw, scope, 1)]))
        return f"{first} or {_call(draw, scope, 1)}"
    return _call(draw, scope)


def _condition(draw: st.DrawFn, scope: _Scope, on_result: bool | None = None) -> str:
    """A branch condition: on the inputs, or (on_result) on an earlier variable."""
    if on_result is None:
        on_result = draw(st.booleans())
    readable = scope.results if scope.grammar.uniform else scope.strs  # uniform: no glue computed from xs
    if on_result and readable:
        var = draw(st.sampled_from(readable))
        kind = draw(st.sampled_from(["in", "not in", "len", "endswith"]))
        if kind == "len":
            return f"len({var}) > {draw(st.integers(3, 20))}"
        if kind == "endswith":
            return f"{var}.endswith(')')"
        return f"{draw(st.sampled_from(NEEDLES))!r} {kind} {var}"
    if scope.grammar.uniform:
        return draw(st.sampled_from(FLAG_CONDITIONS))
    if scope.grammar.lookalikes and draw(st.booleans()):
        return draw(st.sampled_from(LOOKALIKE_CONDITIONS))
    if scope.loop_var and draw(st.booleans()):
        return f"{draw(st.sampled_from(WORDS))!r} in {scope.loop_var}"
    return draw(st.sampled_from(INPUT_CONDITIONS))


# -- statements ------------------------------------------------------------------------------------


def _statement(draw: st.DrawFn, scope: _Scope) -> list[str]:
    """One top-level statement (maybe a block), as source lines; updates `scope`."""
    kinds = ["call", "call", "call", "glue", "if_input", "if_result", "for", "listcomp", "try"]
    if scope.grammar.effects and not scope.grammar.uniform:
        kinds += ["mutate", "mutate_if", "return_if", "while", "for"]
    if scope.grammar.hidden and not scope.grammar.uniform:
        kinds += ["touch", "touch"]
    if scope.grammar.tools:
        kinds += ["tool", "tool", "tool"]
    if scope.grammar.guesses:
        kinds += ["if_result"] * 4
    if scope.grammar.module_state:
        kinds += ["retune", "configure", "remember", "styled"]
    if scope.grammar.nested:
        kinds += ["inner", "inner_map"]
    if scope.grammar.recursion:
        kinds += ["deep", "deep"]
    if scope.grammar.glue:
        kinds += ["glue_loop", "glue_loop"]
    if scope.grammar.follows:
        kinds += ["followed", "followed"]
    if scope.grammar.generators:
        kinds += ["generated", "generated"]
    if scope.grammar.recent:
        kinds += ["consume"] * 3 + ["format"]
        if scope.lists and not scope.grammar.uniform:
            kinds += ["local_loop"]
        if not scope.grammar.uniform:
            kinds += ["genexpr_for", "genexpr_for", "stored_genexpr", "changing_loop", "changing_loop"]
    if scope.count > MAX_STATEMENTS - 3:  # no room left for a block
        kinds = ["call", "glue"] + ["consume"] * scope.grammar.recent
    kind = draw(st.sampled_from(kinds))
    if kind in _HELPER_STATEMENTS:
        return _HELPER_STATEMENTS[kind](draw, scope)
    if kind == "consume":
        return _consume(draw, scope)
    if kind == "tool":
        return _tool(draw, scope)
    if kind == "format":  # (recent) a call whose prompt is formatted with a conversion or a spec
        scope.count += 1
        name = scope.fresh()
        a, b = _str_expr(draw, scope, 1, in_fstring=True), _str_expr(draw, scope, 1, in_fstring=True)
        value = f"{draw(st.sampled_from(['llm', 'judge']))}({_formatted(draw, a, b)})"
        scope.strs.append(name)
        scope.results.append(name)
        return [f"{name} = {value}"]
    if kind == "local_loop":  # (recent) zip(), reversed() or enumerate() of a local list
        return _for(draw, scope, local=True)
    if kind == "genexpr_for":
        return _genexpr_for(draw, scope)
    if kind == "stored_genexpr":
        return _stored_genexpr(draw, scope)
    if kind == "changing_loop":
        return _changing_loop(draw, scope)
    if kind in ("call", "glue"):
        scope.count += 1
        value = _slow_expr(draw, scope) if kind == "call" else _str_expr(draw, scope)
        name = scope.fresh()
        scope.strs.append(name)
        if kind == "call":
            scope.results.append(name)
        return [f"{name} = {value}"]
    if kind in ("if_input", "if_result"):
        return _if(draw, scope, on_result=kind == "if_result")
    if kind == "for":
        return _for(draw, scope)
    if kind == "listcomp":
        return _comprehension(draw, scope)
    if kind == "try":
        return _try(draw, scope)
    if kind == "mutate":
        scope.count += 1
        return [_mutation(draw, scope)]
    if kind == "mutate_if":
        scope.count += 2
        return [f"if {_condition(draw, scope)}:", "    " + _mutation(draw, scope)]
    if kind == "return_if":
        scope.count += 2
        names = draw(st.lists(st.sampled_from(scope.strs), max_size=2, unique=True)) if scope.strs else []
        return [f"if {_condition(draw, scope)}:", f"    return {_tuple(names)}"]
    if kind == "while":
        return _while(draw, scope)
    scope.count += 1
    return ["touch()"]


GLUE_ITEMS = (65, 70, 80)  # long enough for a loop's later rounds to run unobserved (`build.skipping`)


def _glue_loop(draw: st.DrawFn, scope: _Scope) -> list[str]:
    """(glue) A loop of glue over a long list repeating xs, so that its later rounds run unobserved
    (`xcs_bc.build.skipping`): it accumulates a string and a list a call after it reads, and, on
    one word, which may first come in a late round (xs's third item, say), maybe makes a slow call,
    raises (`bad` on "boom"), leaves the loop, skips the round or changes module state."""
    scope.count += 6
    ws, acc, seen, word = scope.fresh(), scope.fresh(), scope.fresh(), scope.fresh()
    lines = [f"{ws} = (xs * 40)[:{draw(st.sampled_from(GLUE_ITEMS))}]", f"{acc}, {seen} = '', []"]
    lines.append(f"for {word} in {ws}:")
    arms = ["llm({w})", "bad({w})", "break", "continue", "twice({w})"]
    if scope.grammar.module_state:
        arms += ["configure({w})", "CONFIG['last'] = {w}"]
    if draw(st.booleans()):
        lines.append(f"    if {word} == {draw(st.sampled_from(WORDS))!r}:")
        lines.append("        " + draw(st.sampled_from(arms)).format(w=word))
    lines.append(f"    {acc} = {acc} + {word}[:1]")
    lines.append(f"    {seen}.append({word}.upper())")
    name = scope.fresh()
    lines.append(f"{name} = llm(f'{{{acc}[-6:]}} {{len({seen})}} {{{seen}[-1:]}}')")
    scope.strs.append(name)
    scope.results.append(name)
    return lines


def _retune(draw: st.DrawFn, scope: _Scope) -> list[str]:
    """(module_state) A fast helper rebinding the global MODE that later calls may read."""
    scope.count += 1
    return [f"retune({_str_expr(draw, scope, 1)})"]


def _configure(draw: st.DrawFn, scope: _Scope) -> list[str]:
    """(module_state) A fast helper changing the global dict CONFIG that later calls may read."""
    scope.count += 1
    return [f"configure({_str_expr(draw, scope, 1)})"]


def _remember(draw: st.DrawFn, scope: _Scope) -> list[str]:
    """(module_state) A slow helper that rebinds LAST and changes CONFIG after its call."""
    return _slow_statement(scope, f"remember({_str_expr(draw, scope, 1)})")


def _styled(draw: st.DrawFn, scope: _Scope) -> list[str]:
    """(module_state) A slow helper reading MODE and CONFIG, which helpers before it may have changed."""
    return _slow_statement(scope, f"styled({_str_expr(draw, scope, 1)})")


def _inner(draw: st.DrawFn, scope: _Scope) -> list[str]:
    """(nested) A call of `inner`, which the test jits: a jitted function called by one."""
    return _slow_statement(scope, f"inner({_str_expr(draw, scope, 1)}, {draw(st.sampled_from([1, 2]))})")


def _inner_map(draw: st.DrawFn, scope: _Scope) -> list[str]:
    """(nested) The jitted `inner` called once per item of a list."""
    name = scope.fresh()
    over = draw(st.sampled_from(["xs", *scope.lists]))
    scope.count += 1
    scope.loops_over_xs += over == "xs"
    scope.lists.append(name)
    return [f"{name} = [inner(x, 1) for x in {over}]"]


def _recurse(draw: st.DrawFn, scope: _Scope) -> list[str]:
    """(nested) f calling itself on the tail of its list: the jitted f, as ``@xcs.jit`` makes it.  Only
    as f's first statement, before anything grows the list: each level's list is shorter, so the
    recursion ends (once, or the calls would be exponential)."""
    name = scope.fresh()
    scope.count += 4
    scope.strs.append(name)
    bound = draw(st.sampled_from(["1", "2"]))
    return [
        f"if len(xs) > {bound}:",
        f"    {name} = str(f(xs[1:], flag))[:60]",
        "else:",
        f"    {name} = {_str_expr(draw, scope, 1)}",
    ]


def _followed(draw: st.DrawFn, scope: _Scope) -> list[str]:
    """(follows) A helper of the program's own making a slow call per prompt (`each`, the method
    `client.ask_each`), or one whose loop changes module state between its calls (`tagged`), over xs,
    a list made before or a list displayed here: the jit follows into them (`xcs_bc.execute.follow`)."""
    name = scope.fresh()
    helper = draw(st.sampled_from(["each", "tagged", "client.ask_each"]))
    over = draw(st.sampled_from(["xs", "display", *scope.lists]))
    if over == "display":
        over = "[" + ", ".join(_str_expr(draw, scope, 1) for _ in range(draw(st.integers(1, 3)))) + "]"
    scope.count += 1
    scope.loops_over_xs += over == "xs"
    scope.lists.append(name)
    return [f"{name} = {helper}({over})"]


def _generated(draw: st.DrawFn, scope: _Scope) -> list[str]:
    """(generators) Calls over a generator of the program's own, over xs or a list made before:
    `pieces` and `halves` are pure (a loop walks the list of their items), `moded` is pure but reads
    MODE, which a round may rebind (`retune(g)`), `noted` appends to NOTES at each item (not
    listed); walked by a loop, a comprehension or `enumerate(..., start=1)`; a loop's round may also
    grow xs, which the generator walks lazily."""
    name = scope.fresh()
    generator = draw(st.sampled_from(["pieces", "halves", "moded", "noted"]))
    over = draw(st.sampled_from(["xs", "xs", *scope.lists]))
    shape = draw(st.sampled_from(["loop", "comprehension", "enumerate"]))
    inner = scope.inner(loop_var="g", in_loop=True)
    inner.strs.append("g")
    scope.count += 1
    scope.loops_over_xs += over == "xs"
    scope.lists.append(name)
    if shape == "comprehension":
        return [f"{name} = [{_call(draw, inner, 1)} for g in {generator}({over})]"]
    target, walked = "g", f"{generator}({over})"
    if shape == "enumerate":
        target, walked = "i, g", f"enumerate({walked}, start=1)"
        inner.strs.append("str(i)")
    lines = [f"{name} = []", f"for {target} in {walked}:", f"    {name}.append({_call(draw, inner, 1)})"]
    tail = draw(st.sampled_from(["", "", "retune", "grow"]))
    if tail == "retune":
        lines.append("    retune(g)")
    elif tail == "grow" and over == "xs":
        lines += ["    if len(xs) < 6:", "        xs.append(g + '+')"]
    return lines


def _deep(draw: st.DrawFn, scope: _Scope) -> list[str]:
    """(recursion) A helper recursing n times around slow calls; n from the inputs or a constant."""
    depth = draw(st.sampled_from(["len(xs)", "flag", "0", "2"]))
    return _slow_statement(scope, f"deep({_str_expr(draw, scope, 1)}, {depth})")


def _slow_statement(scope: _Scope, value: str) -> list[str]:
    name = scope.fresh()
    scope.count += 1
    scope.strs.append(name)
    scope.results.append(name)
    return [f"{name} = {value}"]


_HELPER_STATEMENTS = {
    "retune": _retune,
    "configure": _configure,
    "remember": _remember,
    "styled": _styled,
    "inner": _inner,
    "inner_map": _inner_map,
    "deep": _deep,
    "followed": _followed,
    "generated": _generated,
    "glue_loop": _glue_loop,
}


def _tool(draw: st.DrawFn, scope: _Scope) -> list[str]:
    """(tools) ``v = lookup(...)``, then calls over its list: a loop, a comprehension, or a branch on its
    length; what the tool answers depends on the inputs, so its length changes from call to call."""
    tool, name = scope.fresh(), scope.fresh()
    lines = [f"{tool} = lookup({_str_expr(draw, scope, 1)})"]
    shape = draw(st.sampled_from(["comprehension", "loop", "branch"]))
    if shape == "comprehension":
        lines.append(f"{name} = [{_callee(draw)}(t + {_str_expr(draw, scope, 1)}) for t in {tool}]")
        scope.lists.append(name)
    elif shape == "loop":
        lines += [f"{name} = ''", f"for t in {tool}:", f"    {name} = {name} + {_callee(draw)}(t)"]
        scope.strs.append(name)
    else:
        lines += [
            f"if len({tool}) > {draw(st.integers(0, 2))}:",
            f"    {name} = {_callee(draw)}({tool}[0])",
            "else:",
            f"    {name} = {_callee(draw)}({_str_expr(draw, scope, 1)})",
        ]
        scope.strs.append(name)
    scope.lists.append(tool)
    scope.count += len(lines)
    return lines


def _callee(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(["llm", "judge"]))


def _consume(draw: st.DrawFn, scope: _Scope) -> list[str]:
    """(recent) ``v = <a consumer of a generator expression of calls>``."""
    value, kind, per_item = _consumer(draw, scope)
    name = scope.fresh()
    scope.count += 1
    scope.loops_over_xs += per_item
    (scope.strs if kind == "str" else scope.lists).append(name)
    return [f"{name} = {value}"]


def _genexpr_for(draw: st.DrawFn, scope: _Scope) -> list[str]:
    """(recent) A `for` loop over a generator expression of calls, left by `break` on a result."""
    name = scope.fresh()
    over = draw(st.sampled_from(["xs", "xs", "sorted(xs)", "enumerate(xs, start=1)", *scope.lists]))
    target, element = _genexpr_element(draw, scope, over)
    inner = scope.inner(loop_var="r", in_loop=True)
    stop = _condition(draw, scope.inner(strs=["r"], results=["r"]), on_result=True)
    scope.loops_over_xs += "xs" in over
    scope.lists.append(name)
    generator = f"({element} for {target} in {over})"
    rest = []
    if draw(st.booleans()):  # kept in a variable: what the loop left of it is taken after the loop
        stored = f"gen{scope.next_name}"
        rest = [f"{scope.fresh()} = {draw(st.sampled_from(['list', 'sorted']))}({stored})"]
        scope.lists.append(rest[0].split(" = ")[0])
        head, generator = [f"{stored} = {generator}"], stored
    else:
        head = []
    lines = [
        *head,
        f"{name} = []",
        f"for r in {generator}:",
        f"    if {stop}:",
        "        break",
        f"    {name}.append({_call(draw, inner, 1)})",
        *rest,
    ]
    scope.count += len(lines)
    return lines


def _stored_genexpr(draw: st.DrawFn, scope: _Scope) -> list[str]:
    """(recent) A generator expression kept in a variable, consumed in two steps: next(), then the rest."""
    over = draw(st.sampled_from(["xs", "xs", "sorted(xs)", "enumerate(xs, start=1)", *scope.lists]))
    target, element = _genexpr_element(draw, scope, over)
    stored = f"gen{scope.next_name}"
    first, rest = scope.fresh(), scope.fresh()
    taker = draw(st.sampled_from(["'|'.join", "list", "sorted", "max"]))  # max: ValueError when none is left
    scope.count += 3
    scope.loops_over_xs += "xs" in over
    scope.strs.append(first)
    (scope.lists if taker in ("list", "sorted") else scope.strs).append(rest)
    default = draw(st.sampled_from([", 'none'", ""]))  # next() without default: StopIteration when empty
    return [
        f"{stored} = ({element} for {target} in {over})",
        f"{first} = next({stored}{default})",
        f"{rest} = {taker}({stored})",
    ]


def _changing_loop(draw: st.DrawFn, scope: _Scope) -> list[str]:
    """(recent) A loop that changes the list it walks: pops, deletes, appends under a length bound."""
    target = draw(st.sampled_from(["xs", "xs", *scope.lists]))
    name = scope.fresh()
    kind = draw(st.sampled_from(["pop_while", "pop_front", "append_bounded", "del_front", "pop_if"]))
    inner = scope.inner(loop_var="x", in_loop=True)
    head = [f"{name} = []"]
    if kind == "pop_while":
        body = [f"while {target}:", f"    x = {target}.pop()"]
    elif kind == "pop_front":
        body = [f"while len({target}) > 1:", f"    x = {target}.pop(0)"]
    elif kind == "append_bounded":
        body = [f"for x in {target}:", f"    if len({target}) < 4:", f"        {target}.append(x + '+')"]
    elif kind == "del_front":
        body = [f"for x in {target}:", f"    del {target}[0]"]
    else:
        cond = _condition(draw, inner)
        body = [f"for x in {target}:", f"    if {cond}:", f"        {target}.pop()"]
    call = _call(draw, inner, 1)
    if kind == "pop_if" and draw(st.booleans()):  # the call before the change
        body.insert(1, f"    {name}.append({call})")
    else:
        body.append(f"    {name}.append({call})")
    scope.count += len(head) + len(body)
    scope.loops_over_xs += target == "xs"
    scope.lists.append(name)
    return head + body


def _mutation(draw: st.DrawFn, scope: _Scope) -> str:
    """An in-place change of the input list or of a local list (never while iterating it)."""
    targets = [] if scope.in_loop else ["xs"]
    targets += scope.lists
    if not targets:
        return f"{_str_expr(draw, scope, 1)}.upper()"  # nothing to change: a harmless expression
    target = draw(st.sampled_from(targets))
    kinds = ["append", "append", "append_call", "setitem", "reverse", "pop", "sort"]
    if target == "xs" and not scope.grammar.resize_input:
        kinds = ["setitem", "reverse", "sort"]
    kind = draw(st.sampled_from(kinds))
    if kind == "append":
        return f"{target}.append({_str_expr(draw, scope, 1)})"
    if kind == "append_call":
        return f"{target}.append({_call(draw, scope, 1)})"
    if kind == "setitem":
        return f"{target}[0] = {_str_expr(draw, scope, 1)}"  # IndexError on an empty list
    if kind == "pop":
        return f"{target}.pop()"  # IndexError on an empty list
    return f"{target}.{kind}()"


def _if(draw: st.DrawFn, scope: _Scope, on_result: bool) -> list[str]:
    cond = _condition(draw, scope, on_result)
    name = scope.fresh()
    lines = []
    with_else = draw(st.booleans())
    if not with_else:
        lines.append(f"{name} = {_str_expr(draw, scope, 1)}")
        scope.count += 1
    lines.append(f"if {cond}:")
    # (guesses) a call that reads nothing the branch waits for: speculation may issue it at once
    arm = scope.inner(strs=[], results=[]) if scope.grammar.guesses and on_result else scope
    lines.append(f"    {name} = {_slow_expr(draw, arm)}")
    scope.count += 2
    if draw(st.booleans()):  # a second call in the branch, reading the first
        lines.append(f"    {name} = {_call(draw, scope.inner(strs=[*scope.strs, name]))}")
        scope.count += 1
    if scope.grammar.arms and scope.strs and draw(st.booleans()):
        # the arm changes what the code after it reads: a replay that takes the other arm than the
        # trace did must not be served what the trace saw
        if draw(st.booleans()):
            lines.append(f"    {_mutation(draw, scope)}")
        else:
            lines.append(f"    {draw(st.sampled_from(scope.strs))} = {_str_expr(draw, scope, 1)}")
    if with_else:
        lines.append("else:")
        lines.append(f"    {name} = {_slow_expr(draw, scope)}")
        scope.count += 1
        scope.results.append(name)  # a slow result either way
    scope.strs.append(name)
    return lines


_LOOPS = {  # iterable -> (loop target, the item as a str, the index as a str or None)
    "xs": ("x", "x", None),
    "range(flag)": ("i", None, "str(i)"),
    "xs[1:]": ("x", "x", None),
    "xs[:flag]": ("x", "x", None),
    "enumerate(xs)": ("i, x", "x", "str(i)"),
    "range(len(xs))": ("i", "xs[i]", "str(i)"),
    "zip(xs, xs[1:])": ("x, y", "x", "y"),
    "sorted(xs)": ("x", "x", None),
    "reversed(xs)": ("x", "x", None),
}


_OVER_XS = tuple(key for key in _LOOPS if key != "range(flag)")  # the forms of the input list
_UNIFORM_OVERS = ("xs", "enumerate(xs)", "range(len(xs))", "sorted(xs)")  # a round per item of xs
# (recent) enumerate() with a start, zip() of unequal lengths (the shortest wins), zip(strict=True)
_RECENT_LOOPS = {
    "enumerate(xs, 1)": ("i, x", "x", "str(i)"),
    "enumerate(xs, start=1)": ("i, x", "x", "str(i)"),
    "enumerate(xs, start=3)": ("i, x", "x", "str(i)"),
    "zip(xs, 'abcdefgh')": ("x, y", "x", "y"),  # longer than any input: as many rounds as xs has items
    "zip(xs, xs, strict=True)": ("x, y", "x", "y"),
    "enumerate(xs, start=flag)": ("i, x", "x", "str(i)"),  # a start from the inputs
    "enumerate(xs, start=len(xs))": ("i, x", "x", "str(i)"),
    "zip(xs, ('p', 'q'))": ("x, y", "x", "y"),  # either may be the shortest
    "zip(xs, xs[::2])": ("x, y", "x", "y"),
    "zip(xs, xs[1:], strict=True)": ("x, y", "x", "y"),  # ValueError after the pairs unless xs is empty
    "zip(xs, ('p', 'q'), strict=True)": ("x, y", "x", "y"),  # ValueError unless xs has 2 items
    # dicts and their views, made from xs (equal items collapse: fewer rounds than xs has items)
    "dict.fromkeys(xs)": ("x", "x", None),
    "dict.fromkeys(xs).keys()": ("x", "x", None),
    "dict(zip(xs, range(9))).items()": ("x, i", "x", "str(i)"),
    "{x: x[:2] for x in xs}.values()": ("x", "x", None),
}
_RECENT_UNIFORM = tuple(list(_RECENT_LOOPS)[:5])  # a round per item of xs, for any length
_LOOPS.update(_RECENT_LOOPS)


def _round_tail(draw: st.DrawFn, scope: _Scope, name: str, item: str | None) -> list[str]:
    """(tails) The rest of a round of the loop building `name`, after its last call (`last{name}`): a
    branch on that result, on the item or on what the rounds carry, whose arms count (`k`), keep the
    best (`best`), keep the item (`kept`), or change what the next rounds' calls may read (`p`, a list
    whose length they read through another name, `view`), or leave the loop; maybe an `else` arm,
    maybe a second branch after it."""
    last = f"last{name}"
    subjects = [last, f"best{name}", *([item] if item else [])]
    lines = []
    for _ in range(draw(st.integers(1, 2))):
        subject = draw(st.sampled_from(subjects))
        test = draw(
            st.sampled_from(
                [
                    f"{draw(st.sampled_from(WORDS))!r} in {subject}",
                    f"len({subject}) % 2 == 0",
                    f"{subject} > best{name}",
                    f"{subject}.strip().lower().startswith('a')",
                ]
            )
        )
        arms = [
            f"k{name} = k{name} + '!'",
            f"best{name} = {last}",
            f"kept{name}.append({item or last})",
            f"p{name} = p{name} + 'z'",
            f"notes{name}.append({last})",
            "break",
            f"k{name} = k{name} + {last}[:1].upper()",
        ]
        lines.append(f"    if {test}:")
        lines += [f"        {arm}" for arm in draw(st.lists(st.sampled_from(arms), min_size=1, max_size=2))]
        if draw(st.booleans()):
            lines.append("    else:")
            lines.append(f"        {draw(st.sampled_from(arms))}")
    return lines


def _held(draw: st.DrawFn, scope: _Scope, name: str, item: str | None) -> tuple[list[str], list[str]]:
    """(holders) Lines before a loop and in its round: a call of a callable object or a partial made
    before the loop over a list each round then grows (`Holder(h)`, `hold(h)`: their answer reads its
    length), a call that may raise whose round then goes on to the next (`except FakeLLMError:
    continue`), a retry of it (a site visited once or twice a round), or one whose handler sets what
    the next rounds read first (`except FakeLLMError: ok = False`, then `if not ok: break`)."""
    kind = draw(st.sampled_from(["holder", "partial", "skip", "retry", "flag"]))
    prompt = _str_expr(draw, scope, 1)
    if kind in ("holder", "partial"):
        maker = "Holder" if kind == "holder" else "hold"
        grown = item or f"str(len(h{name}))"
        return [f"h{name} = []", f"ask{name} = {maker}(h{name})"], [
            f"    u{name} = ask{name}({prompt})",
            f"    h{name}.append({grown})",
        ]
    if kind == "skip":
        return [], [
            "    try:",
            f"        u{name} = bad({prompt})",
            "    except FakeLLMError:",
            "        continue",
        ]
    if kind == "flag":
        counted = draw(st.booleans())  # a flag, or a count of failures
        then = draw(st.sampled_from(["break", "continue"]))
        return [f"ok{name} = 0"], [
            f"    if ok{name} > {int(counted)}:",
            f"        {then}",
            "    try:",
            f"        u{name} = bad({prompt})",
            "    except FakeLLMError:",
            f"        ok{name} += 1",
            f"        u{name} = 'failed'",
        ]
    return [], [
        f"    for a{name} in range(2):",
        "        try:",
        f"            u{name} = bad({prompt} + str(a{name}))",
        "            break",
        "        except FakeLLMError:",
        f"            u{name} = 'failed'",
    ]


def _zips(draw: st.DrawFn, scope: _Scope, lists: list[str]) -> list[str]:
    """(recent) zip() of xs and a local list (maybe of another length), strict or not."""
    if not lists:
        return []
    other = draw(st.sampled_from(lists))
    return [
        f"zip(xs, {other})",
        f"zip({other}, xs, strict=True)",
        f"reversed({other})",
        f"enumerate({other}, 1)",
    ]


def _for(draw: st.DrawFn, scope: _Scope, over_xs: bool = False, local: bool = False) -> list[str]:
    """A ``for`` loop appending a slow result per round (`over_xs`: over a form of the input list)."""
    name = scope.fresh()
    if scope.grammar.uniform:
        overs = [*_UNIFORM_OVERS, "xs"] + ([] if over_xs else scope.round_lists)
        if scope.grammar.recent:
            overs += _RECENT_UNIFORM
    else:
        overs = ["xs", "xs", "xs"] + ([] if over_xs else ["range(flag)"])
        if scope.grammar.effects:
            overs += [
                key
                for key in _LOOPS
                if key not in overs and (key in _OVER_XS or not over_xs) and key not in _RECENT_LOOPS
            ]
            if not over_xs:  # a list built earlier (no statement in a loop changes it)
                overs += scope.lists
            if not over_xs and scope.results:  # a sequence derived from a result: as long as it says
                result = scope.results[-1]
                overs += [f"{result}.split()[:4]", f"{result}.split('a')", f"enumerate({result}.split('e'))"]
        if scope.grammar.recent:  # a family first: each gets its share
            of_lists = _zips(draw, scope, scope.lists) if not over_xs else []
            family = draw(st.sampled_from(["older", "recent", "recent"] + ["lists"] * bool(of_lists)))
            overs = {"older": overs, "recent": list(_RECENT_LOOPS), "lists": of_lists}[family]
    if local:  # (recent) over a local list, by zip(), reversed() or enumerate()
        overs = _zips(draw, scope, scope.lists)
    over = draw(st.sampled_from(overs))
    target, item, index = _loop_shape(over)
    inner = scope.inner(loop_var=item, in_loop=True)
    if index is not None:
        inner.strs.append(index)
    lines = [f"{name} = []", f"for {target} in {over}:"]
    scope.count += 2
    carry = None  # (extended) a local each round sets from the last round's: a running summary
    if scope.grammar.effects and not scope.grammar.uniform and draw(st.integers(0, 3)) == 0:
        carry = f"c{scope.next_name}"
        lines.insert(0, f"{carry} = {_str_expr(draw, scope, 1)}")
        inner.strs.append(carry)
        scope.count += 1
    if scope.grammar.effects and not scope.grammar.uniform and draw(st.integers(0, 3)) == 0:
        # (extended) a local each round grows from its item before its calls, which may read it: it
        # is another value in every round, so a first call must not issue a later round's calls
        # from the first round's recipes (`build.carried`)
        running = f"r{scope.next_name}"
        grow = item or index
        lines.insert(0, f"{running} = ''")
        lines.append(
            f"    {running} = {running} + " + (f"str({grow})[:2]" if grow else f"str(len({running}))")
        )
        inner.strs.append(running)
        scope.count += 2
    if draw(st.booleans()):  # a chain inside the loop
        temp = f"t{scope.next_name}"
        lines.append(f"    {temp} = {_slow_expr(draw, inner)}")
        inner.strs.append(temp)
        inner.results.append(temp)
        scope.count += 1
    if carry is not None:
        lines.append(f"    {carry} = {_call(draw, inner)}")
        scope.count += 1
    if scope.grammar.holders and scope.grammar.effects and not scope.grammar.uniform and draw(st.booleans()):
        before, during = _held(draw, inner, name, item)
        lines[:0] = before
        lines += during
        inner.strs.append(f"u{name}")
        scope.count += len(before) + 1
    tail = scope.grammar.tails and scope.grammar.effects and not scope.grammar.uniform and draw(st.booleans())
    if tail:  # what the rest of the round may change, some of which the round's calls may read
        lines[:0] = [f"k{name} = ''", f"best{name} = ''", f"kept{name} = []", f"p{name} = ''"]
        lines[:0] = [f"notes{name} = []", f"view{name} = notes{name}"]
        inner.strs += [f"p{name}", f"str(len(view{name}))"]
        scope.count += 6
    exit_kinds = ["none"] if scope.grammar.uniform else ["none", "none", "continue"]
    if scope.grammar.effects and not scope.grammar.uniform:
        exit_kinds += ["break", "break"]
    exit_kind = draw(st.sampled_from(exit_kinds))
    if exit_kind == "break" and not scope.grammar.free_breaks and item is None:
        exit_kind = "continue"
    if exit_kind != "none":
        if exit_kind == "continue" or scope.grammar.free_breaks:
            lines.append(f"    if {_condition(draw, inner)}:")
        else:  # break on the current item only: a guard then reads the items
            lines.append(f"    if {draw(st.sampled_from(WORDS))!r} in {item}:")
        lines.append(f"        {exit_kind}")
        scope.count += 1
    if tail:
        lines.append(f"    last{name} = {_slow_expr(draw, inner)}")
        lines.append(f"    {name}.append(last{name})")
        lines += _round_tail(draw, inner, name, item)
        scope.count += 2
        scope.strs += [f"k{name}", f"best{name}", f"p{name}", f"str(len(kept{name}))"]
    else:
        lines.append(f"    {name}.append({_slow_expr(draw, inner)})")
        scope.count += 1
    scope.lists.append(name)
    if re.search(r"\bxs\b", over) or over in scope.round_lists:
        scope.loops_over_xs += 1
    per_item = over in _UNIFORM_OVERS or over in scope.round_lists or over in _RECENT_UNIFORM
    if exit_kind == "none" and per_item:
        scope.round_lists.append(name)  # an item per item of xs
    if carry is not None:
        scope.strs.append(carry)
    if scope.grammar.effects and not scope.grammar.uniform and draw(st.integers(0, 3)) == 0:
        # the loop variable after the loop: the last round's (UnboundLocalError when none ran,
        # unless an earlier loop bound the same name)
        after = scope.fresh()
        lines.append(f"{after} = {draw(st.sampled_from(['llm', 'judge']))}({item or index})")
        scope.strs.append(after)
        scope.results.append(after)
        scope.count += 1
    return lines


def _loop_shape(over: str) -> tuple[str, str | None, str | None]:
    """The loop target, the item as a str and the index as a str (or None) of a loop over `over`."""
    if over in _LOOPS:
        return _LOOPS[over]
    if over.startswith("zip("):  # (recent) of xs and a local list
        return ("x, y", "x", "y")
    if over.startswith("enumerate("):  # (recent) of a local list, or of a result's parts
        return ("i, y", "y", "str(i)")
    return ("y", "y", None)  # a local list, maybe reversed


def _while(draw: st.DrawFn, scope: _Scope) -> list[str]:
    name = scope.fresh()
    inner = scope.inner(in_loop=True)
    inner.strs.append(f"str(len({name}))")
    bound = draw(st.sampled_from(["flag", "len(xs)", "2"]))
    scope.count += 3
    scope.lists.append(name)
    return [f"{name} = []", f"while len({name}) < {bound}:", f"    {name}.append({_call(draw, inner)})"]


def _comprehension(draw: st.DrawFn, scope: _Scope) -> list[str]:
    if scope.grammar.recent and draw(st.integers(0, 2)) == 0:
        return _recent_comprehension(draw, scope)
    name = scope.fresh()
    built = scope.round_lists if scope.grammar.uniform else scope.lists
    over = draw(st.sampled_from(["xs", "xs", *built]))  # the input, or a list a loop built
    call = _call(draw, scope.inner(loop_var="x"))
    scope.count += 1
    per_item = over == "xs" or over in scope.round_lists  # a round per item of xs
    scope.loops_over_xs += per_item
    kinds = ["list", "list", "dict"] + ([] if scope.grammar.uniform else ["filtered"])
    kind = draw(st.sampled_from(kinds))
    if kind == "dict":
        scope.others.append(name)
        return [f"{name} = {{x: {call} for x in {over}}}"]
    scope.lists.append(name)
    if kind == "filtered":
        return [f"{name} = [{call} for x in {over} if {draw(st.sampled_from(WORDS))!r} not in x]"]
    if per_item:
        scope.round_lists.append(name)
    return [f"{name} = [{call} for x in {over}]"]


def _recent_comprehension(draw: st.DrawFn, scope: _Scope) -> list[str]:
    """(recent) A list comprehension over enumerate() with a start, or zip() (maybe of unequal lengths)."""
    name = scope.fresh()
    overs = list(_RECENT_UNIFORM if scope.grammar.uniform else _RECENT_LOOPS)
    local = [] if scope.grammar.uniform else _zips(draw, scope, scope.lists)
    if local and draw(st.booleans()):
        overs = local
    over = draw(st.sampled_from(overs))
    target, item, index = _loop_shape(over)
    inner = scope.inner(loop_var=item)
    if index is not None:
        inner.strs.append(index)
    scope.count += 1
    scope.loops_over_xs += 1
    scope.lists.append(name)
    if over in _RECENT_UNIFORM:
        scope.round_lists.append(name)
    return [f"{name} = [{_call(draw, inner)} for {target} in {over}]"]


def _try(draw: st.DrawFn, scope: _Scope) -> list[str]:
    name = scope.fresh()
    lines = ["try:", f"    {name} = bad({_prompt(draw, scope)})"]
    scope.count += 4
    if scope.grammar.effects and draw(st.booleans()):  # a call skipped when bad raises
        lines.append(f"    {name} = {_call(draw, scope.inner(strs=[*scope.strs, name]))}")
        scope.count += 1
    lines.append("except FakeLLMError:")
    recovery = draw(st.sampled_from(["const", "call", "call"]))
    lines.append(f"    {name} = 'caught'" if recovery == "const" else f"    {name} = {_call(draw, scope)}")
    scope.strs.append(name)
    if recovery == "call":
        scope.results.append(name)
    return lines


@st.composite
def programs(draw: st.DrawFn, grammar: Grammar = Grammar(), max_statements: int = MAX_STATEMENTS) -> Program:
    """A function ``f(xs, flag)`` of at most `max_statements` statements."""
    scope = _Scope(grammar)
    memo = draw(st.sampled_from(MEMO_DECORATORS)) if grammar.recent and draw(st.booleans()) else None
    scope.memo = memo is not None
    scope.closure = grammar.recent and draw(st.booleans())
    memo_inside = scope.closure and scope.memo and draw(st.booleans())
    scope.counter = scope.closure and draw(st.integers(0, 2)) == 0
    body: list[str] = []
    if grammar.nested and not scope.closure and draw(st.booleans()):
        body += _recurse(draw, scope)
    target = draw(st.integers(1, max_statements))
    while scope.count < min(target, max_statements - 1):
        body += _statement(draw, scope)
    if grammar.must_loop and not scope.loops_over_xs:  # a loop over the input list, then maybe a call after
        body += _comprehension(draw, scope) if draw(st.booleans()) else _for(draw, scope, over_xs=True)
        if draw(st.booleans()):
            scope.count = max(scope.count, MAX_STATEMENTS)  # no room for a block: a call or glue
            body += _statement(draw, scope)
    names = scope.strs + scope.lists + scope.others
    returns = draw(st.lists(st.sampled_from(names), max_size=4, unique=True)) if names else []
    if not returns and names:
        returns = [names[-1]]
    if grammar.hidden and draw(st.booleans()):
        returns.append("tuple(NOTES)")
    return Program(body, returns, memo, scope.closure, memo_inside, scope.counter)


# -- inputs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    xs: tuple[str, ...]
    flag: bool | int | float

    def args(self) -> tuple[list[str], bool | int | float]:
        """Fresh arguments (a new list each time, so no call can see another's mutations)."""
        return list(self.xs), self.flag


words = st.sampled_from(WORDS)
FLAGS = (False, True, 0, 1, 2)
LOOKALIKE_FLAGS = (*FLAGS, 0.0, 1.0, 2.0)  # equal to a bool or an int, and hashing alike, not the same
flags = st.sampled_from(FLAGS)
inputs = st.builds(Inputs, st.lists(words, max_size=3).map(tuple), flags)


def _flip(flag: bool | int | float) -> bool | int | float:
    if isinstance(flag, bool):
        return not flag
    return type(flag)({0: 2, 1: 0, 2: 0}[int(flag)])


def _lookalike(draw: st.DrawFn, flag: bool | int | float) -> bool | int | float:
    """Another flag equal to `flag` (``True == 1 == 1.0``, ``0 == False == 0.0``), of another type."""
    return draw(
        st.sampled_from(
            [other for other in LOOKALIKE_FLAGS if other == flag and type(other) is not type(flag)]
        )
    )


@st.composite
def input_sequences(draw: st.DrawFn, lookalikes: bool = False) -> list[Inputs]:
    """3-4 inputs: the first is traced; the others repeat it, keep its shape, change its length or flag.
    `lookalikes`: flags may also be floats, and a later flag may be an equal one of another type."""
    flag_pool = st.sampled_from(LOOKALIKE_FLAGS) if lookalikes else flags
    first = draw(st.builds(Inputs, st.lists(words, max_size=3).map(tuple), flag_pool))
    sequence = [first]
    for _ in range(draw(st.integers(2, 3))):
        base = sequence[-1] if draw(st.booleans()) else first
        kinds = ["same", "same_shape", "same_shape", "relength", "flip", "fresh"] + [
            "lookalike"
        ] * 2 * lookalikes
        kind = draw(st.sampled_from(kinds))
        if kind == "same":
            new = base
        elif kind == "same_shape":
            new = Inputs(tuple(draw(words) for _ in base.xs), base.flag)
        elif kind == "relength":
            old = len(base.xs)
            length = draw(st.integers(0, 4).filter(lambda n, old=old: n != old))
            new = Inputs(tuple(draw(words) for _ in range(length)), base.flag)
        elif kind == "flip":
            new = Inputs(base.xs, _flip(base.flag))
        elif kind == "lookalike":
            new = Inputs(base.xs, _lookalike(draw, base.flag))
        else:
            new = draw(st.builds(Inputs, st.lists(words, max_size=3).map(tuple), flag_pool))
        sequence.append(new)
    return sequence


@st.composite
def length_sequences(draw: st.DrawFn, min_first: int = 0, boom: bool = True) -> list[Inputs]:
    """5-6 inputs of one flag: the first (traced) has 0-4 items (at least `min_first`), the second
    another number, and the later ones 0, 1, a longer list (5-7) and one of 2-4 items, in any order,
    maybe the traced length again at the end.  ``boom=False``: no item makes `bad` raise."""
    pool = st.sampled_from(WORDS if boom else tuple(w for w in WORDS if w != "boom"))
    flag = draw(flags)
    first = draw(st.integers(min_first, 4))
    lengths = draw(st.permutations([0, 1, draw(st.integers(5, 7)), draw(st.integers(2, 4))]))
    if lengths[0] == first:  # the call right after the trace brings another length
        lengths = lengths[1:] + lengths[:1]
    if draw(st.booleans()):
        lengths.append(first)
    return [Inputs(tuple(draw(pool) for _ in range(n)), flag) for n in [first, *lengths]]
