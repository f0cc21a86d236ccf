"""Build: a capture traces through the Python functions the observed code calls.

When a traced frame calls a Python function that the capture's `reach` traces through (the user's
own code: see `observe.reach`), the callee's frame becomes a traced frame too: its parameters are
bound to the refs of the caller's arguments, so values flow in through them; what it returns is
the call's result (`handlers.stack.return_value` hands it to the caller, as a comprehension's
frame does); in between, its instructions are modelled with the same rules as the observed
frame's, and its slow calls are operations that keep the stack of functions they were made in.
Everything it does is reached through the branches its caller is under.

A frame left by an exception has no return: when its caller runs its next instruction, the frame
is closed (`close_callee`), its own pending call completed as one that raised.

`Following` is a part of `GraphBuilder` (a base class of it); a jit trace does not follow (its
replay issues the calls its own function makes, and makes a helper's calls through a jitted
function of the helper's own: see `execute.follow`).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from xcs_bc._compat import CALL_OPS, handled_now
from xcs_bc.build import purity
from xcs_bc.build.calls import call_expr, frame_arguments, parameters, python_code
from xcs_bc.build.codeinfo import CodeInfo, Instr
from xcs_bc.build.displays import SELF, constant_keys, positional
from xcs_bc.build.frames import FrameState
from xcs_bc.build.generators import made_code
from xcs_bc.build.loops import Loops
from xcs_bc.ir import MISSING, ExprKind, Source, ValueRef
from xcs_bc.ir.values import NULL, class_lookup, const, expr, unknown, with_value

MAX_FOLLOW_DEPTH = 64
"""Followed frames one inside another, at most; a call deeper than that is a leaf (deep recursion)."""


class Following(Loops):
    """Follows a traced frame's calls into the Python functions `reach` traces through."""

    # set by GraphBuilder.__init__ (and `_info` is GraphBuilder's)
    _info: Callable[[types.FrameType], CodeInfo]
    reach: Callable[[types.CodeType, object], bool] | None
    _frames: dict[types.FrameType, FrameState]
    _cells: dict[int, tuple[Any, ValueRef]]  # id(obj) -> (obj, ref): objects traced frames put in cells
    entered_frames: int  # frames followed into so far
    objects_handed: dict[int, tuple[tuple[str, Any], ...]]  # by followed call: see `_mutable_arguments`

    def follows(self, frame: types.FrameType) -> bool:
        """Is `frame` traced (asked by the observer for frames of code followed before)?"""
        return frame in self._frames

    def pending_codes(self, frame: types.FrameType) -> tuple[types.CodeType, ...]:
        """The Python code the call instruction pending in `frame` may start, as far as the shadow
        knows: its callee's (a class's `__init__`), and, for a built-in, the functions it is handed
        (`map(f, xs)`, `sorted(xs, key=f)`)."""
        fs = self._frames.get(frame)
        if self.reach is None or fs is None or fs.pending is None or fs.pending.opname not in CALL_OPS:
            return ()
        callee_ref, args, _, _ = self.call_layout(fs, fs.pending, fs.operands)
        callee = callee_ref.value if callee_ref.value is not MISSING else fs.callee
        found = _started(callee)
        if found is not None:
            return (found[0].__code__,)
        if _c_code(callee):
            return tuple(code for code in map(_code_of, _handed(args)) if code is not None)
        return ()

    def calls_back(self, fs: FrameState, code: types.CodeType) -> bool:
        """Is `code`, returning to `fs`, a function the call pending there (C code) was handed to call
        back (`sorted(xs, key=f)`, `list(map(f, xs))`): what it returns is not the call's result?"""
        if fs.pending is None or fs.pending.opname not in CALL_OPS:
            return False
        callee_ref, args, _, _ = self.call_layout(fs, fs.pending, fs.operands)
        callee = callee_ref.value if callee_ref.value is not MISSING else fs.callee
        return _c_code(callee) and any(_code_of(ref) is code for ref in _handed(args))

    def follow_into(self, fs: FrameState, frame: types.FrameType) -> None:
        """`frame` started while the call pending in `fs` runs: trace it when `reach` traces through its
        code and it is the frame of the Python function called (or the frame of a function handed to
        a built-in that calls it back: a key, a mapped function)."""
        ins = fs.pending
        if (
            self.reach is None
            or ins is None
            or ins.opname not in CALL_OPS
            or fs.awaiting is not None
            or (fs.callee_frame is not None and fs.callee_frame.frame in self._frames)
            or fs.depth >= MAX_FOLLOW_DEPTH
        ):
            return
        code = frame.f_code
        callee_ref, args, kwnames, star = self.call_layout(fs, ins, fs.operands)
        callee = callee_ref.value if callee_ref.value is not MISSING else fs.callee
        found = _started(callee)
        called_back = None
        if found is None or found[0].__code__ is not code:
            if not _c_code(callee):
                return
            called_back = next((ref for ref in _handed(args) if _code_of(ref) is code), None)
            if called_back is None:
                return
        if not self.reach(code, frame.f_globals.get("__name__")):
            return
        if called_back is None and purity.classify(callee) is purity.Effect.PURE:
            return  # it only computes from what it is handed, and makes no slow call: no need to look inside
        # (a module's code handed to `exec` runs in a module frame: its names are globals)
        child = FrameState(frame, self._info(frame), frame.f_globals is frame.f_locals, ops=self.ops)
        child.caller = fs
        child.depth = fs.depth + 1
        self.entered_frames += 1
        child.entry = self.entered_frames
        child.inherited = fs.conditions()
        child.refresh_control()
        arguments = frame_arguments(frame)  # (read once: on 3.13 `f_locals` is a proxy)
        if called_back is not None:
            # called by C code with values it took from its arguments (from what they hold, at any
            # depth): each parameter may hold any of them
            function = called_back.value
            child.function = getattr(function, "__qualname__", code.co_name)
            child.called_back = True
            anything = expr(ExprKind.CALL_EX, tuple(map(self.holding, (callee_ref, *args))))
            child.locals = {name: with_value(anything, value) for name, value in arguments.items()}
        else:
            assert found is not None
            function, passed = found
            child.function = function.__qualname__
            if passed and passed[0] is _NEW_OBJECT:  # `Class(...)`: a new object, made of the arguments
                obj = frame.f_locals.get(code.co_varnames[0], MISSING) if code.co_argcount else MISSING
                child.made = call_expr(callee_ref, args, kwnames, star, obj)
                first: ValueRef | None = child.made
            else:
                first = _receiver(callee_ref, fs.operands, ins) if passed else None
            child.locals = self._bind(frame.f_code, arguments, callee_ref, first, args, kwnames, star)
            if not (passed and passed[0] is _NEW_OBJECT):
                self.objects_handed[child.entry] = _mutable_arguments(arguments)
        for name in code.co_cellvars:  # a parameter a closure made here will read
            if name in child.locals:
                self.celled(child.locals[name])
        fs.callee_frame = child
        self._frames[frame] = child

    def celled(self, ref: ValueRef) -> None:
        """A traced frame put `ref`'s object in a cell (a closure's variable): see `closure_variable`."""
        if ref.value is not MISSING:
            self._cells[id(ref.value)] = (ref.value, ref)

    def closure_variable(self, name: str, value: Any) -> ValueRef:
        """What a followed function reads from its closure: the ref of the object a traced frame put in
        a cell, when that is where the object came from; else the cell's content as it was before
        (a closure made outside the traced code: a client a factory kept, the function a decorator
        wraps)."""
        return self.cell_content(value) or ValueRef(Source.CELL, name=name, value=value)

    def cell_content(self, value: Any) -> ValueRef | None:
        """The ref of `value` when a traced frame put it in a cell."""
        entry = self._cells.get(id(value))
        return entry[1] if entry is not None and entry[0] is value else None

    def close_callee(self, fs: FrameState, now: float, exc: BaseException | None = None) -> None:
        """The frame `fs`'s pending call followed into is done.  Left by an exception (`exc`, or the
        one being handled; it is still here: a return forgets it), its own pending call raised."""
        child = fs.callee_frame
        fs.callee_frame = None
        if child is None or self._frames.get(child.frame) is not child:
            return
        self.close_callee(child, now, exc)
        ins = child.pending
        child.pending = None
        if ins is not None and ins.opname in CALL_OPS and child.awaiting is None:
            if child.exception is None:
                child.exception = exc or handled_now()
            self.complete_call(child, ins, now, raised=True)
        self.forget(child)

    def forget(self, fs: FrameState) -> None:
        """A followed frame is done: drop its shadow, and the loops it was still in (left by `return`)."""
        del self._frames[fs.frame]
        for key in [key for key, state in self.iters.items() if state.frame is fs.frame]:
            del self.iters[key]

    def _bind(
        self,
        code: types.CodeType,
        arguments: dict[str, Any],
        callee_ref: ValueRef,
        first: ValueRef | None,
        args: tuple[ValueRef, ...],
        kwnames: tuple[str, ...],
        star: bool,
    ) -> dict[str, ValueRef]:
        """The refs of the parameters of `code`'s starting frame (what they hold: `arguments`), from
        the refs of the call's arguments.

        Positional and keyword arguments go to their parameters, the rest to ``*args`` and
        ``**kwargs``; ``f(*seq, **kw)`` is spread when `seq` and `kw` are displays built here (a
        decorator's ``fn(*args, **kwargs)``).  A parameter left to its default holds the default.
        Where the layout cannot be read, every parameter depends on every argument.  A ref whose
        object is not the one the frame holds is UNKNOWN (nothing is assumed that the run did not
        show)."""
        names, varargs, varkw = parameters(code)
        kwonly = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
        n = len(args) - len(kwnames)
        spread = _spread(args) if star else (args[:n], dict(zip(kwnames, args[n:], strict=True)))
        if star and spread is not None:
            for ref in args:  # (the display spread, and the dict of keywords)
                if ref is not NULL:
                    self.read_contents(ref)
        lead = (first,) if first is not None else ()
        bound: dict[str, ValueRef] = {}
        if spread is not None:
            given, keywords = (*lead, *spread[0]), spread[1]
            bound.update(zip(names, given, strict=False))  # (fewer: the rest keep their defaults)
            if varargs is not None:
                bound[varargs] = expr(ExprKind.TUPLE, tuple(given[len(names) :]))
            extra: list[ValueRef] = []
            for name, ref in keywords.items():
                if name in names or name in kwonly:
                    bound[name] = ref
                else:
                    extra += (const(name), ref)
            if varkw is not None:
                bound[varkw] = expr(ExprKind.DICT, tuple(extra))
        anything = expr(ExprKind.CALL_EX, (callee_ref, *lead, *args))  # (what any parameter may hold)
        refs: dict[str, ValueRef] = {}
        for param, value in arguments.items():
            given_ref = bound.get(param)
            if given_ref is None:
                given_ref = anything if spread is None else self.lookup(with_value(const(value), value))
            elif given_ref.value is not MISSING and given_ref.value is not value:
                given_ref = unknown(len(self.ops))
            refs[param] = with_value(given_ref, value)
        return refs


