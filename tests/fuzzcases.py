"""Fuzz cases for the `sutro-sim` command line, shared by tests/test_fuzz.py (a fixed small
budget under hypothesis) and benchmarks/fuzz_campaign.py (a long campaign by hand).

A *case* is one command-line invocation: an argv and the files it needs, written into a fresh
temporary folder (`{tmp}` in the argv stands for that folder). Four generators make cases from
a `random.Random` (tests/test_fuzz.py seeds it from hypothesis):

- `program_case`: a mutated .sir program (tokens deleted, inserted, replaced or duplicated,
  lines swapped, numbers made huge, negative or zero, deep nesting, odd characters, bytes that
  are not UTF-8, empty files, very long lines), then `run`, `graph` or `compare`;
- `options_case`: a valid small program or trace, with random options (--set, --trace-steps,
  --passes, --hierarchy, --energy, --plot, --target-accuracy=, --seed, flags);
- `trace_case`: `simulate` on a mutated trace file (meta.json fields, .npy members, the zip
  archive itself, or a path that is not a file at all);
- `hierarchy_case`: `simulate`/`run`/`compare` with a mutated hierarchy TOML file, also through
  `--passes 'recompute{policy=auto,hierarchy=FILE}'`.

The contract checked (`classify`): exit 0, or 2 with a first stderr line `WHERE: error: WHAT`
(argparse's own usage errors: a usage line, then `PROG: error: WHAT` last), or 3 from `run` and
`compare` (training diverged); never a traceback, never a hang, never unbounded memory.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import io
import json
import os
import random
import re
import resource
import signal
import struct
import subprocess
import sys
import time
import traceback
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS_DIR = ROOT / "programs"
EXAMPLES_DIR = ROOT / "examples"
PRESETS_DIR = ROOT / "simulator" / "presets" / "hierarchies"
TMP = "{tmp}"               # stands for the case's folder in argv
CATEGORIES = ("programs", "options", "traces", "hierarchies")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0   # chmod 0 does not stop root reading

ENERGIES = ("dally-2020", "dally-2022", "horowitz-45nm", "modern-5nm-hbm3")
HIERARCHIES = ("sutro-tiers", "cpu-like", "h100-like")


# ============================================================================ cases

@dataclass(frozen=True)
class Special:
    """A file that is not plain bytes: a folder, a named pipe, an unreadable file, a symlink."""

    kind: str                 # dir | fifo | unreadable | symlink
    data: bytes = b""         # unreadable: its content; symlink: its target (may hold {tmp})


@dataclass
class Case:
    category: str
    argv: list[str]                                   # `{tmp}` stands for the case's folder
    files: dict[str, bytes | Special] = field(default_factory=dict)
    note: str = ""                                    # which mutations made it

    @property
    def command(self) -> str:
        return self.argv[0] if self.argv else ""

    def to_json(self) -> dict:
        files = {}
        for name, f in self.files.items():
            if isinstance(f, Special):
                files[name] = {"special": f.kind, "b64": base64.b64encode(f.data).decode()}
            else:
                files[name] = {"b64": base64.b64encode(f).decode()}
        return {"category": self.category, "argv": self.argv, "files": files,
                "note": self.note}

    @classmethod
    def from_json(cls, d: dict) -> "Case":
        files: dict[str, bytes | Special] = {}
        for name, f in d["files"].items():
            data = base64.b64decode(f["b64"])
            files[name] = Special(f["special"], data) if "special" in f else data
        return cls(d["category"], list(d["argv"]), files, d.get("note", ""))


def materialize(case: Case, folder: str | os.PathLike) -> list[str]:
    """Write the case's files into `folder`; return its argv with `{tmp}` filled in."""
    folder = os.fspath(folder)
    later = []
    for name, content in case.files.items():
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if isinstance(content, bytes):
            with open(path, "wb") as f:
                f.write(content)
        elif content.kind == "dir":
            os.makedirs(path, exist_ok=True)
        elif content.kind == "fifo":
            os.mkfifo(path)
        elif content.kind == "symlink":
            os.symlink(content.data.decode("utf-8", "surrogateescape").replace(TMP, folder), path)
        elif content.kind == "unreadable":
            with open(path, "wb") as f:
                f.write(content.data)
            later.append(path)
    for path in later:
        os.chmod(path, 0)
    return [a.replace(TMP, folder) for a in case.argv]


def cleanup(folder: str | os.PathLike) -> None:
    """Remove a case's folder, whatever the case made of it (chmod 0 files, pipes, plots)."""
    import shutil

    def onerror(func, path, exc_info):
        try:
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700)
            func(path)
        except OSError:
            pass
    for dirpath, dirnames, _ in os.walk(folder):
        for d in dirnames:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(dirpath, d), 0o700)
    shutil.rmtree(folder, onerror=onerror)


# ============================================================================ helpers

def _w(rng: random.Random, weighted):
    """Pick from [(weight, value), ...]."""
    total = sum(w for w, _ in weighted)
    x = rng.random() * total
    for w, v in weighted:
        x -= w
        if x < 0:
            return v
    return weighted[-1][1]


def _big(rng: random.Random, big: bool, small_choices, big_choices):
    return rng.choice(list(small_choices) + (list(big_choices) if big else []))


# ============================================================================ programs

NOT_CAPPED = {"vocab": 1 << 20, "length": 400}
"""A chars dataset's vocab must cover the corpus's 23 characters, and its text needs room for
windows in both parts: these config constants are capped at these values instead."""


def _shrink(text: str) -> str:
    """A program's small version: integers in its config and data lines capped at 16 (but
    NOT_CAPPED), two epochs, so that a mutant that still compiles trains in a fraction of a
    second."""
    out = []
    for line in text.splitlines(keepends=True):
        if line.startswith(("config", "data")):
            kept = {name: min(int(v), NOT_CAPPED[name]) for name, v in
                    re.findall(r"\b(" + "|".join(NOT_CAPPED) + r") = (\d+)", line)}
            code, hash_, comment = line.partition("#")
            parts = re.split(r'("[^"]*")', code)      # not inside strings ("01")
            code = "".join(part if part.startswith('"') else
                           re.sub(r"(?<![\w.])\d+(?![\w.])",
                                  lambda m: str(min(int(m.group()), 16)), part)
                           for part in parts)
            code = re.sub(r"\bepochs = \d+", "epochs = 2", code)
            for name, v in kept.items():
                code = re.sub(rf"\b{name} = \d+", f"{name} = {v}", code)
            line = code + hash_ + comment
        out.append(line)
    return "".join(out)


_BASES: dict[str, str] = {}


def base_programs() -> dict[str, str]:
    """Every program of programs/, shrunk (name -> source)."""
    if not _BASES:
        for p in sorted(PROGRAMS_DIR.glob("*.sir")):
            _BASES[p.name] = _shrink(p.read_text())
    return _BASES


TOKEN_RE = re.compile(r"""\n|[ \t]+|\#[^\n]*|"[^"\n]*"|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|[A-Za-z_]\w*
                      |\*\*=?|//=?|<<=?|>>=?|:=|[-+*/%^&|<>=!]=|\.T|.""", re.X | re.S)

PIECES = ["(", ")", "[", "]", "{", "}", ",", "=", ":=", "-=", "+=", "^=", "@", "*", "+", "-", "/",
          "//", "%", "**", "<", ">=", "==", ".T", "&", "|", "~", "<<", ">>", " and ", " or ",
          "not ", ":", "::", "0", "1", "-1", "2.5", "x", "y", "h", "W1", "b1", "lr", "hidden",
          "epochs", "relu(", "sum(", "outer(", "sigmoid(", "grad(", "einsum(", "argmax(", "i32(",
          "u8(", "f16(", "bool(", "reshape(", "concat([", "zeros(", "arange(", "eye(", "full(",
          "range(", "\n", " ", "predict ", "train ", "eval ", "solve ", "param ", "config ",
          "data ", "def ", "return ", "if ", " else ", "for ", " in ", "batch ", "until ",
          "step", "epoch", '"pm1"', '"01"', '"x"', "true", "false", "#", ";", "$", "\\", "'",
          "`", "?", "é", "∑"]

WEIRD_NUMBERS = ["0", "-1", "-0", "00", "007", "1.5", "0.0", "1e400", "-1e400", "1e-400", "1e308",
                 "9**9**9", "10**5000", "2**31", "2**32", "2**63", "2**64", "-2**63", "1 << 62",
                 "1_000", "0x10", "0b1", "1e", ".5", "5.", "1.2.3", "99999999999999999999",
                 "4294967297", "٣", "３", "²", "inf", "nan", "-(-(-1))", "1/0", "0/0", "0 ** -1",
                 "2 ** 0.5", "-2 ** 0.5", "(-8) ** (1/3)", "sqrt(-1)", "log(0)", "exp(1000)",
                 "int(1e400)", "int(nan)", "floor(1e300)", "ceil(-1e308 * 10)", "1 // 0",
                 "1 % 0", "min()", "max(1)", "true", '"8"', "-true"]

