"""Stage 1, observe: hooks that watch the target frames and report what they run.

`hooks` installs a `sys.monitoring` tool (3.12+) or, through `tracing`, a
`sys.settrace` hook (3.10, 3.11) scoped to the observed code, and hands every
instruction, call, entry, return and exception to a listener (the builder).
`foreign` tells whether someone else's hook (a debugger, a profiler) watches
the calling thread.  Internal: the public API is `xcs_bc`.
"""
