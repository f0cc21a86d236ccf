"""Hypothesis strategies: small legacy-style functions as Python source, and inputs for them.

A generated function has the signature ``def f(xs, flag):`` (``xs`` a list of
short strings, ``flag`` a bool or a small int) and reads its slow callees from
its globals (see `GLOBALS_DOC`): ``llm`` and ``judge`` always answer, ``bad``
raises ``FakeLLMError`` when ``"boom"`` is in its prompt.  The *core* grammar:

* slow calls assigned to variables, with arguments built from constants, the
  inputs, earlier variables, f-strings, ``+``, ``str.join``, subscripts,
  slices, ``str.upper``, tuple/list/dict displays and keyword arguments;
* glue assignments (the same expressions, no call);
* branches on the inputs (``if flag:``, ``if len(xs) > 1:``) and on earlier
  results (``if "a" in v2:``), with or without ``else``;
* ``for`` loops over ``xs`` (or ``range(flag)``) appending slow results, with an
  optional ``continue`` and a chained second call; list and dict comprehensions;
  (extended) also over ``enumerate(xs)``, ``zip(xs, xs[1:])``, ``range(len(xs))``
  and slices of ``xs``;
* calls that may raise, bare or inside ``try``/``except FakeLLMError``;

and ends with ``return (v1, v3, ...)``.  The *extended* grammar (``effects=True``)
adds what legacy code also does: nested calls ``llm(judge(x))``, ``a if c else b``
and ``a or b`` around calls, ``*args``/``**kwargs`` and ``prompt=`` keyword calls,
a method of a client object, a slow helper making two calls, a pure helper;
in-place changes of the input list and of local lists (also under branches on
results), ``break`` and early ``return`` (on inputs and on results), ``while``
loops.  The input list keeps its length unless ``resize_input=True`` (appends
and pops on ``xs``, which change how often a later loop over it runs), and a
loop is left by ``break`` only on a test of its current item unless
``free_breaks=True`` (``break`` on the flag or on a slow call's result).
``hidden=True`` adds `touch()`, a helper that changes the global list
``NOTES`` it is not handed, and calls whose prompt is ``NOTES`` itself.

Programs stay small (at most `MAX_STATEMENTS` statements, counting those inside
blocks) so an example runs in a fraction of a second.  String literals are
single-quoted and f-strings never nest, so the source parses on 3.10 too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

MAX_STATEMENTS = 12
WORDS = ("a", "b", "ab", "ba", "c", "boom")  # "boom" makes `bad` raise
CONSTANTS = ("a", "b", "q", "note")
NEEDLES = ("a", "b", "boom", "(", "llm", "judge")  # for `if NEEDLE in v:` branches
INPUT_CONDITIONS = ("flag", "not flag", "flag > 1", "len(xs) > 1", "xs", "flag and xs", "'boom' in xs", "flag == 2")

GLOBALS_DOC = """\
llm, judge       FakeLLM: answer 'name(prompt)'
bad              FakeLLM(fail_on='boom')
FakeLLMError     what bad raises
client           an object whose .ask(p) calls FakeLLM 'client'     (extended)
twice(p)         judge(llm(p)): a helper making two slow calls      (extended)
shout(s)         s.upper() + '!': a pure helper                      (extended)
NOTES, touch()   a global list, and a helper appending 't' to it     (hidden)
"""


@dataclass(frozen=True)
class Grammar:
    effects: bool = False  # the extended grammar
    resize_input: bool = False  # (with effects) xs.append / xs.pop, so a later loop over xs changes length
    free_breaks: bool = False  # (with effects) `break` on anything, not only on the loop's current item
    hidden: bool = False  # hidden changes of a global list by a helper


@dataclass
class Program:
    """A generated function: its body and the names it returns; `source` is ``def f(xs, flag): ...``."""

    body: list[str]
    returns: list[str] = field(default_factory=list)

    @property
    def source(self) -> str:
        lines = ["def f(xs, flag):"]
        lines += ["    " + line for line in self.body]
        lines.append("    return " + _tuple(self.returns))
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

    def fresh(self) -> str:
        self.next_name += 1
        return f"v{self.next_name}"

    def inner(self, **changes: object) -> _Scope:
        """A scope for a block: sees the same names; names it makes stay inside."""
        scope = _Scope(self.grammar, list(self.strs), list(self.lists), list(self.others), self.loop_var)
        scope.next_name, scope.in_loop = self.next_name, self.in_loop
        for key, value in changes.items():
            setattr(scope, key, value)
        return scope


# -- expressions -----------------------------------------------------------------------------------


def _atom(draw: st.DrawFn, scope: _Scope) -> str:
    options = ["const", "xs0", "xs_last", "flag"]
    if scope.strs:
        options += ["var", "var"]
    if scope.loop_var:
        options += ["loop", "loop", "loop"]
    kind = draw(st.sampled_from(options))
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
    if scope.grammar.effects:
        options += ["join_xs_slice"]
    if not in_fstring:
        options.append("fstring")
    if scope.lists:
        options += ["join_list", "index_list"]
    if scope.grammar.effects:
        options += ["shout", "nested_call"]
    if scope.grammar.hidden:
        options += ["join_notes"]
    kind = draw(st.sampled_from(options))
    if kind == "fstring":
        a = _str_expr(draw, scope, depth - 1, in_fstring=True)
        b = _str_expr(draw, scope, depth - 1, in_fstring=True)
        return f'f"{{{a}}} and {{{b}}}"'
    if kind == "nested_call":  # a slow call as an argument: llm(judge(x))
        return _call(draw, scope, depth - 1)
    if kind == "join_notes":
        return "'+'.join(NOTES)"
    a = _str_expr(draw, scope, depth - 1, in_fstring)
    if kind == "plus":
        return f"{a} + {_str_expr(draw, scope, depth - 1, in_fstring)}"
    if kind == "plus_sep":
        return f"{a} + ' / ' + {_str_expr(draw, scope, depth - 1, in_fstring)}"
    if kind == "upper":
        return f"({a}).upper()"
    if kind == "shout":
        return f"shout({a})"
    if kind == "slice":
        return f"({a})[:{draw(st.integers(1, 6))}]"
    if kind == "join_xs":
        return f"{draw(st.sampled_from(['-', ' ', ', ']))!r}.join(xs)"
    if kind == "join_xs_slice":
        return f"'.'.join(xs[{draw(st.sampled_from(['1:', ':flag', ':-1', '::2']))}])"
    if kind == "join_list":
        return f"{draw(st.sampled_from(['|', ' ']))!r}.join({draw(st.sampled_from(scope.lists))})"
    return f"{draw(st.sampled_from(scope.lists))}[{draw(st.sampled_from([0, -1]))}]"


def _prompt(draw: st.DrawFn, scope: _Scope, depth: int = 2) -> str:
    """A prompt: a str, or a container of strs (and of the raw flag), or a list object."""
    kinds = ["str", "str", "str", "str", "tuple", "list", "dict", "xs"]
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
    callee = draw(st.sampled_from(callees))
    prompt = _prompt(draw, scope, depth)
    form = "plain"
    if scope.grammar.effects and callee in ("llm", "judge", "bad"):
        form = draw(st.sampled_from(["plain", "plain", "plain", "plain", "star", "kwstar", "prompt_kw"]))
    keyword = draw(st.sampled_from(["", "", "", "t=0", "t=flag", "style='short'"]))
    if callee in ("client.ask", "twice"):
        keyword = ""
    if form == "star":
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
    if scope.grammar.effects:
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
    if on_result and scope.strs:
        var = draw(st.sampled_from(scope.strs))
        kind = draw(st.sampled_from(["in", "not in", "len", "endswith"]))
        if kind == "len":
            return f"len({var}) > {draw(st.integers(3, 20))}"
        if kind == "endswith":
            return f"{var}.endswith(')')"
        return f"{draw(st.sampled_from(NEEDLES))!r} {kind} {var}"
    if scope.loop_var and draw(st.booleans()):
        return f"{draw(st.sampled_from(WORDS))!r} in {scope.loop_var}"
    return draw(st.sampled_from(INPUT_CONDITIONS))


# -- statements ------------------------------------------------------------------------------------


def _statement(draw: st.DrawFn, scope: _Scope) -> list[str]:
    """One top-level statement (maybe a block), as source lines; updates `scope`."""
    kinds = ["call", "call", "call", "glue", "if_input", "if_result", "for", "listcomp", "try"]
    if scope.grammar.effects:
        kinds += ["mutate", "mutate_if", "return_if", "while", "for"]
    if scope.grammar.hidden:
        kinds += ["touch", "touch"]
    if scope.count > MAX_STATEMENTS - 3:  # no room left for a block
        kinds = ["call", "glue"]
    kind = draw(st.sampled_from(kinds))
    if kind in ("call", "glue"):
        scope.count += 1
        value = _slow_expr(draw, scope) if kind == "call" else _str_expr(draw, scope)
        name = scope.fresh()
        scope.strs.append(name)
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
    lines.append(f"    {name} = {_slow_expr(draw, scope)}")
    scope.count += 2
    if draw(st.booleans()):  # a second call in the branch, reading the first
        lines.append(f"    {name} = {_call(draw, scope.inner(strs=[*scope.strs, name]))}")
        scope.count += 1
    if with_else:
        lines.append("else:")
        lines.append(f"    {name} = {_slow_expr(draw, scope)}")
        scope.count += 1
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
}


def _for(draw: st.DrawFn, scope: _Scope) -> list[str]:
    name = scope.fresh()
    overs = ["xs", "xs", "xs", "range(flag)"]
    if scope.grammar.effects:
        overs += [key for key in _LOOPS if key not in overs]
    over = draw(st.sampled_from(overs))
    target, item, index = _LOOPS[over]
    inner = scope.inner(loop_var=item, in_loop=True)
    if index is not None:
        inner.strs.append(index)
    lines = [f"{name} = []", f"for {target} in {over}:"]
    scope.count += 2
    if draw(st.booleans()):  # a chain inside the loop
        temp = f"t{scope.next_name}"
        lines.append(f"    {temp} = {_slow_expr(draw, inner)}")
        inner.strs.append(temp)
        scope.count += 1
    exit_kinds = ["none", "none", "continue"]
    if scope.grammar.effects:
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
    lines.append(f"    {name}.append({_slow_expr(draw, inner)})")
    scope.count += 1
    scope.lists.append(name)
    return lines


def _while(draw: st.DrawFn, scope: _Scope) -> list[str]:
    name = scope.fresh()
    inner = scope.inner(in_loop=True)
    inner.strs.append(f"str(len({name}))")
    bound = draw(st.sampled_from(["flag", "len(xs)", "2"]))
    scope.count += 3
    scope.lists.append(name)
    return [f"{name} = []", f"while len({name}) < {bound}:", f"    {name}.append({_call(draw, inner)})"]


def _comprehension(draw: st.DrawFn, scope: _Scope) -> list[str]:
    name = scope.fresh()
    call = _call(draw, scope.inner(loop_var="x"))
    scope.count += 1
    kind = draw(st.sampled_from(["list", "list", "filtered", "dict"]))
    if kind == "dict":
        scope.others.append(name)
        return [f"{name} = {{x: {call} for x in xs}}"]
    scope.lists.append(name)
    if kind == "filtered":
        return [f"{name} = [{call} for x in xs if {draw(st.sampled_from(WORDS))!r} not in x]"]
    return [f"{name} = [{call} for x in xs]"]


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
    return lines


@st.composite
def programs(draw: st.DrawFn, grammar: Grammar = Grammar(), max_statements: int = MAX_STATEMENTS) -> Program:
    """A function ``f(xs, flag)`` of at most `max_statements` statements."""
    scope = _Scope(grammar)
    body: list[str] = []
    target = draw(st.integers(1, max_statements))
    while scope.count < min(target, max_statements - 1):
        body += _statement(draw, scope)
    names = scope.strs + scope.lists + scope.others
    returns = draw(st.lists(st.sampled_from(names), max_size=4, unique=True)) if names else []
    if not returns and names:
        returns = [names[-1]]
    if grammar.hidden and draw(st.booleans()):
        returns.append("tuple(NOTES)")
    return Program(body, returns)


# -- inputs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    xs: tuple[str, ...]
    flag: bool | int

    def args(self) -> tuple[list[str], bool | int]:
        """Fresh arguments (a new list each time, so no call can see another's mutations)."""
        return list(self.xs), self.flag


words = st.sampled_from(WORDS)
flags = st.sampled_from([False, True, 0, 1, 2])
inputs = st.builds(Inputs, st.lists(words, max_size=3).map(tuple), flags)


def _flip(flag: bool | int) -> bool | int:
    if isinstance(flag, bool):
        return not flag
    return {0: 2, 1: 0, 2: 0}[flag]


@st.composite
def input_sequences(draw: st.DrawFn) -> list[Inputs]:
    """3-4 inputs: the first is traced; the others repeat it, keep its shape, change its length or flag."""
    first = draw(inputs)
    sequence = [first]
    for _ in range(draw(st.integers(2, 3))):
        base = sequence[-1] if draw(st.booleans()) else first
        kind = draw(st.sampled_from(["same", "same_shape", "same_shape", "relength", "flip", "fresh"]))
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
        else:
            new = draw(inputs)
        sequence.append(new)
    return sequence
