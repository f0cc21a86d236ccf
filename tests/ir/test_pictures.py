"""`to_dot`, `to_mermaid` and `to_svg`: the boxes and arrows of a graph, every label escaped."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET

from irfactory import GraphFactory, chain_graph, judge_graph
from xcs_bc.ir import passes

# what a prompt or a callee's name may hold: every character a format reads
NASTY = 'say "hi" \\N <script>alert(1)</script>\n# `x` & --> ]; }'


def nasty_graph() -> tuple[GraphFactory, list[object]]:
    g = GraphFactory('odd "name"')
    q = g.input("q")
    a = g.call(f"tool<{NASTY}>", NASTY, line=3, duration=0.05)
    b = g.call("llm", q, line=4, duration=0.05)
    c = g.call("judge", a, b, line=5, duration=0.05)
    g.call("branch_only", q, line=6, control=[c], duration=0.05)
    return g, [a, b, c]


def dot_strings(dot: str) -> list[str]:
    """Every double-quoted string of a DOT text, unescaped (DOT's \\n line breaks as newlines)."""
    found = re.findall(r'"((?:[^"\\]|\\.)*)"', dot)
    return [re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), s) for s in found]


def test_dot_has_a_box_per_call_and_an_arrow_per_immediate_dependency() -> None:
    dot = judge_graph((0.1, 0.2, 0.3)).to_dot()
    assert dot.startswith('digraph "judge_pipeline" {')
    assert [line.split()[0] for line in dot.splitlines() if " [label=" in line] == ["op0", "op1", "op2"]
    assert sorted(line.strip() for line in dot.splitlines() if "->" in line) == ["op0 -> op2;", "op1 -> op2;"]
    assert "%2 judge\njudge.py:12\n300.0 ms" in dot_strings(dot)
    assert '%2 = call judge(f"A: {%0} B: {%1}", k=3)' in dot_strings(dot)  # its tooltip


def test_an_arrow_implied_by_a_path_is_left_out() -> None:
    dot = chain_graph().to_dot()  # revise needs draft and critique, which needs draft: no draft -> revise
    assert sorted(line.strip() for line in dot.splitlines() if "->" in line) == [
        "op0 -> op1;",
        "op1 -> op2;",
        "op2 -> op3;",
    ]


def test_dot_escapes_every_label_and_dashes_an_arrow_through_a_branch_only() -> None:
    g, _ = nasty_graph()
    dot = g.graph().to_dot()
    strings = dot_strings(dot)
    name_line = f"%0 tool<{NASTY}>".replace("\n", " ")
    assert any(s.split("\n")[0] == name_line for s in strings)  # the text comes back whole
    assert '"odd \\"name\\""' in dot
    assert "op2 -> op3 [style=dashed];" in dot
    # nothing outside a quoted string is label text: removing the strings leaves only DOT syntax
    skeleton = re.sub(r'"(?:[^"\\]|\\.)*"', '""', dot)
    assert "script" not in skeleton and "`" not in skeleton and "-->" not in skeleton


def test_mermaid_escapes_what_mermaid_or_html_would_read() -> None:
    g, _ = nasty_graph()
    mermaid = g.graph().to_mermaid()
    assert mermaid.startswith("flowchart LR\n")
    labels = re.findall(r'^  op\d+\["(.*)"\]$', mermaid, flags=re.MULTILINE)
    assert len(labels) == 4
    for label in labels:
        assert not set('"<>`&') & set(label.replace("<br/>", ""))
        assert not re.search(r"#(?![0-9]+;|quot;|amp;|lt;|gt;)", label)  # every '#' starts a code
    decoded = re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), labels[0].split("<br/>")[0])
    decoded = decoded.replace("#quot;", '"').replace("#lt;", "<").replace("#gt;", ">").replace("#amp;", "&")
    assert decoded == f"%0 tool<{NASTY}>".replace("\n", " ")
    assert "  op2 -.-> op3" in mermaid and "  op0 --> op2" in mermaid


def test_the_svg_is_well_formed_and_keeps_every_text_whole() -> None:
    g, _ = nasty_graph()
    graph = g.graph()
    svg = graph.to_svg()
    root = ET.fromstring(svg)
    texts = ["".join(node.itertext()) for node in root.iter() if node.tag.endswith("text")]
    titles = [node.text or "" for node in root.iter() if node.tag.endswith("title")]
    assert texts[0].startswith('odd "name": 4 slow calls, 200 ms one after another, 150 ms as soon')
    assert "%3 branch_only" in texts  # a box's first line
    # a box's tooltip is its whole SSA line (clipped nowhere, newlines made spaces)
    assert any(NASTY.replace("\n", " ") in title for title in titles)
    # the timeline: a grey (as run) and a blue (as soon as ready) bar per call
    bars = [node for node in root.iter() if node.tag.endswith("rect") and node.get("height") == "8"]
    assert len(bars) == 2 * len(graph.operations)
    assert "<script>" not in svg and html.escape("<script>") in svg


def test_the_timeline_starts_each_call_when_what_it_needs_is_done() -> None:
    graph = judge_graph((0.1, 0.2, 0.3))
    root = ET.fromstring(graph.to_svg())
    blue = [node for node in root.iter() if node.tag.endswith("rect") and node.get("fill") == "#5b8def"]
    spans = [(node.find("{http://www.w3.org/2000/svg}title").text or "") for node in blue]
    # gen_a and gen_b at once, the judge after the slower of them
    assert spans == ["%0: 0.0-100.0 ms", "%1: 0.0-200.0 ms", "%2: 200.0-500.0 ms"]
    assert passes.critical_path(graph).seconds == 0.5
