"""Stage 4, plan: turn a traced graph into a plan that later calls can replay.

`slices` compiles the pure expression behind an argument or a guard into a
small function; `recipes` makes one planned call ahead (or says why it waits);
`guards` check whether a plan applies to new arguments; `memo` keeps memoized
callees from racing on their cache; `readpoints` finds where a recipe may read
the function's locals; `planner` puts these together into a `Plan`;
`templates` unifies a traced loop's rounds into one template and `generalize`
makes from it a schedule for any length; `release` keeps a plan without the
trace's arguments and results.
Internal: the public API is `xcs_bc`.
"""
