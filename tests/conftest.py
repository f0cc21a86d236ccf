"""Shared test settings."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def no_gc_pauses() -> Iterator[None]:
    """Collect garbage before each test and pause the collector during it.

    Slow calls are told from glue by their duration (`min_call_ms`); a full
    collection in a large test process can take longer than that and would
    make a glue call look slow.  That is inherent to timing-based
    classification, not a bug the tests should chase.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