def _started(callee: Any) -> tuple[types.FunctionType, tuple[Any, ...]] | None:
    """The Python function a call of `callee` runs first and what it passes before the arguments
    (`_NEW_OBJECT` for a class's `__init__`); None for any other callee."""
    init = _initializer(callee)
    return (init, (_NEW_OBJECT,)) if init is not None else python_code(callee)


def _code_of(ref: ValueRef) -> types.CodeType | None:
    """The code of the Python function `ref` holds (a function made here, or one it names), or the
    code object it is (`exec(code)`)."""
    made = made_code(ref)
    if made is not None:
        return made
    if isinstance(ref.value, types.CodeType):
        return ref.value
    function = getattr(ref.value, "__func__", ref.value)
    return function.__code__ if isinstance(function, types.FunctionType) else None


def _c_code(callee: Any) -> bool:
    """A built-in function or method, or a built-in class (`list`, `map`): C code, which may call
    back the functions it is handed."""
    if isinstance(callee, type):
        return callee.__module__ == "builtins"
    return isinstance(callee, (types.BuiltinFunctionType, types.BuiltinMethodType))


def _handed(args: tuple[ValueRef, ...]) -> Iterator[ValueRef]:
    """The arguments of a call, and those of the built-in calls among them (`list(map(f, xs))` calls f)."""
    for ref in args:
        yield ref
        if ref.kind in (ExprKind.CALL, ExprKind.CALL_KW) and ref.operands and _c_code(ref.operands[0].value):
            yield from ref.operands[1:]