# huge sizes must be refused before any work; sizes that fit make real work (hidden = 100000
# trains for a minute: not a hang), so none of those is above 10,000
SIZE_NUMBERS = ["0", "-1", "-16", "1", "2", "3", "10**12", "2**62", "2**40", "10**9", "10000",
                "4096", "2**31 - 1", "10**400", "1.5", "-0", "0.0"]

ODD_CHARS = ["\f", "\v", "\x85", "\u2028", "\u2029", "\t", "\r", "\r\n", "\x00", "\x1b", "\ufeff",
             "\u00a0", "\u200b", "\u0301", "\x7f", "\udcff"]

BAD_UTF8 = [b"\xff", b"\xfe", b"\xc3\x28", b"\xa0\xa1", b"\xe2\x82", b"\xed\xa0\x80",
            b"\xf0\x28\x8c\xbc", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80", b"\x80"]


def _tokens(text: str) -> list[str]:
    return TOKEN_RE.findall(text)


def _mutate_tokens(rng, text: str) -> tuple[str, str]:
    toks = _tokens(text)
    solid = [i for i, t in enumerate(toks) if not t.isspace()] or [0]
    i = rng.choice(solid)
    kind = rng.choice(["delete", "insert", "replace", "duplicate", "delete-span", "copy-span"])
    if kind == "delete":
        del toks[i]
    elif kind == "insert":
        toks.insert(i, rng.choice(PIECES + [toks[rng.choice(solid)]]))
    elif kind == "replace":
        toks[i] = rng.choice(PIECES + [toks[rng.choice(solid)]])
    elif kind == "duplicate":
        toks.insert(i, toks[i])
    elif kind == "delete-span":
        del toks[i:i + rng.randint(2, 12)]
    else:
        j = rng.randrange(len(toks))
        toks[i:i] = toks[j:j + rng.randint(2, 12)]
    return "".join(toks), f"token-{kind}"


def _mutate_lines(rng, text: str) -> tuple[str, str]:
    lines = text.split("\n")
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    kind = rng.choice(["swap", "delete", "duplicate", "move"])
    if kind == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "delete":
        del lines[i]
    elif kind == "duplicate":
        lines.insert(j, lines[i])
    else:
        lines.insert(j, lines.pop(i))
    return "\n".join(lines), f"line-{kind}"


def _number_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"(?<![\w.])\d+(?:\.\d+)?(?:e-?\d+)?(?![\w.])", text)]


def _mutate_number(rng, text: str, big: bool) -> tuple[str, str]:
    spans = _number_spans(text)
    if not spans:
        return text, "number-none"
    a, b = rng.choice(spans)
    if rng.random() < 0.2:          # a literal of many digits (Python refuses > 4300 in int())
        new = "1" + "0" * rng.choice([20, 400, 4299, 4300, 5000])
    else:
        new = rng.choice(WEIRD_NUMBERS)
    return text[:a] + new + text[b:], "number-weird"


def _mutate_size(rng, text: str, big: bool) -> tuple[str, str]:
    """A dimension, a config constant or a data size made negative, zero or huge."""
    targets = []
    for m in re.finditer(r"\[([^\]\n]*)\]", text):           # type dims, shapes
        targets.append(m.span(1))
    for m in re.finditer(r"\b(\w++) = (\d++)\b", text):        # config constants
        targets.append(m.span(2))
    for m in re.finditer(r"\b(train|test|n|k|batch|n_samples)=(\w+)", text):   # data sizes
        targets.append(m.span(2))
    for m in re.finditer(r"\bbatch (\w+)", text):
        targets.append(m.span(1))
    for m in re.finditer(r"for (\w+) epochs", text):
        targets.append(m.span(1))
    if not targets:
        return text, "size-none"
    a, b = rng.choice(targets)
    pool = SIZE_NUMBERS if big else [n for n in SIZE_NUMBERS if n not in ("10000", "4096")]
    pool = [n for n in pool if n != text[a:b].strip()]     # a change, not the same size
    new = rng.choice(pool)
    if text[a:b].count(",") and rng.random() < 0.5:      # a dims list: one of its dims
        parts = text[a:b].split(",")
        k = rng.randrange(len(parts))
        other = [n for n in pool if n != parts[k].strip()]
        parts[k] = " " + (new if new in other else other[0])
        new = ",".join(parts).lstrip()
    return text[:a] + new + text[b:], "size-weird"


def _deep(rng, big: bool) -> tuple[str, str]:
    depth = _big(rng, big, [30, 99, 100, 101, 500, 2000], [10_000, 100_000])
    kind = rng.choice(["parens", "brackets", "calls", "unary", "sum", "product", "power",
                       "not", "cast", "index"])
    if kind == "parens":
        return "(" * depth + "1" + ")" * depth, "deep-parens"
    if kind == "brackets":
        return "[" * depth + "1" + "]" * depth, "deep-brackets"
    if kind == "calls":
        f = rng.choice(["relu(", "abs(", "sqrt(", "f32(", "max(1, ", "sigmoid("])
        return f * depth + "1" + ")" * depth, "deep-calls"
    if kind == "unary":
        return rng.choice(["-", "- ", "~", "+"]) * depth + "1", "deep-unary"
    if kind == "sum":           # its value stays small: a long sum is not a big size
        return " + ".join(["0"] * (depth - 1) + ["1"]), "long-sum"
    if kind == "product":
        return " * ".join(["1"] * depth), "long-product"
    if kind == "power":
        return " ** ".join(["1"] * min(depth, 5000)), "long-power"
    if kind == "not":
        return "not " * depth + "true", "deep-not"
    if kind == "cast":
        return "i32(" * depth + "1" + ")" * depth, "deep-casts"
    return "x" + "[0]" * depth, "deep-index"


def _mutate_deep(rng, text: str, big: bool) -> tuple[str, str]:
    """Replace the right-hand side of a config binding or of a statement with a deep expression,
    or insert nested blocks."""
    if rng.random() < 0.25:
        depth = _big(rng, big, [5, 50, 100, 101, 300], [3000, 30_000])
        kind = rng.choice(["if", "for", "def"])
        lines = text.split("\n")
        at = [i for i, l in enumerate(lines) if l.startswith("  ") and "=" in l] or [len(lines) - 1]
        i = rng.choice(at)
        if kind == "if":
            block = "if y > 0 {\n" * depth + "  h_nested = 1\n" + "}\n" * depth
        elif kind == "for":
            block = "".join(f"for i{k} in range(1) {{\n" for k in range(depth)) + \
                "  h_nested = 1\n" + "}\n" * depth
        else:
            defs = "".join(f"def f{k}(a) {{\n  return f{k + 1}(a) + 1\n}}\n" for k in range(depth))
            defs += f"def f{depth}(a) {{\n  return a\n}}\n"
            lines.insert(i, "  h_nested = f0(1)")
            return defs + "\n".join(lines), "deep-def-calls"
        lines.insert(i, block.rstrip("\n"))
        return "\n".join(lines), f"deep-{kind}-blocks"
    expr, kind = _deep(rng, big)
    spans = [m.span(1) for m in re.finditer(r"\b\w++ = ([^,\n#{]++)", text)]
    a, b = rng.choice(spans)
    return text[:a] + expr + text[b:], kind


def _mutate_chars(rng, text: str) -> tuple[str, str]:
    i = rng.randrange(len(text) + 1)
    c = rng.choice(ODD_CHARS)
    if rng.random() < 0.3:          # in place of a space or a newline
        spaces = [m.start() for m in re.finditer(r"[ \n]", text)]
        if spaces:
            i = rng.choice(spaces)
            return text[:i] + c + text[i + 1:], f"char-replace-{ord(c[0]):x}"
    return text[:i] + c + text[i:], f"char-insert-{ord(c[0]):x}"


