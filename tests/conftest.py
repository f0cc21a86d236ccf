"""Shared test settings."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from xcs_bc.execute import limits


@pytest.fixture(autouse=True, scope="session")
def unfrozen_at_the_end() -> Iterator[None]:
    """Give what `no_gc_pauses` froze back to the collector once the session is over."""
    yield
    gc.unfreeze()
    gc.collect()


@pytest.fixture(autouse=True)
def no_gc_pauses() -> Iterator[None]:
    """Collect garbage before each test and pause the collector during it.

    Slow calls are told from glue by their duration (`min_call_ms`); a full
    collection in a large test process can take longer than that and would
    make a glue call look slow.  That is inherent to timing-based
    classification, not a bug the tests should chase.

    What survives the collection is then frozen (`gc.freeze`): the imported
    modules, the collected test items and whatever earlier tests keep live
    for the whole session (some 130,000 objects in a full run, whose every
    full collection took about 0.15 s, for each of some 1,600 tests).  So
    each test's collection looks only at what the test before it left, and
    so does the collector when it runs between tests.  (A cycle among frozen
    objects that becomes garbage later is reclaimed at the end of the
    session, by `unfrozen_at_the_end`.)
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.fixture(autouse=True)
def limits_as_they_were() -> Iterator[None]:
    """Limits hold across the process: what a test names with `xcs.limit`, and what overloads
    teach the limits it meets, is forgotten after it."""
    targets, hosts = dict(limits._targets), dict(limits._hosts)
    yield
    limits._targets.clear()
    limits._targets.update(targets)
    limits._hosts.clear()
    limits._hosts.update(hosts)
    if limits._others.rejected:
        limits._others = limits.Limit("other callees")
