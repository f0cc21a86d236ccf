"""Stage 3, analyze: what a graph means for people.

`patterns` finds maps, ensembles, chains and reduces; `report` writes the
capture report (sequential time, critical path, speedup bound, groups).  The
graph queries themselves (dependencies, levels, independent sets, critical
path) are `xcs_bc.ir.passes`.  Internal: the public API is `xcs_bc`.
"""