def _long(rng, text: str, big: bool) -> tuple[str, str]:
    n = _big(rng, big, [1000, 20_000], [1_000_000, 3_000_000])
    kind = rng.choice(["comment", "name", "line", "blank-lines", "string", "many-statements",
                       "many-configs"])
    if kind == "comment":
        return text + "# " + "x" * n + "\n", "long-comment"
    if kind == "name":
        name = "a" * n
        return text.replace("hidden", name, 2) if "hidden" in text else \
            f"config {name} = 1\n" + text, "long-name"
    if kind == "line":
        return f"config c_long = {' + '.join(['1'] * (n // 4))}\n" + text, "long-line"
    if kind == "blank-lines":
        return "\n" * (n // 10) + text, "many-blank-lines"
    if kind == "string":
        return text.replace('"pm1"', '"' + "p" * n + '"').replace('"signed-random"', '"' + "q" * n
                                                                  + '"'), "long-string"
    if kind == "many-statements":
        k = n // 200
        lines = text.split("\n")
        at = [i for i, l in enumerate(lines) if l.startswith("  ") and " = " in l]
        if not at:
            return text, "many-statements-none"
        i = at[0]
        lines[i + 1:i + 1] = [f"  s{j} = 1.5 * {rng.choice(['x', 'y', 'h_pre', 'lr'])}"
                              for j in range(k)]
        return "\n".join(lines), "many-statements"
    k = n // 100
    return "".join(f"config c{j} = {j}\n" for j in range(k)) + text, "many-configs"


def program_text(rng: random.Random, big: bool = False) -> tuple[bytes, str, str]:
    """A mutated program: (bytes, base program name, what was done)."""
    name = rng.choice(sorted(base_programs()))
    text = base_programs()[name]
    r = rng.random()
    notes = []
    if r < 0.03:
        data = rng.choice([b"", b"\n", b" ", b"\xef\xbb\xbf", b"\x00", b"#", b"config",
                           b"\xef\xbb\xbf" + text.encode(), text.encode() * 2])
        return data, name, "whole-file"
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        op = _w(rng, [(30, "tokens"), (8, "lines"), (14, "number"), (12, "size"), (10, "deep"),
                      (8, "chars"), (4, "long")])
        if op == "tokens":
            text, n = _mutate_tokens(rng, text)
        elif op == "lines":
            text, n = _mutate_lines(rng, text)
        elif op == "number":
            text, n = _mutate_number(rng, text, big)
        elif op == "size":
            text, n = _mutate_size(rng, text, big)
        elif op == "deep":
            text, n = _mutate_deep(rng, text, big)
        elif op == "chars":
            text, n = _mutate_chars(rng, text)
        else:
            text, n = _long(rng, text, big)
        notes.append(n)
    data = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.06:         # bytes that are not UTF-8
        i = rng.randrange(len(data) + 1)
        data = data[:i] + rng.choice(BAD_UTF8) + data[i:]
        notes.append("bad-utf8")
    return data, name, "+".join(notes)


def _quick_set(text: str) -> list[str]:
    """--set arguments that keep a compiling program's training short."""
    out = []
    if re.search(r"\bepochs\s*=", text):
        out.append("epochs=1")
    return ["--set", *out] if out else []


def program_case(rng: random.Random, big: bool = False) -> Case:
    data, name, note = program_text(rng, big)
    text = data.decode("utf-8", "replace")
    fname = rng.choice(["p.sir"] * 12 + ["p", "p.SIR", "p q.sir", "-p.sir", "\udcff.sir"])
    path = f"{TMP}/{fname}"
    cmd = _w(rng, [(70, "run"), (20, "graph"), (10, "compare")])
    if cmd == "run":
        opts = [*_quick_set(text), "--trace-steps", rng.choice(["1", "2", "all"])]
        if rng.random() < 0.2:
            opts += ["--passes", rng.choice(["fuse", "cse,dce", "liveness-layout",
                                             "layer-local-update,fuse", "recompute{policy=sqrt}"])]
    elif cmd == "graph":
        opts = rng.choice([[], ["--dot"], ["-p", "fuse"], ["-p", "cse,dce"]])
    else:
        opts = [*_quick_set(text), "--trace-steps", "1", "-p", "none",
                "-p", rng.choice(["fuse", "cse", "liveness-layout"])]
    # a file name that starts with '-' comes after `--`
    argv = [cmd, *opts, "--", path] if fname.startswith("-") else [cmd, path, *opts]
    return Case("programs", argv, {fname: data}, f"{name}: {note}")


# ============================================================================ options

SET_VALUES = ["1", "2", "0", "-1", "inf", "-inf", "nan", "NaN", "1e400", "-1e400", "1e-400",
              "1_000", "١", "１", "²", "99999999999999999999", "1" + "0" * 30, "1" + "0" * 5000,
              "2**3", "0x10", "1e3", "1.5", "-0", "+1", " 1", "1 ", "", "abc", '"pm1"', "pm1",
              "true", "false", "True", "None", "[1]", "{}", "1,2", "\u2028", "\x85", "=", "==1",
              "0.1", "1e-3", "3.0", "9" * 19, "-9223372036854775809"]
SET_NAMES = ["epochs", "hidden", "lr", "seed", "n_bits", "k", "n_train", "n_test", "wd",
             "batch_size", "n_samples", "nosuch", "", " ", "epochs ", " epochs", "EPOCHS",
             "x", "train", "W1", "é", "a" * 300]
TRACE_STEPS = ["all", "ALL", "all ", "0", "-1", "1", "2", "5", "every:0", "every:1", "every:3",
               "every:-1", "every:", "every:x", "every:1e400", "every:99999999999999999999",
               "99999999999999999999", "10**100", "1.5", "٣", "junk", "", " ", "every", ":3",
               "every:3:4", "1e3", "nan", "inf", "first:3", "0x3", "1_0"]
PIPELINES = ["", "none", "identity", "identity{}", "identity{=}", "fuse", "fuse{max_ops=-1}",
             "fuse{max_ops=0}", "fuse{max_ops=1}", "fuse{max_ops=3}",
             "fuse{max_ops=99999999999999999999}", "fuse{max_ops=abc}", "fuse{max_ops=1e400}",
             "fuse{max_ops=nan}", "fuse{max_ops=1,max_ops=2}", "fuse{updates=false}",
             "fuse{updates=maybe}", "fuse{anchors=false,hoist=false}", "fuse{hoist=1}",
             "recompute{policy=auto}", "recompute{policy=sqrt}", "recompute{policy=all}",
             "recompute{policy=store-all}", "recompute{policy=nosuch}", "recompute{values=h}",
             "recompute{values=h+h_pre}", "recompute{values=nosuch}", "recompute{values=}",
             "recompute{policy=auto,hierarchy=cpu-like}", "recompute{policy=auto,energy=nosuch}",
             "recompute{policy=auto,hierarchy=nosuch}",
             "recompute{policy=auto,hierarchy=" + TMP + "/missing.toml}",
             "recompute{policy=auto,hierarchy=" + TMP + "}",
             "recompute{policy=sqrt,hierarchy=cpu-like}",
             "recompute{policy=auto,energy=dally-2022}",
             "nosuch", "fuse{", "fuse}", "fuse{{}}", "{}", ",", ",,", "fuse,", ",fuse",
             "fuse,recompute{policy=auto}", "fuse,layer-local-update", "layer-local-update",
             "layer-local-update{approximate=true}", "layer-local-update{approximate=yes}",
             "liveness-layout", "cse,dce", "cse,dce,fuse", "dce{x=1}", " fuse ", "FUSE",
             "fuse{max_ops=-0}", "fuse{ max_ops = 2 }", "fuse{max_ops=2}}", "fuse{max_ops=2",
             "fuse(max_ops=2)", "fuse;cse", "fuse{max_ops=\u0662}", "\u2028", "identity," * 50]
PLOTS = [TMP + "/plots", TMP + "/plots/a/b", TMP + "/file.txt", TMP + "/file.txt/sub", "", " ",
         "a" * 300, TMP + "/" + "a" * 255, TMP + "/" + "a" * 256, TMP + "/x/" + "b" * 4000,
         "/proc/sutro-plots", "/dev/null", "/dev/null/x", TMP, TMP + "/\udcff", TMP + "/p.sir",
         TMP + "/ro/plots"]
TARGETS = ["0.5", "0", "1", "-1", "1.5", "nan", "inf", "-inf", "1e400", "abc", "", "0.9999999",
           "1e-300", "-0"]
SEEDS = ["0", "1", "-1", "42", str(2 ** 32), str(2 ** 63), str(2 ** 64), str(10 ** 30),
         str(-2 ** 63 - 1), "abc", "1.5", "", " 7", "0x10", "1_0", "٣"]
OPTION_BASES = ["xor.sir", "parity3.sir", "sparse_parity_gf2.sir", "mlp_backprop.sir",
                "sparse_parity_fourier.sir", "mlp_autodiff.sir"]


def _setting(rng) -> str:
    r = rng.random()
    if r < 0.05:
        return rng.choice(["epochs", "=1", "epochs==1", "=", "epochs=1=2", ""])
    return f"{rng.choice(SET_NAMES)}={rng.choice(SET_VALUES)}"


def options_case(rng: random.Random, big: bool = False) -> Case:
    base = rng.choice(OPTION_BASES)
    text = base_programs()[base]
    files: dict[str, bytes | Special] = {"p.sir": text.encode(), "file.txt": b"x",
                                         "ro": Special("dir")}
    cmd = _w(rng, [(45, "run"), (20, "compare"), (15, "graph"), (20, "simulate")])
    note = [base]
    if cmd == "simulate":
        files["t.npz"] = (EXAMPLES_DIR / rng.choice(["matvec.npz", "matvec.npz",
                                                     "seed_mlp_step.npz"])).read_bytes()
        argv = ["simulate", f"{TMP}/t.npz"]
    else:
        argv = [cmd, f"{TMP}/p.sir"]
        if cmd != "graph" and "epochs" in text and rng.random() < 0.8:
            argv += ["--set", "epochs=1"]
    n_opts = rng.choice([1, 1, 2, 2, 3, 4])
    for _ in range(n_opts):
        opt = rng.choice({
            "run": ["set", "set", "trace", "passes", "hierarchy", "energy", "plot", "target",
                    "seed", "flag", "flag"],
            "compare": ["set", "trace", "passes", "passes", "hierarchy", "energy", "plot",
                        "target", "seed", "flag"],
            "graph": ["set", "set", "passes", "passes", "flag"],
            "simulate": ["hierarchy", "hierarchy", "energy", "plot", "flag", "flag"]}[cmd])
        note.append(opt)
        if opt == "set":
            argv += ["--set"] + [_setting(rng) for _ in range(rng.choice([1, 1, 2]))]
        elif opt == "trace":
            argv += [f"--trace-steps={rng.choice(TRACE_STEPS)}"]
        elif opt == "passes":
            flag = "--passes" if cmd == "run" else rng.choice(["-p", "--passes"])
            argv += [f"{flag}={rng.choice(PIPELINES)}"]
            if cmd == "compare" and rng.random() < 0.5:
                argv += [f"-p={rng.choice(PIPELINES)}"]
        elif opt == "hierarchy":
            h = rng.choice(list(HIERARCHIES) + ["nosuch", "", TMP + "/missing.toml", TMP,
                                                 TMP + "/h.toml", TMP + "/h.toml", "/dev/null",
                                                 "/dev/zero", TMP + "/file.txt", "SUTRO-TIERS",
                                                 "../sutro-tiers", "cpu-like.toml"])
            if h == TMP + "/h.toml":
                files["h.toml"] = hierarchy_bytes(rng, big)[0]
            argv += [f"--hierarchy={h}"]
        elif opt == "energy":
            argv += [f"--energy={rng.choice(list(ENERGIES) + ['nosuch', '', 'DALLY-2020', ' '])}"]
        elif opt == "plot":
            argv += [f"--plot={rng.choice(PLOTS)}"]
        elif opt == "target":
            argv += [f"--target-accuracy={rng.choice(TARGETS)}"]
        elif opt == "seed":
            argv += [f"--seed={rng.choice(SEEDS)}"]
        else:
            flags = {"run": ["--json", "--no-eval", "--brute-force", "--cost-models", "--profile"],
                     "compare": ["--json", "--no-eval", "--brute-force", "--cost-models"],
                     "graph": ["--dot"],
                     "simulate": ["--json", "--cost-models"]}[cmd]
            argv += [rng.choice(flags)]
    if rng.random() < 0.03:
        argv.append(rng.choice(["--nosuch", "extra", "-", "--", "--set", "--plot"]))
    if cmd in ("run", "compare") and "--trace-steps" not in " ".join(argv) and \
            rng.random() < 0.5:
        argv.append("--trace-steps=2")
    return Case("options", argv, files, " ".join(note))


# ============================================================================ traces

_TRACES: dict[str, tuple[dict, dict[str, np.ndarray], list[str]]] = {}


def _base_trace(name: str):
    """(meta, {member: array}, member order) of an example trace."""
    if name not in _TRACES:
        with zipfile.ZipFile(EXAMPLES_DIR / name) as z:
            meta = json.loads(z.read("meta.json"))
            arrays = {}
            order = []
            for info in z.infolist():
                order.append(info.filename)
                if info.filename.endswith(".npy"):
                    with z.open(info) as f:
                        arrays[info.filename] = np.lib.format.read_array(f)
        _TRACES[name] = (meta, arrays, order)
    meta, arrays, order = _TRACES[name]
    return json.loads(json.dumps(meta)), {k: v.copy() for k, v in arrays.items()}, list(order)


def npy_bytes(arr: np.ndarray) -> bytes:
    f = io.BytesIO()
    np.lib.format.write_array(f, arr, allow_pickle=True)
    return f.getvalue()


def npy_raw(descr: str, shape, payload: bytes, fortran: bool = False,
            version: tuple[int, int] = (1, 0), header: str | None = None) -> bytes:
    """A .npy file written by hand, so its header can claim anything."""
    if header is None:
        header = "{'descr': %r, 'fortran_order': %s, 'shape': %s, }" % (descr, fortran,
                                                                         repr(tuple(shape)))
    hlen_bytes = 2 if version[0] == 1 else 4
    pad = (-(6 + 2 + hlen_bytes + len(header) + 1)) % 64
    h = (header + " " * pad + "\n").encode("latin1")
    fmt = "<H" if hlen_bytes == 2 else "<I"
    return b"\x93NUMPY" + bytes(version) + struct.pack(fmt, len(h)) + h + payload


WEIRD_JSON = [None, True, False, 0, -1, 1, 3, 2 ** 31, 2 ** 32 + 4, 2 ** 63, 2 ** 64, -2 ** 63 - 1,
              10 ** 30, 1.5, -0.0, 1e308, float("inf"), float("-inf"), float("nan"), "", "x", "0",
              "f32", "param", "\u2028", [], {}, [1], [[]], {"a": 1}, "a" * 10000, [None] * 3]


def _weird(rng):
    """A fresh copy of a weird JSON value: the lists and objects of WEIRD_JSON are shared, and a
    mutation that writes into one must not make a later document refer to itself."""
    return copy.deepcopy(rng.choice(WEIRD_JSON))


def _json_paths(obj, path=()):
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _json_paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:50]):
            yield from _json_paths(v, path + (i,))


