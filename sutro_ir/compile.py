"""Source file -> Program: read, parse, lower, verify, run the pass pipeline on the step graph."""

from __future__ import annotations

import dataclasses

from simulator.errors import SimError
from simulator.inputs import Utf8Error, decode_utf8, read_bytes

from .errors import Loc, SirError
from .lower import lower
from .passes import run_pipeline
from .program import Program
from .syntax import loc_at, parse, source_lines


MAX_SOURCE_BYTES = 256 << 10
"""A program file larger than this is refused before it is read. The largest in programs/ is
under 2 KiB. Parsing and lowering take about 40 us a term, so the worst file of this size (one
sum of 2-byte terms, 130,000 of them) compiles in about 6 s, not minutes."""


def read_source(path: str) -> str:
    """The program's text, or a SirError saying why not (simulator/inputs.py: missing, a
    directory or a pipe, unreadable, too large; not UTF-8, with the line and column)."""
    try:
        data = read_bytes(path, "program file", MAX_SOURCE_BYTES)
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")   # as open() would
        return decode_utf8(data, "program", path)
    except Utf8Error as e:
        lines = source_lines(data.decode("utf-8", errors="replace"))
        raise SirError(e.message, loc_at(path, lines, e.line, e.col)) from None
    except SimError as e:
        raise SirError(e.message, Loc(e.where, 0, 0)) from None


def compile_program(text: str, file: str, overrides: dict | None = None,
                    passes: str = "") -> Program:
    program = lower(parse(text, file), overrides)
    if passes:
        train = dataclasses.replace(program.train, graph=run_pipeline(program.train.graph, passes))
        program = dataclasses.replace(program, train=train)
    return program


def compile_file(path: str, overrides: dict | None = None, passes: str = "") -> Program:
    return compile_program(read_source(path), path, overrides, passes)
