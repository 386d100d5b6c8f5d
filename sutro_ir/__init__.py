"""The .sir language and its compiler: parse, graph IR, passes, schedule, executor, and the
lowering to a trace.

Produces traces for `simulator/` and never depends on how they are priced.
"""