def _get(obj, path):
    for p in path:
        obj = obj[p]
    return obj


def _mutate_meta(rng, meta) -> tuple[object, str]:
    if rng.random() < 0.5:
        try:
            return _mutate_meta_field(rng, meta)
        except (KeyError, TypeError, IndexError, AttributeError, ValueError):
            pass            # an earlier mutation broke the structure: a random one instead
    return _mutate_meta_anywhere(rng, meta)


def _mutate_meta_field(rng, meta: dict) -> tuple[dict, str]:
    """A field the loader reads, set to a value of the wrong type or range."""
    kind = rng.choice(["chunk-n", "chunk-step", "chunk-columns", "buffer-base",
                       "buffer-nbytes", "buffer-dtype", "buffer-role", "arith", "version",
                       "format", "many-chunks", "no-chunks", "dup-buffers", "buffer-name",
                       "kernel-ops", "many-buffers"])
    c = meta["chunks"][0]
    b = rng.choice(meta["buffers"])
    k = rng.choice(meta["kernels"])
    if kind == "chunk-n":
        c["n"] = rng.choice([0, -1, c["n"] + 1, c["n"] - 1, 10 ** 12, 2 ** 63, 1.5, "18", None])
    elif kind == "chunk-step":
        c["step"] = rng.choice([-1, 2 ** 63, 2 ** 64, 10 ** 30, 1.5, "0", None, [0]])
    elif kind == "chunk-columns":
        cols = list(c["columns"])
        op = rng.choice(["drop", "extra", "dup", "empty", "str", "unknown"])
        if op == "drop" and cols:
            cols.remove(rng.choice(cols))
        elif op == "extra":
            cols.append(rng.choice(["instr", "buffer", "foo", "", "../meta", "addr"]))
        elif op == "dup":
            cols.append(cols[0])
        elif op == "empty":
            cols = []
        elif op == "str":
            cols = "addr"
        else:
            cols = [rng.choice(["ADDR", "addr ", 1, None])] + cols
        c["columns"] = cols
        kind += "-" + op
    elif kind == "buffer-base":
        b["base"] = rng.choice([-1, -64, 2 ** 62, 2 ** 63 - 1, 2 ** 63, 2 ** 64, 1, 3, 1.5,
                                "0", 10 ** 30, 1e19])
    elif kind == "buffer-nbytes":
        b["nbytes"] = rng.choice([0, -1, 1, 3, 2 ** 32 + 4, 2 ** 63, 2 ** 62, 10 ** 30, 1.5,
                                  "16", 1e300])
    elif kind == "buffer-dtype":
        b["dtype"] = rng.choice(["f64", "f16", "bf16", "i64", "i8", "u8", "bool", "f128",
                                 "F32", "", 4, None, "float32"])
    elif kind == "buffer-role":
        b["role"] = rng.choice(["grad", "temp", "weights", "", None, 1])
    elif kind == "arith":
        k["arith"] = rng.choice([{"fma.f32": -1}, {"fma.f32": 2 ** 63}, {"fma.f32": 10 ** 30},
                                 {"fma.f32": 1.5}, {"fma.f32": "3"}, {"nosuch.f32": 1},
                                 {"fma.f99": 1}, {"fma": 1}, {"": 1}, {"fma.f32": None},
                                 {"fma.f32": float("inf")}, {"fma.f32": float("nan")},
                                 [], "fma", None, {"fma.f32": True},
                                 {"fma.f32": 2 ** 53 + 1}])
    elif kind == "version":
        meta["version"] = rng.choice([0, 2, 1.0, "1", True, None, -1, 2 ** 64])
    elif kind == "format":
        meta["format"] = rng.choice(["", "sutro-trace ", "SUTRO-TRACE", None, 1])
    elif kind == "many-chunks":
        meta["chunks"] = meta["chunks"] * rng.choice([2, 10, 1000])
    elif kind == "no-chunks":
        meta["chunks"] = []
    elif kind == "dup-buffers":
        meta["buffers"].append(dict(b))
    elif kind == "buffer-name":
        b["name"] = rng.choice(["", None, 1, "a" * 100000, "\u2028", "x\x00y", ["A"]])
    elif kind == "kernel-ops":
        k["ops"] = rng.choice(["mul", None, 1, [1, 2], [None], ["nosuch"] * 1000])
    else:
        meta["buffers"] = meta["buffers"] + [
            {"name": f"z{i}", "base": 1 << 20 + i, "nbytes": 4, "dtype": "f32",
             "role": "other"} for i in range(rng.choice([100, 5000]))]
    return meta, "meta-" + kind


