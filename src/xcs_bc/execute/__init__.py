"""Stage 5, execute: run a plan.

`rewrite` clones the function with its slow call sites routed through a
dispatcher; `replay` issues the planned calls ahead on an `Executor` and serves
them to the clone when the real call matches; `executor` is the executor
protocol and the shared thread pool.  Internal: the public API is `xcs_bc`.
"""
