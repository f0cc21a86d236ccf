"""Execute: the timeline of a jitted function's last replay, against the traced (plain) run.

A replay notes, for each planned call the run made, when it ran, on which thread, and whether it
was issued ahead (answered on a worker) or made in its turn on the caller's thread.  `Timeline`
puts those beside the same calls as the traced run made them, one after another, and prints
them as a table or draws them (`to_svg()`).  It holds names, sites and times only: no argument
or result of the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from xcs_bc.ir import Site
from xcs_bc.ir.pictures import Bar, bars_svg

__all__ = ["Span", "Timeline"]

_TRACED, _AHEAD, _IN_TURN = "#b8b8b8", "#2e9d5b", "#e08a1e"


@dataclass(frozen=True)
class Span:
    """One planned call of a replay: as the replay made it, and as the traced run did."""

    name: str
    site: Site
    start: float  # seconds from the replay's start
    end: float
    worker: str  # the thread that made it
    ahead: bool  # issued ahead (True), or made in its turn by the run
    traced: tuple[float, float] | None  # (start, end) in the traced run, from its first slow call


@dataclass(frozen=True)
class Timeline:
    """A jitted function's last replay: `seconds` of wall time for its slow calls (`spans`), which
    the traced run made in `traced_seconds`."""

    function: str
    seconds: float
    traced_seconds: float
    spans: tuple[Span, ...]

    def __str__(self) -> str:
        lines = [
            f"replay of {self.function}: {len(self.spans)} slow calls in {self.seconds * 1000:.1f} ms "
            f"(traced run: {self.traced_seconds * 1000:.1f} ms)"
        ]
        for span in self.spans:
            how = "ahead" if span.ahead else "in turn"
            lines.append(
                f"  {span.name:<28} {span.site!s:<24} {span.start * 1000:8.1f} - {span.end * 1000:8.1f} ms"
                f"  {how:<7}  {span.worker}"
            )
        return "\n".join(lines)

    def to_svg(self) -> str:
        """The replay's calls (green: issued ahead, orange: made in turn) under the traced run's (grey)."""
        rows = []
        for span in self.spans:
            bars = []
            if span.traced is not None:
                start, end = span.traced
                bars.append(Bar(start, end, _TRACED, f"traced: {start * 1000:.1f}-{end * 1000:.1f} ms"))
            how = "issued ahead" if span.ahead else "made in turn"
            tooltip = f"replay: {span.start * 1000:.1f}-{span.end * 1000:.1f} ms, {how}, on {span.worker}"
            bars.append(Bar(span.start, span.end, _AHEAD if span.ahead else _IN_TURN, tooltip))
            rows.append((f"{span.name} ({span.site})", bars))
        title = (
            f"{self.function}: {self.traced_seconds * 1000:.0f} ms traced, "
            f"{self.seconds * 1000:.0f} ms replayed"
        )
        legend = "Traced run (grey); replay: issued ahead (green), made in turn (orange)"
        return bars_svg(title, legend, rows)