def _mutate_meta_anywhere(rng, meta) -> tuple[object, str]:
    """Any value of meta.json replaced, deleted or joined by an extra key or item."""
    paths = list(_json_paths(meta))
    path = rng.choice(paths)
    op = rng.choice(["set", "set", "set", "delete", "extra"])
    if not path or op == "extra":
        target = _get(meta, path)
        if isinstance(target, dict):
            target[rng.choice(["extra", "", "n", "columns", "\u2028"])] = _weird(rng)
            return meta, "meta-extra-key"
        if isinstance(target, list):
            target.append(_weird(rng))
            return meta, "meta-extra-item"
        op = "set"
        if not path:
            return _weird(rng), "meta-whole"
    parent, key = _get(meta, path[:-1]), path[-1]
    if op == "delete":
        del parent[key]
        return meta, f"meta-delete-{key}"
    parent[key] = _weird(rng)
    return meta, f"meta-set-{key}"


def _meta_bytes(rng, meta) -> tuple[bytes, str]:
    r = rng.random()
    if r < 0.88:
        return json.dumps(meta).encode(), ""
    kind = rng.choice(["invalid", "deep", "not-utf8", "bom", "bigint", "empty", "scalar",
                       "dup-keys", "nan", "utf16", "trailing"])
    text = json.dumps(meta)
    if kind == "invalid":
        i = rng.randrange(len(text))
        return (text[:i] + text[i + rng.randint(1, 5):]).encode(), "meta.json-invalid"
    if kind == "deep":
        d = rng.choice([1000, 100_000])
        return text[:-1].encode() + b', "x": ' + b"[" * d + b"]" * d + b"}", f"meta.json-deep-{d}"
    if kind == "not-utf8":
        return text.encode().replace(b'"A"', b'"\xff"').replace(b'"W1"', b'"\xc3\x28"') + b"", \
            "meta.json-not-utf8"
    if kind == "bom":
        return b"\xef\xbb\xbf" + text.encode(), "meta.json-bom"
    if kind == "bigint":
        return text.replace('"version": 1', '"version": 1' + "0" * 5000).replace(
            '"base": 0', '"base": ' + "9" * 5000).encode(), "meta.json-5000-digits"
    if kind == "empty":
        return b"", "meta.json-empty"
    if kind == "scalar":
        return rng.choice([b"null", b"[]", b"42", b'"x"', b"{}"]), "meta.json-scalar"
    if kind == "dup-keys":
        return text.replace('"version": 1', '"version": 1, "version": 2').encode(), \
            "meta.json-dup-keys"
    if kind == "nan":
        return text.replace('"base": 0', '"base": NaN').replace('"step": 0', '"step": Infinity')\
            .encode(), "meta.json-nan"
    if kind == "utf16":
        return text.encode("utf-16"), "meta.json-utf16"
    return text.encode() + b" garbage", "meta.json-trailing"


def _column_of(member: str) -> str:
    """`c000000_addr.npy` -> `addr`."""
    return member.partition("_")[2].removesuffix(".npy") or member


def _mutate_column(rng, tables: tuple[int, int], arrays) -> str:
    chunk_members = sorted(arrays)
    member = rng.choice(chunk_members)
    col = _column_of(member)
    a = arrays[member].reshape(-1)          # an earlier mutation may have made it 0-d or 2-d
    n = len(a)
    idx = rng.randrange(max(n, 1))
    n_k, n_b = tables
    kind = rng.choice(["value", "value", "value", "dtype", "shape"])
    if kind == "value" and n:
        try:          # an earlier mutation may have given the column another dtype
            a = a.copy()
            if col == "addr":
                v = rng.choice([-1, -8, 2 ** 63 - 1, 2 ** 63 - 8, 2 ** 62, 2 ** 40, 1, 2, 3,
                                1 << 33, 2 ** 48 + 4])
                if rng.random() < 0.3:
                    a[:] = v if rng.random() < 0.5 else a + v
                else:
                    a[idx] = v
            elif col == "nbytes":
                v = rng.choice([0, -4, 1, 2, 3, 8, 2 ** 31 - 1, -2 ** 31, 4096, 1 << 20])
                if rng.random() < 0.3:
                    a = a.astype(np.int64)
                    a[idx] = rng.choice([2 ** 32 + 4, 2 ** 32, -2 ** 32 + 4, 2 ** 63 - 1])
                else:
                    a[idx] = v
            elif col in ("kernel", "buffer"):
                a[idx] = rng.choice([-2, -1, n_k if col == "kernel" else n_b, 2 ** 31 - 1,
                                     -2 ** 31])
            elif col == "is_write":
                t = rng.choice([np.uint8, np.int8, np.int64])
                a = a.astype(t)
                a[idx] = rng.choice({np.uint8: [2, 255], np.int8: [2, -1]}.get(t, [2, -1, 255]))
            elif col == "instr":
                a[idx] = rng.choice([-1, 2 ** 63 - 1, -2 ** 63, 10 ** 12])
        except (OverflowError, ValueError, TypeError):
            return f"column-{col}-value-skipped"
        arrays[member] = a
        return f"column-{col}-value"
    if kind == "dtype":
        dt = rng.choice(["float64", "float32", "uint64", "int8", "int16", "uint32", "bool",
                         "<U3", ">i8", ">i4", "complex64", "object", "datetime64[s]", "V8"])
        try:
            if dt == "object":
                b = a.astype(object)
            elif dt == "V8":
                b = np.zeros(n, dtype="V8")
            elif dt == "datetime64[s]":
                b = a.astype(np.int64).astype(dt)
            else:
                b = a.astype(dt)
            if dt.startswith("float") and n:
                b[idx] = rng.choice([np.nan, np.inf, 0.5, -0.0, 1e30])
            if dt == "uint64" and n:
                b[idx] = 2 ** 64 - 1
        except (ValueError, TypeError, OverflowError):
            b = a.astype("float64")
        arrays[member] = b
        return f"column-{col}-dtype-{dt}"
    shape = rng.choice(["0d", "2d-col", "2d-row", "empty", "longer", "shorter", "fortran",
                        "3d"])
    if shape == "0d":
        b = np.array(a[0] if n else 0, dtype=a.dtype)
    elif shape == "2d-col":
        b = a.reshape(-1, 1)
    elif shape == "2d-row":
        b = a.reshape(1, -1)
    elif shape == "empty":
        b = a[:0]
    elif shape == "longer":
        b = np.concatenate([a, a[:1]])
    elif shape == "shorter":
        b = a[:-1]
    elif shape == "fortran":
        b = np.asfortranarray(np.stack([a, a], axis=1))
    else:
        b = a.reshape(1, 1, -1)
    arrays[member] = b
    return f"column-{col}-shape-{shape}"


