"""The results database: one SQLite file, one row per priced run.

`run`, `compare` and `sweep` record into `sutro-results.db` in the working directory unless
`--db PATH` or the environment variable SUTRO_SIM_DB names another file, or `--no-db` turns
recording off. A row keeps what is needed to reproduce the run and to compare it with
another: the tool's version, the git commit of the program's directory, the program's text and
hash, the configuration with the overrides given, the seed, the passes with their options, the
hierarchy (its levels, so a TOML file's contents are kept too), the energy preset, the traced
steps, every metric (the `run --json` object), the wall time and the host. Its `point` is a hash
of the inputs that decide the result, so a sweep skips what is already recorded.

One writer: workers of a sweep return their records and the process that started the sweep
writes them, each in its own transaction, so an interrupt loses nothing that finished.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import os
import platform
import shlex
import sqlite3
import subprocess
import sys
import urllib.parse
from importlib import metadata

from simulator.errors import SimError
from simulator.inputs import check_file, check_writable

ENV = "SUTRO_SIM_DB"
DEFAULT = "sutro-results.db"
USER_VERSION = 1     # PRAGMA user_version of the layout below

LAYOUT = """
CREATE TABLE IF NOT EXISTS groups (
    id INTEGER PRIMARY KEY,
    created TEXT NOT NULL,           -- UTC, ISO 8601
    command TEXT NOT NULL,           -- compare | sweep
    spec TEXT NOT NULL,              -- JSON: what the command was asked
    note TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    created TEXT NOT NULL,           -- UTC, ISO 8601
    command TEXT NOT NULL,           -- run | compare | sweep
    group_id INTEGER REFERENCES groups(id),
    note TEXT,
    point TEXT NOT NULL,             -- sha256 of the inputs that decide the result
    status TEXT NOT NULL,            -- ok | diverged
    tool_version TEXT NOT NULL,
    git_commit TEXT,                 -- of the program's directory, when it is in a repository
    git_dirty INTEGER,               -- 1: the program differs from that commit
    program TEXT NOT NULL,           -- the path as given
    program_sha256 TEXT NOT NULL,
    program_text TEXT NOT NULL,
    overrides TEXT NOT NULL,         -- JSON: the --set values
    config TEXT,                     -- JSON: every config constant after the overrides
    seed INTEGER,                    -- --seed, or null (the program's own)
    passes TEXT NOT NULL,            -- the pipeline with its options, '' for none
    hierarchy TEXT NOT NULL,         -- the name or file given
    hierarchy_spec TEXT NOT NULL,    -- JSON: its levels
    energy_preset TEXT NOT NULL,
    trace_steps TEXT,                -- --trace-steps, or null (the program's own default)
    options TEXT NOT NULL,           -- JSON: evaluate, brute_force, target_accuracy, ...
    accuracy_train REAL,
    accuracy_test REAL,
    loss_test REAL,
    energy_fj REAL,                  -- the traced steps' total (the whole run when exact)
    exact INTEGER,                   -- 1: every step accounted
    ard REAL,                        -- elements
    steps INTEGER,
    wall_s REAL,
    host TEXT NOT NULL,
    result TEXT NOT NULL             -- JSON: the run --json object (or the divergence)
);
CREATE INDEX IF NOT EXISTS runs_point ON runs(point);
"""

COLUMNS = ("created", "command", "group_id", "note", "point", "status", "tool_version",
           "git_commit", "git_dirty", "program", "program_sha256", "program_text", "overrides",
           "config", "seed", "passes", "hierarchy", "hierarchy_spec", "energy_preset",
           "trace_steps", "options", "accuracy_train", "accuracy_test", "loss_test",
           "energy_fj", "exact", "ard", "steps", "wall_s", "host", "result")
JSON_COLUMNS = ("overrides", "config", "hierarchy_spec", "options", "result")


@functools.lru_cache(maxsize=None)
def tool_version() -> str:
    """The package's version and a hash of its sources ('0.1.0+src.1a2b3c4d5e6f'): an edit of
    the code, installed or not, makes another version, so a sweep does not read back points
    that older code measured."""
    try:
        version = metadata.version("sutro-sim")
    except metadata.PackageNotFoundError:     # run from a source tree that is not installed
        version = "unknown"
    digest = hashlib.sha256()
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for package in ("simulator", "sutro_ir", "sutro_sim"):     # installed side by side
        root = os.path.join(top, package)
        for folder, dirs, files in sorted(os.walk(root)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith((".py", ".lark", ".toml")):
                    path = os.path.join(folder, name)
                    digest.update(os.path.relpath(path, root).encode() + b"\0")
                    with open(path, "rb") as f:
                        digest.update(f.read())
    return f"{version}+src.{digest.hexdigest()[:12]}"


def location(option: str | None, disabled: bool = False) -> tuple[str | None, bool]:
    """The database file and whether the user named it (--db or SUTRO_SIM_DB): a named file
    that cannot be opened is an error, the default one only a warning."""
    if disabled:
        return None, False
    if option is not None:
        return option, True
    env = os.environ.get(ENV)
    if env:
        return env, True
    return DEFAULT, False


LOCK_WAIT_S = 10       # how long a write waits for another process's write to end


class Database:
    """A results database. Opening checks it without writing: a file that exists must be
    one sutro-sim wrote (its layout version and its tables' columns); a file that does not
    exist is made on the first record, so a command refused before it records leaves none.
    `readonly`: for `log`, which reads a database it may not write (its listing, a diff)."""

    def __init__(self, path: str, where: str = "--db", readonly: bool = False):
        self.path, self.where = path, where
        self.real = os.path.abspath(path)   # a plain file: never ':memory:' or a URI
        self._conn = None
        if readonly:
            check_file(path, "results database")
        else:
            check_writable(path, where)       # and SQLite writes a journal beside it
        if os.path.exists(self.real):
            self._connect(readonly)
        elif readonly:
            raise SimError(f"no results database at {path}", where)

    def _connect(self, readonly: bool = False):
        try:
            uri = "file:" + urllib.parse.quote(self.real) + ("?mode=ro" if readonly else "")
            conn = sqlite3.connect(uri, uri=True, timeout=LOCK_WAIT_S)
            conn.row_factory = sqlite3.Row
            tables = {r[0]: r[1] for r in conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type='table'")}
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if tables or version:
                self._check_layout(conn, tables, version)
            elif not readonly:
                with conn:
                    conn.executescript(LAYOUT)
                    conn.execute(f"PRAGMA user_version = {USER_VERSION}")
            elif readonly:
                raise SimError(f"{self.path} holds no runs (an empty database)", self.where)
        except sqlite3.Error as e:
            raise SimError(f"cannot use {self.path} as the results database: {e}",
                           self.where) from None
        self._conn = conn
        return conn

    def _check_layout(self, conn, tables: dict, version: int) -> None:
        foreign = SimError(f"{self.path} is an SQLite database but not a sutro-sim results "
                           "database (it is left as it is)", self.where)
        if version > USER_VERSION and "runs" in tables:
            raise SimError(f"{self.path} was written by a newer sutro-sim (layout {version}; "
                           f"this one reads {USER_VERSION})", self.where)
        if version != USER_VERSION or not {"runs", "groups"} <= set(tables):
            raise foreign
        columns = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
        if not {"id", *COLUMNS} <= columns:
            raise foreign

    @property
    def conn(self):
        return self._conn if self._conn is not None else self._connect()

    def _do(self, what: str, fn):
        """A database operation; SQLite's errors (a lock held too long, a full disk, a
        damaged file) as SimError."""
        try:
            return fn()
        except sqlite3.OperationalError as e:
            hint = (f" (another process kept it locked for more than {LOCK_WAIT_S} s)"
                    if "locked" in str(e) else "")
            raise SimError(f"cannot {what}: {e}{hint}", self.path) from None
        except sqlite3.Error as e:
            raise SimError(f"cannot {what}: {e}", self.path) from None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def add_group(self, command: str, spec: dict, note: str | None) -> int:
        def go():
            with self.conn:
                return self.conn.execute(
                    "INSERT INTO groups (created, command, spec, note) VALUES (?, ?, ?, ?)",
                    (_now(), command, json.dumps(spec), _text(note))).lastrowid
        return self._do("record the group", go)

    def add(self, record: dict) -> int:
        """Record one run (a dict from `record`); its id."""
        values = [json.dumps(record[c]) if c in JSON_COLUMNS else _text(record[c])
                  for c in COLUMNS]

        def go():
            with self.conn:
                return self.conn.execute(f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES "
                                         f"({', '.join('?' * len(COLUMNS))})",
                                         values).lastrowid
        return self._do("record the run", go)

    def recorded(self, points: list[str]) -> dict[str, int]:
        """Which of these points have a record: point -> the newest run's id."""
        if self._conn is None:
            return {}
        out: dict[str, int] = {}
        for i in range(0, len(points), 500):
            chunk = points[i:i + 500]
            rows = self._do("read the database", lambda: self.conn.execute(
                f"SELECT point, MAX(id) FROM runs WHERE point IN "
                f"({', '.join('?' * len(chunk))}) GROUP BY point", chunk).fetchall())
            out.update(dict(rows))
        return out

    def get(self, run_id: int, where: str = "log") -> dict:
        if not 0 < run_id < 1 << 63:
            raise SimError(f"no run {run_id} in {self.path} (runs are numbered from 1)", where)
        row = None if self._conn is None else self._do(
            "read the database",
            lambda: self.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone())
        if row is None:
            raise SimError(f"no run {run_id} in {self.path}", where)
        return _decoded(row, self.path)

    def runs(self, limit: int | None = None, program: str | None = None,
             group: int | None = None) -> list[dict]:
        """The newest `limit` runs (all when None), oldest first; `program`: those whose path
        contains it."""
        if self._conn is None:
            return []
        sql, args = "SELECT * FROM runs", []
        conds = []
        if program is not None:
            conds.append("instr(program, ?) > 0")
            args.append(program)
        if group is not None:
            conds.append("group_id = ?")
            args.append(min(group, (1 << 63) - 1))
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(min(limit, (1 << 63) - 1))
        rows = self._do("read the database", lambda: self.conn.execute(sql, args).fetchall())
        return [_decoded(r, self.path) for r in rows][::-1]

    def set_note(self, run_id: int, note: str) -> None:
        self.get(run_id)

        def go():
            with self.conn:
                self.conn.execute("UPDATE runs SET note = ? WHERE id = ?", (_text(note), run_id))
        self._do("keep the note", go)


def open_for_writing(option: str | None, disabled: bool) -> Database | None:
    """The database a command records into, checked before its long part (and made on its
    first record): None when recording is off, or when the default file cannot be used (a
    warning says so); a file the user named that cannot be used is an error."""
    path, named = location(option, disabled)
    if path is None:
        return None
    try:
        return Database(path, "--db" if option is not None else ENV if named else "--db")
    except SimError as e:
        if named:
            raise
        print(f"warning: not recording this run ({e.message}; --no-db silences this)",
              file=sys.stderr)
        return None


def open_for_reading(option: str | None, write: bool = False) -> Database:
    """The database `log` reads (`write`: `log note`, which also writes)."""
    path, _ = location(option)
    if not os.path.exists(path):
        raise SimError(f"no results database at {path} (runs record into it; --db PATH or "
                       f"{ENV} names another)", "--db")
    return Database(path, readonly=not write)


def log_hint(db: Database, what: str) -> str:
    """The command that shows a record: `sutro-sim log [--db FILE] WHAT`."""
    named = "" if db.path == DEFAULT else f" --db {shlex.quote(db.path)}"
    return f"sutro-sim log{named} {what}".rstrip()


def _text(value):
    """SQLite text is UTF-8: a path or note holding undecodable bytes (surrogate escapes)
    keeps them as backslash escapes."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _decoded(row: sqlite3.Row, path: str) -> dict:
    d = dict(row)
    for c in JSON_COLUMNS:
        if d.get(c) is not None:
            try:
                d[c] = json.loads(d[c])
            except (TypeError, ValueError, RecursionError):
                raise SimError(f"run {d.get('id')}: its `{c}` is not the JSON sutro-sim "
                               "wrote (the record was edited or damaged)", path) from None
    for c, kind in (("overrides", dict), ("config", (dict, type(None))),
                    ("hierarchy_spec", dict), ("options", dict), ("result", dict)):
        if not isinstance(d.get(c), kind):
            raise SimError(f"run {d.get('id')}: its `{c}` is not what sutro-sim wrote (the "
                           "record was edited or damaged)", path)
    for c in ("accuracy_train", "accuracy_test", "loss_test", "energy_fj", "ard", "wall_s"):
        if d.get(c) is not None and not isinstance(d[c], (int, float)):
            raise SimError(f"run {d.get('id')}: its `{c}` is not a number (the record was "
                           "edited or damaged)", path)
    return d


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- records

def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def point_of(program_text: str, overrides: dict, seed: int | None, passes: str,
             hierarchy_spec: dict, energy_preset: str, trace_steps: str | None,
             options: dict) -> str:
    """The hash of what decides a run's result (not where or when it ran, nor the path)."""
    key = {"program": sha256(program_text), "overrides": dict(sorted(overrides.items())),
           "seed": seed, "passes": passes, "hierarchy": hierarchy_spec,
           "energy": energy_preset, "trace_steps": trace_steps, "options": options,
           "version": tool_version()}
    return sha256(json.dumps(key, sort_keys=True))


def hierarchy_spec(hierarchy) -> dict:
    return dataclasses.asdict(hierarchy)


def hierarchy_from_spec(spec: dict):
    """The Hierarchy a record's `hierarchy_spec` describes (hierarchy_spec, inverted)."""
    from simulator.hierarchy import Hierarchy, Level
    return Hierarchy(**{**spec, "levels": tuple(Level(**lv) for lv in spec["levels"])})


def git_state(program: str) -> tuple[str | None, int | None]:
    """The commit of the repository holding the program, and whether the program differs from
    it (None, None outside a repository or without git)."""
    folder = os.path.dirname(os.path.abspath(program))
    try:
        head = subprocess.run(["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None, None
        diff = subprocess.run(["git", "--no-optional-locks", "-C", folder, "status",
                               "--porcelain", "--",
                               os.path.abspath(program)], capture_output=True, text=True,
                              timeout=10)
        return head.stdout.strip(), int(bool(diff.stdout.strip()))
    except (OSError, subprocess.SubprocessError):
        return None, None


def record(command: str, inputs: dict, result: dict | None = None,
           diverged: dict | None = None, note: str | None = None,
           group_id: int | None = None) -> dict:
    """A row for `runs`: `inputs` (from `inputs_of`), and the `run --json` object or the
    divergence."""
    r = result or {}
    loss = (r.get("loss") or {}).get("test")
    commit, dirty = git_state(inputs["program"])
    return dict(inputs, created=_now(), command=command, group_id=group_id, note=note,
                status="ok" if diverged is None else "diverged", tool_version=tool_version(),
                git_commit=commit, git_dirty=dirty,
                config=r.get("config"),
                accuracy_train=(r.get("accuracy") or {}).get("train"),
                accuracy_test=(r.get("accuracy") or {}).get("test"), loss_test=loss,
                energy_fj=(r.get("energy_fj") or {}).get("total"),
                exact=None if not r else int(r["traced"]["all_steps"]),
                ard=(r.get("reuse") or {}).get("ard"), steps=r.get("steps"),
                wall_s=r.get("wall_s"), host=platform.node(),
                result=r if diverged is None else {"diverged": diverged})


def run_options(evaluate: bool = True, brute_force: bool = False,
                target_accuracy: float | None = None, cost_models: bool = False) -> dict:
    """The options of a run that decide its result, as its point hashes them."""
    return {"evaluate": evaluate, "brute_force": brute_force,
            "target_accuracy": target_accuracy, "cost_models": cost_models}


def inputs_of(program: str, program_text: str, overrides: dict, seed: int | None, passes: str,
              hierarchy: str, hierarchy_obj, energy_preset: str, trace_steps: str | None,
              options: dict) -> dict:
    """What a run was asked, as the database keeps it."""
    spec = hierarchy_spec(hierarchy_obj)
    return {"program": program, "program_sha256": sha256(program_text),
            "program_text": program_text, "overrides": dict(overrides), "seed": seed,
            "passes": passes, "hierarchy": hierarchy, "hierarchy_spec": spec,
            "energy_preset": energy_preset, "trace_steps": trace_steps, "options": options,
            "point": point_of(program_text, overrides, seed, passes, spec, energy_preset,
                              trace_steps, options)}