_NEW_OBJECT = object()


def _initializer(callee: Any) -> types.FunctionType | None:
    """The Python `__init__` a call of the class `callee` runs on a new object, when making it runs no
    other code of the class's: its metaclass's `__call__` is `type`'s, its `__new__` is `object`'s."""
    if not isinstance(callee, type):
        return None
    if class_lookup(type(callee), "__call__") is not _TYPE_CALL:
        return None
    if class_lookup(callee, "__new__") is not _NEW:
        return None
    init = class_lookup(callee, "__init__")
    return init if isinstance(init, types.FunctionType) else None


_TYPE_CALL = type.__dict__["__call__"]
_NEW = object.__dict__["__new__"]


def _receiver(callee_ref: ValueRef, operands: tuple[ValueRef, ...], ins: Instr) -> ValueRef:
    """The ref of what a bound method's or a callable object's function gets before the arguments."""
    head = [ref for ref in operands[:2] if ref is not NULL]
    if len(head) == 2 and ins.opname not in ("CALL_FUNCTION", "CALL_FUNCTION_KW"):
        receiver = head[1]  # the method form, [method, self]: the call passes self
        return receiver.operands[0] if receiver.name == SELF and receiver.operands else receiver
    if callee_ref.path and callee_ref.path[-1].kind == "attr":  # `f = obj.method`: the object
        return replace(callee_ref, path=callee_ref.path[:-1], value=MISSING)
    return callee_ref  # a callable object: its `__call__` gets the object itself