def _raw_member(rng, members: dict[str, bytes], big: bool) -> str:
    npys = sorted(m for m in members if m.endswith(".npy"))
    if not npys:
        return "npy-none"
    member = rng.choice(npys)
    data = members[member]
    kind = rng.choice(["claims-huge", "truncated", "garbage", "bad-magic", "version-2",
                       "version-9", "header-huge", "header-junk", "empty", "pickle",
                       "claims-negative", "extra-bytes", "bad-header-len"])
    if kind == "claims-huge":
        shape = rng.choice([(10 ** 12,), (2 ** 62,), (10 ** 6,), (2 ** 31,), (10 ** 5, 10 ** 5)])
        members[member] = npy_raw(rng.choice(["<i8", "<i4", "|b1"]), shape, b"\0" * 64)
    elif kind == "truncated":
        members[member] = data[:rng.randrange(max(len(data), 1))]
    elif kind == "garbage":
        members[member] = bytes(rng.getrandbits(8) for _ in range(rng.choice([1, 10, 200])))
    elif kind == "bad-magic":
        members[member] = b"\x93NUMPZ" + data[6:]
    elif kind == "version-2":
        try:
            arr = np.lib.format.read_array(io.BytesIO(data), allow_pickle=True)
        except Exception:           # noqa: BLE001 - an earlier mutation broke it already
            return f"npy-{_column_of(member)}-version-2-skipped"
        members[member] = npy_raw(arr.dtype.str, arr.shape, arr.tobytes(), version=(2, 0))
    elif kind == "version-9":
        members[member] = data[:6] + b"\x09\x00" + data[8:]
    elif kind == "header-huge":
        members[member] = npy_raw("<i8", (1,), b"\0" * 8,
                                  header="{'descr': '<i8', 'fortran_order': False, 'shape': (1,)"
                                  + ", 'x': '" + "a" * rng.choice([70000, 1000]) + "'}",
                                  version=(2, 0))
    elif kind == "header-junk":
        members[member] = npy_raw("<i8", (1,), b"\0" * 8, header=rng.choice([
            "{'descr': '<i8', 'fortran_order': False, 'shape': (1, }",
            "{'descr': '<i8', 'shape': (1,), }",
            "{'descr': '<i8', 'fortran_order': False, 'shape': (-1,), }",
            "{'descr': '<i8', 'fortran_order': False, 'shape': (1.5,), }",
            "{'descr': 'xyz', 'fortran_order': False, 'shape': (1,), }",
            "{'descr': '<i8', 'fortran_order': 'no', 'shape': (1,), }",
            "__import__('os')",
            "{'descr': '<i8', 'fortran_order': False, 'shape': " + "(" * 1000 + ")" * 1000 + "}",
            "{'descr': [('a', '<i8'), ('b', '<i4')], 'fortran_order': False, 'shape': (1,), }",
            "{'descr': '<i8', 'fortran_order': False, 'shape': (" + "9" * 5000 + ",), }"]))
    elif kind == "empty":
        members[member] = b""
    elif kind == "pickle":
        members[member] = npy_bytes(np.array([1, "a", None], dtype=object))
    elif kind == "claims-negative":
        members[member] = npy_raw("<i8", (-5,), b"\0" * 64)
    elif kind == "extra-bytes":
        members[member] = data + b"\0" * rng.choice([1, 8, 4096])
    else:
        members[member] = data[:8] + struct.pack("<H", 65535) + data[10:]
    return f"npy-{_column_of(member)}-{kind}"


def _zip(rng, members: dict[str, bytes], order: list[str], note: list[str]) -> bytes:
    f = io.BytesIO()
    compress = zipfile.ZIP_STORED
    r = rng.random()
    if r < 0.05:
        compress = zipfile.ZIP_DEFLATED
        note.append("zip-deflated")
    elif r < 0.07:
        compress = zipfile.ZIP_BZIP2
        note.append("zip-bzip2")
    names = [m for m in order if m in members] + [m for m in members if m not in order]
    if rng.random() < 0.04:
        rng.shuffle(names)
        note.append("zip-shuffled")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(f, "w", compress) as z:
            for m in names:
                z.writestr(m, members[m])
            if rng.random() < 0.03:
                z.writestr(rng.choice(names), rng.choice([b"", b"junk", npy_bytes(np.arange(3))]))
                note.append("zip-duplicate-member")
    return f.getvalue()


def _zip_bytes_mutation(rng, data: bytes, note: list[str]) -> bytes:
    kind = rng.choice(["truncate", "truncate", "flip", "prepend", "append", "cut-middle",
                       "zero-tail"])
    note.append(f"zip-{kind}")
    if kind == "truncate":
        return data[:rng.randrange(len(data))]
    if kind == "flip":
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.getrandbits(8)
        return bytes(b)
    if kind == "prepend":
        return rng.choice([b"\0" * 100, b"PK\x03\x04", b"#!/bin/sh\n"]) + data
    if kind == "append":
        return data + rng.choice([b"\0" * 100, b"PK\x05\x06" + b"\0" * 18, b"x"])
    if kind == "cut-middle":
        i = rng.randrange(len(data))
        return data[:i] + data[i + rng.randint(1, 200):]
    i = rng.randrange(len(data))
    return data[:i] + b"\0" * (len(data) - i)


def _path_case(rng) -> tuple[str, dict, str]:
    """A trace path that is not a trace file at all."""
    kind = rng.choice(["dir", "fifo", "missing", "unreadable", "empty", "text", "symlink-loop",
                       "dangling-symlink", "long-path", "long-component", "dev-null",
                       "dev-zero", "proc", "empty-path", "surrogate", "npy-not-npz",
                       "bad-utf8-name", "dir-trailing-slash"])
    if kind == "unreadable" and IS_ROOT:
        kind = "empty"
    base = (EXAMPLES_DIR / "matvec.npz").read_bytes()
    if kind == "dir":
        return TMP + "/t.npz", {"t.npz": Special("dir")}, kind
    if kind == "dir-trailing-slash":
        return TMP + "/t.npz/", {"t.npz": base}, kind
    if kind == "fifo":
        return TMP + "/t.npz", {"t.npz": Special("fifo")}, kind
    if kind == "missing":
        return TMP + "/nosuch.npz", {}, kind
    if kind == "unreadable":
        return TMP + "/t.npz", {"t.npz": Special("unreadable", base)}, kind
    if kind == "empty":
        return TMP + "/t.npz", {"t.npz": b""}, kind
    if kind == "text":
        return TMP + "/t.npz", {"t.npz": b"this is not a zip\n"}, kind
    if kind == "symlink-loop":
        return TMP + "/t.npz", {"t.npz": Special("symlink", b"t.npz")}, kind
    if kind == "dangling-symlink":
        return TMP + "/t.npz", {"t.npz": Special("symlink", b"nowhere.npz")}, kind
    if kind == "long-path":
        return TMP + "/" + "/".join(["d" * 200] * 25) + "/t.npz", {}, kind
    if kind == "long-component":
        return TMP + "/" + "t" * 300 + ".npz", {}, kind
    if kind == "dev-null":
        return "/dev/null", {}, kind
    if kind == "dev-zero":
        return "/dev/zero", {}, kind
    if kind == "proc":
        return "/proc/self/status", {}, kind
    if kind == "empty-path":
        return "", {}, kind
    if kind == "surrogate":
        return TMP + "/\udcff.npz", {"\udcff.npz": base}, kind
    if kind == "bad-utf8-name":
        return TMP + "/t\udcc3(.npz", {}, kind
    return TMP + "/t.npy", {"t.npy": npy_bytes(np.arange(10))}, kind


def trace_bytes(rng: random.Random, big: bool = False) -> tuple[bytes, str]:
    """A mutated trace file (the archive's bytes) and what was done to it."""
    base = rng.choice(["matvec.npz"] * 4 + ["seed_mlp_step.npz"])
    meta, arrays, order = _base_trace(base)
    tables = (len(meta["kernels"]), len(meta["buffers"]))
    note = [base]
    n_mut = rng.choice([1, 1, 1, 2, 3])
    ops = [_w(rng, [(35, "meta"), (30, "column"), (15, "raw"), (10, "zip"), (5, "members"),
                    (5, "none")]) for _ in range(n_mut)]
    for op in ops:
        if op == "meta":
            meta, n = _mutate_meta(rng, meta)
            note.append(n)
        elif op == "column":
            note.append(_mutate_column(rng, tables, arrays))
    members = {m: npy_bytes(a) for m, a in arrays.items()}
    for op in ops:
        if op == "raw":
            note.append(_raw_member(rng, members, big))
        elif op == "members":
            kind = rng.choice(["drop-meta", "drop-column", "extra-member", "rename"])
            if kind == "drop-meta":
                if "meta.json" in order:
                    order.remove("meta.json")
            elif kind == "drop-column":
                if members:
                    members.pop(rng.choice(sorted(members)))
            elif kind == "extra-member":
                members[rng.choice(["c000001_addr.npy", "junk", "../evil.npy", "c000000_foo.npy",
                                    "dir/"])] = b"junk"
            elif members:
                m = rng.choice(sorted(members))
                members[m.replace("c000000", "c000001")] = members.pop(m)
            note.append(f"members-{kind}")
    mb, n = _meta_bytes(rng, meta)
    if n:
        note.append(n)
    if "meta.json" in order:
        members["meta.json"] = mb
    if big and rng.random() < 0.02:     # a small archive that inflates to 200 MB
        members["c000000_instr.npy"] = npy_raw("<i8", (25_000_000,), b"\0" * 200_000_000)
        note.append("zip-bomb")
        data = _zip_deflated(members, order)
    else:
        data = _zip(rng, members, order, note)
    if "zip" in ops:
        data = _zip_bytes_mutation(rng, data, note)
    return data, " ".join(note)


def _zip_deflated(members, order) -> bytes:
    f = io.BytesIO()
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
        for m in list(order) + [m for m in members if m not in order]:
            if m in members:
                z.writestr(m, members[m])
    return f.getvalue()


