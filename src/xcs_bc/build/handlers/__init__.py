"""The per-opcode handlers of the builder, by family.

Each handler is `handler(b, fs, ins, jumped)`: it applies the completed instruction `ins` of the
frame `fs` to the shadow stack, through the builder `b`'s methods.  `names` (locals, globals,
attributes), `containers` (displays, subscripts, slices, unpacking), `iteration` (GET_ITER,
FOR_ITER, enumerate/zip/range in lockstep), `branches` (conditional jumps), `operators` (binary,
unary, comparisons, f-strings, pure expressions), `stack` (stack shuffles, no-ops, return, yield,
the conservative handler), and `table`: the opcode -> handler table and the opcodes left
conservative.
"""
