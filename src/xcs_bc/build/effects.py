"""The effects heap: objects changed in place, containers that outlive their expression, and
what the length of a container built here depends on.

`Effects` is a part of `GraphBuilder` (a base class of it): the builder's calls and handlers
record through it that a call or an instruction may have changed an object (`mutate`), which
every alias then sees (`lookup`); loops take a `snapshot` of what they walk and ask whether it
`changed` under them.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from xcs_bc.build import purity
from xcs_bc.build.displays import CONTAINERS, key_deps
from xcs_bc.build.frames import FrameState
from xcs_bc.ir import MISSING, ExprKind, PathStep, Source, ValueRef
from xcs_bc.ir.values import (
    class_lookup,
    describe_callee,
    expr,
    peek_attr,
    peek_item,
    peek_iter_item,
    unknown,
    with_deps,
    with_path,
    with_value,
)

Watched = tuple[Any, bool, Any, int]  # see GraphBuilder.snapshot

_HELD_DEPTH = 3  # levels `holding` looks into a value
_HELD_MAX = 256  # objects it looks at, at most


def contents(obj: Any) -> list[Any]:
    """What `obj` holds, as far as it can be read without running user code."""
    kind = type(obj)
    if kind in (list, tuple, set, frozenset):
        return list(islice(obj, _HELD_MAX))
    if kind is dict:
        return [*islice(obj.values(), _HELD_MAX), *islice(obj, _HELD_MAX)]
    if isinstance(obj, (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)):
        return []
    if isinstance(obj, types.MethodType):
        return [obj.__self__]
    try:
        attributes = object.__getattribute__(obj, "__dict__")
    except (AttributeError, TypeError):
        return []
    return list(islice(attributes.values(), _HELD_MAX)) if type(attributes) is dict else []


def holds(value: Any, target: Any) -> bool:
    """Does `value` hold `target` a few levels down (and through the cells of a closure, the function
    and arguments of a `functools.partial`)?  Past the objects looked at, it may: True."""
    return any(obj is target or obj is _TOO_MANY for obj, _ in _within(value))


_TOO_MANY = object()  # what `_within` gives, and stops, past `_HELD_MAX` objects
_CONTAINERS = (list, tuple, set, frozenset, dict)


def _within(value: Any) -> Iterator[tuple[Any, bool]]:
    """`value`, then what it holds, `_HELD_DEPTH` levels down, each mutable object once (see
    `contents`; of a function, its closure cells; of a `functools.partial`, its function and
    arguments); `_TOO_MANY` when there are more than `_HELD_MAX`.  Each with whether it is held by
    something else than a built-in container on the way (an object, a bound method, a closure)."""
    seen, todo = {id(value)}, [(value, 0, False)]
    while todo:
        current, depth, through = todo.pop()
        yield current, through
        if depth >= _HELD_DEPTH:
            continue
        held = contents(current)
        if isinstance(current, types.FunctionType):
            cells = map(cell_contents, current.__closure__ or ())
            held = [item for item in cells if item is not MISSING]
        elif isinstance(current, functools.partial):
            held = [current.func, *current.args, *current.keywords.values()]
        through = through or type(current) not in _CONTAINERS
        for item in held:
            if id(item) not in seen and not purity.is_immutable(item):
                if len(seen) >= _HELD_MAX:
                    yield _TOO_MANY, through
                    return
                seen.add(id(item))
                todo.append((item, depth + 1, through))


def cell_contents(cell: types.CellType) -> Any:
    """What a closure's cell holds (MISSING when it is empty)."""
    try:
        return cell.cell_contents
    except ValueError:
        return MISSING


def _peek(value: Any, hop: PathStep) -> Any:
    """One step of a path, on a concrete value, without running user code (else MISSING)."""
    if hop.kind == "attr":
        return peek_attr(value, hop.key)
    if hop.kind == "item":
        return peek_item(value, hop.key)
    return peek_iter_item(value, hop.key)