def _mutable_arguments(arguments: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The mutable objects a followed call was handed, by parameter name (one level into `*args`,
    `**kwargs` and the containers passed).  `xcs.jit` of the caller makes such a call as one opaque
    call that may change them: the capture report counts that (`analyze.wrapping`)."""
    found: list[tuple[str, Any]] = []
    for name, value in arguments.items():
        items = (
            value.items() if type(value) is dict else enumerate(value) if type(value) in (tuple, list) else ()
        )
        for label, obj in ((name, value), *((f"{name}[{key!r}]", item) for key, item in items)):
            if not purity.is_immutable(obj) and len(found) < _HANDED_MAX:
                found.append((label, obj))
    return tuple(found)


_HANDED_MAX = 16  # objects noted per followed call, at most


def _spread(args: tuple[ValueRef, ...]) -> tuple[tuple[ValueRef, ...], dict[str, ValueRef]] | None:
    """The positional and keyword refs of ``f(*seq, **kw)``, when `seq` (and `kw`) are displays built
    here; None otherwise."""
    seq, *rest = [ref for ref in args if ref is not NULL] or [NULL]
    if seq is NULL or not positional(seq) or len(rest) > 1:
        return None
    keywords: dict[str, ValueRef] = {}
    if rest:
        kw = rest[0]
        if not constant_keys(kw):
            return None
        pairs = kw.operands
        keywords = {str(key.value): value for key, value in zip(pairs[::2], pairs[1::2], strict=True)}
    return seq.operands, keywords
