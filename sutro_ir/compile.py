"""Source file -> Program: read, parse, lower, verify, run the pass pipeline on the step graph."""

from __future__ import annotations

import dataclasses
import os

from .errors import Loc, SirError
from .lower import lower
from .passes import run_pipeline
from .program import Program
from .syntax import parse


def read_source(path: str) -> str:
    if not os.path.exists(path):
        raise SirError("no such program file", Loc(path, 0, 0))
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise SirError(f"cannot read the program: {e}", Loc(path, 0, 0)) from None


def compile_program(text: str, file: str, overrides: dict | None = None,
                    passes: str = "") -> Program:
    program = lower(parse(text, file), overrides)
    if passes:
        train = dataclasses.replace(program.train, graph=run_pipeline(program.train.graph, passes))
        program = dataclasses.replace(program, train=train)
    return program


def compile_file(path: str, overrides: dict | None = None, passes: str = "") -> Program:
    return compile_program(read_source(path), path, overrides, passes)