class Effects:
    """Objects changed in place, handed to calls, retained; the shapes of containers built here."""

    # set by GraphBuilder.__init__
    effects: int
    inputs: dict[str, ValueRef]
    retained: dict[int, tuple[ValueRef, ...]]
    holders: dict[int, set[str] | None]
    _heap: dict[int, tuple[Any, ValueRef]]
    # of those, the objects the code itself surely changed (`xs.append`, `obj.x = 1`, `d[k] = v`), not a
    # call that may have (a slow one, one not known to be pure: `by_call`), which a call issued ahead
    # cannot wait for (see `changed_by_code_in`); id(obj) -> (obj, whether only as a container the
    # code built and follows item by item)
    changed_by_code: dict[int, tuple[Any, bool]]
    global_changes: int  # of the effects, changes in place by the code of a global's object
    by_call: bool
    # every change in place as (object, its ref before, its ref after), while a first call watches
    # its loops' rounds (see `build.carried`); None otherwise
    changes: list[tuple[Any, ValueRef, ValueRef]] | None
    # and the containers whose items the code read as the refs they were built with (`seen[0]`)
    contents_read: list[Any] | None
    _handed: dict[int, tuple[Any, int]]
    _shapes: dict[int, tuple[tuple[ValueRef, ...], frozenset[int]]]
    _globals: dict[tuple[int, str], ValueRef]  # see GraphBuilder.store_global
    module_changed: dict[tuple[int, str], str]  # globals assigned or changed so far, and by what
    # an object's ref after attribute stores -> (that ref, its ref before them, the attributes set)
    _set_attributes: dict[int, tuple[ValueRef, ValueRef, frozenset[str]]]

    def lookup(self, ref: ValueRef) -> ValueRef:
        """The current ref of the object `ref` names, if that object was changed in place."""
        value = ref.value
        if value is MISSING or purity.is_immutable(value):
            return ref
        entry = self._heap.get(id(value))
        if entry is not None and entry[0] is value:
            return with_value(entry[1], value) if entry[1] is not ref else ref
        return ref

    def holding(self, ref: ValueRef) -> ValueRef:
        """`ref`, handed whole to a call (which reads what it holds, not only itself): depending also on
        the changes in place to the objects its value holds, a few levels down (`rows[0].append(x)`
        changed `rows` for `str(rows)`; `self.data[k] = x` changed `self` for a method that reads
        `self.data`).  Looked at without running user code: items of built-in containers, and the
        values in an object's own `__dict__`."""
        if not self._heap or ref.value is MISSING or purity.is_immutable(ref.value):
            return ref
        extra: frozenset[int] = frozenset()
        seen = {id(ref.value)}
        todo = [(ref.value, 0)]
        while todo and len(seen) < _HELD_MAX:
            obj, depth = todo.pop()
            for held in contents(obj):
                if id(held) in seen or purity.is_immutable(held):
                    continue
                seen.add(id(held))
                entry = self._heap.get(id(held))
                if entry is not None and entry[0] is held:
                    extra |= entry[1].deps
                if depth + 1 < _HELD_DEPTH:
                    todo.append((held, depth + 1))
        return with_deps(ref, ref.deps | extra) if extra - ref.deps else ref

    def changed_by_code_in(self, value: Any) -> Any:
        """An object `value` is or holds, a few levels down (a bound method: its object; a closure:
        its cells), that the code changed in place so far, not a slow call (`self.log.append(d)`,
        `doc.seen = True`), else MISSING.  A slow call handed it, or a method of it, issued ahead
        would see it as it was before the change: a change by glue is no operation the call could
        wait for.  A container the code built (`notes = []`) counts where an object, a method or a
        closure holds it (`Recorder(notes)`, `partial(ask, notes)`): handed in built-in containers
        only, its items are followed (a recipe makes it as it is then, or the plan refuses it)."""
        if not self.changed_by_code or value is MISSING or purity.is_immutable(value):
            return MISSING
        for obj, through in _within(value):
            if obj is _TOO_MANY:
                break
            entry = self.changed_by_code.get(id(obj))
            if entry is not None and entry[0] is obj and (through or not entry[1]):
                return obj
        return MISSING

    def mutate(self, obj: Any, ref: ValueRef, deps: frozenset[int], new: ValueRef | None = None) -> ValueRef:
        """Record that `obj` (whose ref is `ref`) may have changed, depending on `deps`."""
        changed = new if new is not None else with_deps(expr(ExprKind.EFFECT, (ref,), value=obj), deps)
        if ref.source is not Source.EXPR:  # not a container the glue built and we follow item by item
            self.effects += 1
            if ref.source is Source.GLOBAL and not self.by_call:
                self.global_changes += 1  # (`METRICS.append(row)`: see `execute.first`)
        if obj is not MISSING and not purity.is_immutable(obj):
            self._heap[id(obj)] = (obj, changed)
            if not self.by_call:
                known = self.changed_by_code.get(id(obj))
                built = ref.source is Source.EXPR and (known is None or known[0] is not obj or known[1])
                self.changed_by_code[id(obj)] = (obj, built)
            self.retain(changed)
            if self.changes is not None:
                self.changes.append((obj, ref, changed))
        return changed

    def read_contents(self, container: ValueRef) -> ValueRef:
        """The code reads items of `container` as the refs it was built with (`seen[0]` is the ref
        appended first): what those are holds for this run of the code only while the container is
        not changed in place, which a first call watching its loops' rounds must know (see
        `build.carried`).  Gives `container`."""
        if self.contents_read is not None:
            self.contents_read.append(container.value)
        return container

    def set_attribute(self, obj: ValueRef, name: str, deps: frozenset[int]) -> None:
        """`obj.name = ...` (or `del obj.name`): the object changed in place.  When the store can only
        set that one attribute (no `__setattr__`, property or slot of the class's own runs), what the
        object's other attributes hold is unchanged: `unchanged_for` reads them through the ref the
        object had before (a counter `self.requests += 1` leaves `self.client` as it was)."""
        current = self.lookup(obj)
        changed = self.mutate(obj.value, current, deps)
        if changed is current or not _plain_attribute(obj.value, name):
            return
        entry = self._set_attributes.pop(id(current), None)  # (superseded: one entry an object)
        before, names = (
            (entry[1], entry[2]) if entry is not None and entry[0] is current else (current, frozenset())
        )
        self._set_attributes[id(changed)] = (changed, before, names | {name})

    def unchanged_for(self, obj: ValueRef, name: str, value: Any) -> ValueRef:
        """The ref to read attribute `name` of `obj` through, `value` being what it holds: the
        object's ref before the attribute stores since that did not set `name` (see `set_attribute`),
        else `obj`.  Not when `value` reaches the object itself (a method bound to it, a closure or
        a `partial` over it): calling it reads the attributes the stores set."""
        entry = self._set_attributes.get(id(obj))
        if entry is None or entry[0] is not obj or name in entry[2] or not _plain_reads(obj.value):
            return obj
        return obj if value is MISSING or holds(value, obj.value) else entry[1]

    def retain(self, ref: ValueRef, local: str | None = None) -> None:
        """`ref`'s container outlives the expression that built it (stored, or changed in place).

        A planned call handed such a container would get a copy, not the object the code keeps
        and may read again: `plan` refuses those. Containers only the callee sees (`messages=[...]`
        built in the call itself) are not retained. Keyed by the operands tuple, like shapes.
        `local`: it was stored in that local of the observed function's own frame (`holders` says
        which locals hold it, or None once it is kept anywhere else too: see `liveness.never_read_again`).
        """
        if (
            ref.source is Source.EXPR
            and ref.kind in (ExprKind.LIST, ExprKind.DICT, ExprKind.SET)
            and ref.operands
        ):
            key = id(ref.operands)
            self.retained[key] = ref.operands
            held = self.holders.get(key, set())
            if held is not None and local is not None:
                held.add(local)
            self.holders[key] = held if local is not None else None

    def hand(self, obj: Any) -> None:
        entry = self._handed.get(id(obj))
        self._handed[id(obj)] = (obj, entry[1] + 1 if entry is not None and entry[0] is obj else 1)

    def mutate_arg(self, ref: ValueRef, deps: frozenset[int]) -> None:
        """`ref` was handed to a call that may change it, and what it holds."""
        if ref.value is not MISSING and not purity.is_immutable(ref.value):
            self.hand(ref.value)
            self.mutate(ref.value, self.lookup(ref), deps)

    def change_globals(
        self, callee: Any, state: purity.ModuleState, deps: frozenset[int], made_after: int
    ) -> None:
        """A call of a Python function changed the module state its code may change (`state`, its
        `purity.module_state`): a global it may assign reads as a value made after `made_after`
        operations (of unknown provenance), a container it may change as changed in place by it."""
        rebinds = {(id(globals_), name) for globals_, name in state.rebinds}
        for globals_, name in state.writes:
            key = (id(globals_), name)
            value = globals_.get(name, MISSING)
            self.module_changed[key] = f"{describe_callee(callee)}()"
            if key in rebinds:
                self.effects += 1
                self._globals[key] = unknown(made_after, value=value, origin=f"{describe_callee(callee)}()")
            elif isinstance(value, purity.MUTABLE_DATA):
                self.mutate(value, self.lookup(ValueRef(Source.GLOBAL, name=name, value=value)), deps)

    def changed_global(self, state: purity.ModuleState) -> tuple[str, str] | None:
        """A global among `state.reads` the run has changed so far, and what changed it (for people):
        assigned (by the code or a call of a helper that assigns it), or changed in place; any of them
        after code that may change any global ran (`purity.ANY_GLOBAL`)."""
        anything = self.module_changed.get(purity.ANY_GLOBAL)
        if anything is not None and state.reads:
            return state.reads[0][1], anything
        for globals_, name in state.reads:
            by = self.module_changed.get((id(globals_), name))
            if by is not None:
                return name, by
            value = globals_.get(name, MISSING)
            entry = self._heap.get(id(value))
            if entry is not None and entry[0] is value:
                return name, "a change in place"
        return None

    def mutate_receiver(
        self, callee: Any, callee_ref: ValueRef, deps: frozenset[int], *, deep: bool = False
    ) -> None:
        receiver = getattr(callee, "__self__", MISSING)
        if receiver is MISSING or isinstance(receiver, types.ModuleType) or purity.is_immutable(receiver):
            return
        if deep:
            self.hand(receiver)
        self.mutate(receiver, self.receiver_ref(receiver, callee_ref), deps)

    def receiver_ref(self, receiver: Any, callee_ref: ValueRef) -> ValueRef:
        entry = self._heap.get(id(receiver))
        if entry is not None and entry[0] is receiver:
            return entry[1]
        if callee_ref.path and callee_ref.path[-1].kind == "attr":  # `xs.append` -> `xs`
            return with_path(callee_ref, callee_ref.path[:-1], receiver)
        return with_value(callee_ref, receiver)

    def _append(
        self, receiver: list[Any], callee_ref: ValueRef, item: ValueRef, control: frozenset[int]
    ) -> None:
        """`xs.append(item)`: keep element-wise provenance when we know what `xs` holds."""
        base = self.receiver_ref(receiver, callee_ref)
        if (
            base.source is Source.EXPR
            and base.kind is ExprKind.LIST
            and len(base.operands) == len(receiver) - 1
        ):
            new = expr(ExprKind.LIST, (*base.operands, item), value=receiver, deps=base.deps | item.deps)
            self.set_shape(new, self.shape_deps(base) | control)
        else:
            new = with_deps(expr(ExprKind.EFFECT, (base, item), value=receiver), base.deps)
        self.mutate(receiver, base, new.deps, new)

    def snapshot(self, fs: FrameState, refs: tuple[ValueRef, ...]) -> tuple[Watched, ...]:
        """What a loop over `refs` must see unchanged when it runs out for its length to be a guard: each
        sequence itself (changed in place at all) and the objects it was read from (`self` of
        `self.items`: handed to a call, which may change what they hold). Entries: (object, whether it is
        the sequence, its _heap entry, how many times it was handed to a call)."""
        out: list[Watched] = []
        for ref in refs:
            objects = [(ref.value, True)]
            value = self.root_value(fs, ref)
            for hop in ref.path:
                objects.append((value, False))
                value = _peek(value, hop)
            out.extend(
                self._watched(obj, itself)
                for obj, itself in objects
                if obj is not MISSING and not purity.is_immutable(obj)
            )
        return tuple(out)

    def snapshot_held(self, values: Iterable[Any]) -> tuple[Watched, ...] | None:
        """Each mutable object `values` are or hold, a few levels down (see `_within`), watched as a
        walked sequence is (`changed` tells a change in place of any); None: too many to watch."""
        out: list[Watched] = []
        for value in values:
            for obj, _ in _within(value):
                if obj is _TOO_MANY:
                    return None
                if not purity.is_immutable(obj):
                    out.append(self._watched(obj, True))
        return tuple(out)

    def _watched(self, obj: Any, itself: bool) -> Watched:
        handed = self._handed.get(id(obj))
        count = handed[1] if handed is not None and handed[0] is obj else 0
        return (obj, itself, self._heap.get(id(obj)), count)

    def changed(self, snapshot: tuple[Watched, ...]) -> bool:
        for obj, itself, entry, count in snapshot:
            handed = self._handed.get(id(obj))
            if itself and self._heap.get(id(obj)) is not entry:
                return True
            if handed is not None and handed[1] != count:
                return True
        return False

    def root_value(self, fs: FrameState, ref: ValueRef) -> Any:
        """The object at the start of `ref`'s path: the input or global it reads (else MISSING)."""
        if not ref.path:
            return MISSING
        if ref.source is Source.INPUT and ref.name in self.inputs:
            return self.inputs[ref.name].value
        if ref.source is Source.GLOBAL:
            return fs.frame.f_globals.get(ref.name, MISSING)
        return MISSING

    def set_shape(self, ref: ValueRef, deps: frozenset[int]) -> ValueRef:
        if ref.operands:
            self._shapes[id(ref.operands)] = (ref.operands, deps)
        return ref

    def forget_shape(self, ref: ValueRef) -> None:
        """Drop `ref`'s shape entry (it keeps its operands alive: a list grown by n appends would
        keep n copies)."""
        entry = self._shapes.get(id(ref.operands))
        if entry is not None and entry[0] is ref.operands:
            del self._shapes[id(ref.operands)]

    def shape_deps(self, ref: ValueRef) -> frozenset[int]:
        """What the number of items of `ref` depends on."""
        view = dict_view_of(ref)
        if view is not None:  # `d.items()`: as many items as the dict has keys
            return self.shape_deps(view)
        if ref.source is Source.EXPR and ref.kind in CONTAINERS:
            if not ref.operands:
                return ref.deps
            entry = self._shapes.get(id(ref.operands))
            if entry is not None and entry[0] is ref.operands:
                return entry[1] | key_deps(ref)
        return ref.deps