def trace_case(rng: random.Random, big: bool = False) -> Case:
    if rng.random() < 0.12:
        path, files, note = _path_case(rng)
        note = "path-" + note
    else:
        data, note = trace_bytes(rng, big)
        path, files = TMP + "/t.npz", {"t.npz": data}
    argv = ["simulate", path]
    r = rng.random()
    if r < 0.15:
        argv += ["--cost-models"]
    elif r < 0.25:
        argv += ["--json"]
    elif r < 0.32:
        argv += [f"--hierarchy={rng.choice(['cpu-like', 'h100-like'])}"]
    elif r < 0.36:
        argv += [f"--plot={TMP}/plots"]
    return Case("traces", argv, files, note)


# ============================================================================ hierarchies

def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v:
            return "nan"
        if v in (float("inf"), float("-inf")):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False).replace("\\u007f", "\\u007F")
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_dumps(doc: dict) -> str:
    """A small TOML writer: top-level keys, then [[level]] tables, then [memory]."""
    out = []
    for k, v in doc.items():
        if k in ("level", "memory") and (isinstance(v, dict) or
                                          (isinstance(v, list) and v and
                                           all(isinstance(t, dict) for t in v))):
            continue
        if v is not None:
            out.append(f"{json.dumps(k)} = {toml_value(v)}")
    level = doc.get("level")
    if isinstance(level, list) and level and all(isinstance(t, dict) for t in level):
        for t in level:
            out.append("\n[[level]]")
            out += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in t.items() if v is not None]
    if isinstance(doc.get("memory"), dict):
        out.append("\n[memory]")
        out += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in doc["memory"].items()
                if v is not None]
    return "\n".join(out) + "\n"


def _base_hierarchy(name: str) -> dict:
    import tomllib
    return tomllib.loads((PRESETS_DIR / name).read_text())


CAPACITIES = ["1 TiB", "8 GiB", "1 GiB", "64 MiB", "1 MiB", "64 KiB", "256 B", "4 B", "0", "-1",
              "abc", "", " 1 KiB ", "1.5 KiB", "1.3 KiB", "0.5 B", "1e3", "1 kib", "1 KB",
              "1KiB", "99999999999999999999", "99999999999999999999 TiB", "1" + "0" * 400,
              "1" + "0" * 5000 + " B", "１ KiB", "1\u00a0KiB", "NaN KiB", 0, -1, 64, 2 ** 40,
              2 ** 63, 10 ** 20, 1.5, 1024.0, True, [], {}, "inf B", "1e400 B", "1 GiB\n"]
LINES = [0, 3, 1, 2, 4, 64, 128, 4096, 2 ** 20, 2 ** 40, 2 ** 62, 2 ** 63 - 1, -64, 64.0, "64",
         True, [], 10 ** 20]
WAYS = [0, -1, 1, 2, 3, 7, 16, 10 ** 9, 2 ** 63 - 1, 1.5, "8", True, None, [], 10 ** 20]
POLICIES = ["lru", "fifo", "random", "opt", "LRU", "plru", "", "lru ", 1, None, True, ["lru"]]
ENERGY_VALUES = [0, 0.0, -1, -0.0, 1e-300, 1e300, 1e308, float("inf"), float("-inf"),
                 float("nan"), "12.5", True, [], 10 ** 30, 2 ** 63, 10 ** 400]
SEED_VALUES = [0, -1, 2 ** 63, 2 ** 64, 10 ** 30, 1.5, "0", True]
OFFCHIP_VALUES = ["dram", "hbm", "sram", "", "DRAM", 1, None]
NAMES = ["L1", "", " ", "a" * 10000, "\u2028", "memory", "registers", 1, True, None, [], "x\ty"]


def _mutate_hierarchy_doc(rng, doc: dict) -> str:
    levels = doc.get("level") if isinstance(doc.get("level"), list) else []
    levels = [t for t in levels if isinstance(t, dict)]
    kind = _w(rng, [(20, "capacity"), (10, "line"), (8, "ways"), (6, "policy"), (8, "energy"),
                    (3, "seed"), (3, "write"), (4, "offchip"), (4, "name"), (5, "missing"),
                    (5, "extra"), (3, "levels-many"), (2, "levels-none"), (2, "memory"),
                    (2, "top"), (3, "memory-line"), (2, "compat"), (3, "dup-name")])
    lv = rng.choice(levels) if levels else {}
    if kind == "capacity":
        v = rng.choice(CAPACITIES)
        lv["capacity"] = v
        return f"capacity={str(v)[:20]!r}"
    if kind == "line":
        lv["line"] = rng.choice(LINES)
        return f"line={lv['line']!r}"
    if kind == "ways":
        v = rng.choice(WAYS)
        if v is None:
            lv.pop("ways", None)
        else:
            lv["ways"] = v
        return f"ways={v!r}"
    if kind == "policy":
        lv["policy"] = rng.choice(POLICIES)
        return f"policy={lv['policy']!r}"
    if kind == "energy":
        target = lv if rng.random() < 0.7 or not isinstance(doc.get("memory"), dict) \
            else doc["memory"]
        target["energy_fj_per_bit"] = rng.choice(ENERGY_VALUES)
        return f"energy={target['energy_fj_per_bit']!r}"
    if kind == "seed":
        lv["seed"] = rng.choice(SEED_VALUES)
        lv["policy"] = "random"
        return f"seed={lv['seed']!r}"
    if kind == "write":
        key = rng.choice(["write_back", "write_allocate"])
        lv[key] = rng.choice([False, True, 0, 1, "false"])
        return f"{key}={lv[key]!r}"
    if kind == "offchip":
        target = lv if rng.random() < 0.4 or not isinstance(doc.get("memory"), dict) \
            else doc["memory"]
        target["offchip"] = rng.choice(OFFCHIP_VALUES) or "x"
        if target["offchip"] is None:
            del target["offchip"]
        return "offchip"
    if kind == "name":
        target = lv if rng.random() < 0.7 or not isinstance(doc.get("memory"), dict) \
            else doc["memory"]
        v = rng.choice(NAMES)
        if v is None:
            target.pop("name", None)
        else:
            target["name"] = v
        return "name"
    if kind == "missing":
        if lv:
            key = rng.choice(sorted(lv))
            del lv[key]
            return f"missing-{key}"
        return "missing-none"
    if kind == "extra":
        target = rng.choice([lv, doc, doc.get("memory") if isinstance(doc.get("memory"), dict)
                             else doc])
        target[rng.choice(["size", "latency", "Capacity", "", "level", "memory"])] = \
            rng.choice([1, "x", True, [], {}])
        return "extra-key"
    if kind == "levels-many":
        n = rng.choice([10, 64, 1000])
        base = dict(lv or {"capacity": "256 B", "line": 4})
        doc["level"] = [dict(base, name=f"L{i}", capacity=f"{2 ** min(i + 8, 40)} B")
                        for i in range(n)]
        return f"levels-{n}"
    if kind == "levels-none":
        doc["level"] = rng.choice([[], None, 5, "L1", [1], [[]]])
        if doc["level"] is None:
            del doc["level"]
        return "levels-none"
    if kind == "memory":
        v = rng.choice([None, 5, "HBM", [], {}, {"capacity": "1 GiB", "name": "M"}])
        if v is None:
            doc.pop("memory", None)
        else:
            doc["memory"] = v
        return "memory-table"
    if kind == "top":
        key = rng.choice(["name", "description", "pycachesim_compat"])
        doc[key] = rng.choice([1, "", [], {}, True, "x" * 100000])
        return f"top-{key}"
    if kind == "memory-line":
        if isinstance(doc.get("memory"), dict):
            doc["memory"]["line"] = rng.choice(LINES)
        return "memory-line"
    if kind == "compat":
        doc["pycachesim_compat"] = True
        if lv and rng.random() < 0.5:
            lv["policy"] = "opt"
        return "compat"
    if len(levels) > 1:
        levels[1]["name"] = levels[0].get("name")
    return "dup-name"


