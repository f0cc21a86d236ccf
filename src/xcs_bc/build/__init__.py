"""Stage 2, build: turn an observed run into an SSA `ComputationGraph`.

`codeinfo` describes a code object statically (stack effects, jumps, branch
merge points); `purity` classifies callees (pure, changing their arguments,
setting attributes, memoizing); `builder` runs a shadow stack machine over the
observed instructions and makes the graph, the decisions the run took, its
loops and the values the planner may read.  Internal: the public API is `xcs_bc`.
"""
