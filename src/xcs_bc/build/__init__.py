"""Stage 2, build: turn an observed run into an SSA `ComputationGraph`.

`codeinfo` describes a code object statically (stack effects, jumps, branch
merge points); `purity` classifies callees (pure, changing their arguments,
setting attributes, memoizing); `frames` holds a frame's shadow stack and the
branches it runs under; `arms` reads what the arm of a branch the run did not
take could do; `builder` runs a shadow stack machine over the observed
instructions (`GraphBuilder`, made of `effects`: objects changed in place and
the shapes of containers; `calls`: completing call instructions; `loops`: loops
and comprehension frames) and applies each instruction with a handler of
`handlers/` (by family: `names`, `containers`, `iteration`, `branches`,
`operators`, `stack`; the table in `handlers.table`).  `displays`, `generators`
and `slow` are small facts the others share.  It hands on a `trace.Trace`: the
graph, the decisions the run took, its loops and the values the planner may
read.  Internal: the public API is `xcs_bc`.
"""
