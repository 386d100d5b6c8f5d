"""The .sir language and its compiler: parse, graph IR, passes, schedule, executor, lowering to a trace.

Produces traces for `simulator/` and never depends on how they are priced.
"""