def _mutate_toml_text(rng, text: str) -> tuple[bytes, str]:
    kind = rng.choice(["delete", "insert", "not-utf8", "empty", "bom", "deep", "huge-file",
                       "long-string", "dup-table", "nul", "crlf", "odd-char"])
    if kind == "delete":
        i = rng.randrange(len(text))
        return (text[:i] + text[i + rng.randint(1, 6):]).encode(), "toml-delete"
    if kind == "insert":
        i = rng.randrange(len(text))
        return (text[:i] + rng.choice(["[[", "]]", "=", "= =", '"', "'''", "[", "{", "\n[level]\n",
                                       "\n[memory]\n", "#", "\\", "inf", "0x"]) + text[i:])\
            .encode(), "toml-insert"
    if kind == "not-utf8":
        i = rng.randrange(len(text))
        b = text.encode()
        return b[:i] + rng.choice(BAD_UTF8) + b[i:], "toml-not-utf8"
    if kind == "empty":
        return rng.choice([b"", b"\n", b"# nothing\n"]), "toml-empty"
    if kind == "bom":
        return b"\xef\xbb\xbf" + text.encode(), "toml-bom"
    if kind == "deep":
        d = rng.choice([100, 1000, 100_000])
        return ("deep = " + "[" * d + "]" * d + "\n" + text).encode(), f"toml-deep-{d}"
    if kind == "huge-file":
        return (text + "# " + "x" * (1 << 20) + "\n").encode(), "toml-over-1MiB"
    if kind == "long-string":
        return text.replace('name = "L1"', 'name = "' + "L" * 500_000 + '"').encode(), \
            "toml-long-string"
    if kind == "dup-table":
        return (text + "\n[memory]\nname = \"again\"\n").encode(), "toml-dup-table"
    if kind == "nul":
        i = rng.randrange(len(text))
        return (text[:i] + "\x00" + text[i:]).encode(), "toml-nul"
    if kind == "crlf":
        return text.replace("\n", "\r\n").encode(), "toml-crlf"
    i = rng.randrange(len(text))
    return (text[:i] + rng.choice(ODD_CHARS[:5]) + text[i:]).encode("utf-8", "surrogatepass"), \
        "toml-odd-char"


def hierarchy_bytes(rng: random.Random, big: bool = False) -> tuple[bytes, str]:
    """A mutated hierarchy TOML file and what was done to it."""
    name = rng.choice(sorted(p.name for p in PRESETS_DIR.glob("*.toml")))
    if rng.random() < 0.2:
        text = (PRESETS_DIR / name).read_text()
        data, note = _mutate_toml_text(rng, text)
        return data, f"{name} {note}"
    doc = _base_hierarchy(name)
    notes = [_mutate_hierarchy_doc(rng, doc) for _ in range(rng.choice([0, 1, 1, 1, 2, 3]))]
    return toml_dumps(doc).encode(), f"{name} " + " ".join(notes)


def hierarchy_case(rng: random.Random, big: bool = False) -> Case:
    data, note = hierarchy_bytes(rng, big)
    files: dict[str, bytes | Special] = {"h.toml": data}
    h = TMP + "/h.toml"
    how = _w(rng, [(50, "simulate"), (25, "run"), (15, "recompute"), (10, "compare")])
    if how == "simulate":
        files["t.npz"] = (EXAMPLES_DIR / rng.choice(["matvec.npz", "matvec.npz",
                                                     "seed_mlp_step.npz"])).read_bytes()
        argv = ["simulate", TMP + "/t.npz", "--hierarchy", h] + \
            rng.choice([[], [], ["--json"], ["--cost-models"], ["--energy=horowitz-45nm"]])
    else:
        prog = rng.choice(["xor.sir", "parity3.sir", "mlp_backprop_always.sir"])
        files["p.sir"] = base_programs()[prog].encode()
        steps = ["--set", "epochs=1", "--trace-steps=2"]
        if how == "run":
            argv = ["run", TMP + "/p.sir", *steps, "--hierarchy", h]
        elif how == "recompute":
            argv = ["run", TMP + "/p.sir", *steps,
                    "--passes", f"recompute{{policy=auto,hierarchy={h}}}"]
        else:
            argv = ["compare", TMP + "/p.sir", *steps, "--hierarchy", h, "-p", "none",
                    "-p", "fuse"]
    return Case("hierarchies", argv, files, note)


GENERATORS = {"programs": program_case, "options": options_case, "traces": trace_case,
              "hierarchies": hierarchy_case}


def any_case(rng: random.Random, big: bool = False, category: str | None = None) -> Case:
    category = category or rng.choice(CATEGORIES)
    return GENERATORS[category](rng, big)


# ============================================================================ running a case

OUTCOMES = ("exit 0", "exit 2", "exit 3", "traceback", "bad message", "bad exit code", "hang",
            "memory", "crash")
FAILURES = ("traceback", "bad message", "bad exit code", "hang", "memory", "crash")
LOCATED = re.compile(r"^\S.*: error: \S")
ARGPARSE_LAST = re.compile(r"^sutro-sim( \S+)?: error: \S")


@dataclass
class Outcome:
    code: int | None             # exit status (None: killed)
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    signal: int | None = None    # the signal that ended it, other than our timeout's
    max_rss_kb: int | None = None

    @property
    def stderr_tail(self) -> str:
        return "\n".join(self.stderr.rstrip().splitlines()[-8:])


def message_ok(stderr: str) -> bool:
    """The exit-2 message: `WHERE: error: WHAT` first (argparse: its usage, then the error)."""
    lines = stderr.splitlines()
    if not lines:
        return False
    if LOCATED.match(lines[0]):
        return True
    return lines[0].startswith("usage: ") and bool(ARGPARSE_LAST.match(lines[-1]))


def classify(command: str, out: Outcome) -> str:
    """The outcome's kind: one of OUTCOMES."""
    if out.timed_out:
        return "hang"
    if "MemoryError" in out.stderr and "Traceback" in out.stderr:
        return "memory"
    if out.signal is not None:
        return "crash"
    if "Traceback (most recent call last)" in out.stderr:
        return "traceback"
    if out.code == 0:
        return "exit 0"
    if out.code == 2:
        return "exit 2" if message_ok(out.stderr) else "bad message"
    if out.code == 3 and command in ("run", "compare"):
        return "exit 3" if out.stderr.strip() else "bad message"
    if out.code == 1:
        return "traceback"
    return "bad exit code"


def signature(kind: str, out: Outcome, case: Case) -> str:
    """What makes two failures the same: the exception type and the innermost frame in the
    project (else the innermost frame), or the kind and the category."""
    if kind in ("traceback", "memory"):
        frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', out.stderr)
        exc = ""
        for line in reversed(out.stderr.strip().splitlines()):
            m = re.match(r"^([\w.]+(?:Error|Exception|Exit|Warning|Interrupt)|[\w.]+Error)\b",
                         line)
            if m:
                exc = m.group(1)
                break
        ours = [f for f in frames if str(ROOT) in f[0] and "/.venv/" not in f[0]]
        where = (ours or frames or [("?", "?", "?")])[-1]
        path = os.path.relpath(where[0], ROOT) if where[0] != "?" else "?"
        return f"{kind}: {exc or '?'} at {path}:{where[1]} ({where[2]})"
    if kind == "bad message":
        first = re.sub(r"\d+", "N", (out.stderr.splitlines() or [""])[0])
        m = re.match(r"^(.{0,40}?error: [^:'(]{0,30}:?)", first)
        return f"bad message (exit {out.code}): {(m.group(1) if m else first[:40])!r}..."
    if kind == "crash":
        return f"crash: signal {out.signal} ({case.category}, {case.command})"
    if kind == "bad exit code":
        return f"bad exit code {out.code} ({case.command})"
    return f"{kind} ({case.category}, {case.command})"


class CaseTimeout(BaseException):
    """Raised by the alarm in run_in_process: the case ran past its time."""


def _show_warning(message, category, filename, lineno, file=None, line=None):
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _alarm(signum, frame):
    raise CaseTimeout()


def run_in_process(argv: list[str], timeout: float | None = None) -> Outcome:
    """Run `sutro_sim.cli.main(argv)` here, with stdout and stderr captured. A SystemExit is
    its code; any other exception is a traceback (printed into the captured stderr). With a
    timeout, SIGALRM interrupts the case (Python code or a blocking system call such as opening
    a named pipe; not a long compiled loop) and the outcome is timed out."""
    from sutro_sim.cli import main

    out, err = io.StringIO(), io.StringIO()
    timed_out = False
    old = signal.signal(signal.SIGALRM, _alarm) if timeout else None
    start = time.perf_counter()
    try:
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, timeout)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _show_warning    # on the captured stderr, as a user sees it
            try:
                code = main(list(argv))
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if isinstance(e.code, str):
                    print(e.code, file=sys.stderr)
            except CaseTimeout:
                code, timed_out = None, True
            except BaseException:     # noqa: BLE001 - everything else is a bug
                traceback.print_exc(file=err)
                code = 1
    finally:
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    return Outcome(code, out.getvalue(), err.getvalue(), time.perf_counter() - start, timed_out)


def limit_memory(limit_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


def run_in_subprocess(argv: list[str], cwd: str, timeout: float, mem_limit: int,
                      python_args: tuple[str, ...] = ("-m", "sutro_sim")) -> Outcome:
    """Run `python -m sutro_sim ARGV` under an address-space limit and a timeout."""
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *python_args, *argv], cwd=cwd, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=lambda: limit_memory(mem_limit),
                            start_new_session=True)
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - start
    code = proc.returncode
    sig = -code if code is not None and code < 0 and not timed_out else None
    return Outcome(code if code is not None and code >= 0 else None,
                   stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"),
                   seconds, timed_out, sig)