_VIEWS = ("items", "keys", "values")


def dict_view_of(ref: ValueRef) -> ValueRef | None:
    """For `d.items()`, `d.keys()` or `d.values()` of a dict (a call of its built-in method, no
    arguments), the ref of `d`; else None."""
    if ref.source is not Source.EXPR or ref.kind is not ExprKind.CALL or len(ref.operands) != 1:
        return None
    method = ref.operands[0]
    owner = getattr(method.value, "__self__", None)
    if type(owner) is not dict or not method.path or method.path[-1].kind != "attr":
        return None
    if method.path[-1].key not in _VIEWS:
        return None
    return with_path(method, method.path[:-1], owner)


_OBJECT_GETATTRIBUTE = object.__dict__["__getattribute__"]
_OBJECT_SETATTR = object.__dict__["__setattr__"]


def _plain_reads(obj: Any) -> bool:
    """Does reading an attribute of `obj` only look it up (no `__getattribute__` or `__getattr__` of
    its class's own, which could compute it from other attributes)?"""
    cls = type(obj)
    return (
        class_lookup(cls, "__getattribute__") is _OBJECT_GETATTRIBUTE
        and class_lookup(cls, "__getattr__") is MISSING
    )


def _plain_attribute(obj: Any, name: str) -> bool:
    """Does `obj.name = value` only set that entry of the object's `__dict__`?  Not with a
    `__setattr__` of the class's own, nor for a property, slot or other data descriptor."""
    cls = type(obj)
    if (
        obj is MISSING
        or class_lookup(cls, "__setattr__") is not _OBJECT_SETATTR
        or not hasattr(obj, "__dict__")
    ):
        return False
    found = class_lookup(cls, name)
    return found is MISSING or not (hasattr(type(found), "__set__") or hasattr(type(found), "__delete__"))
