"""Stage 4, plan: turn a traced graph into a plan that later calls can replay.

`slices` compiles the pure expression behind an argument or a guard into a
small function; `planner` makes the guards and a recipe per slow call (or the
reason there is none); `generalize` turns a traced loop's rounds into a
template replayed for any length.  Internal: the public API is `xcs_bc`.
"""
