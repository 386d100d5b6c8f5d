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
import hashlib
import json
import os
import platform
import sqlite3
import subprocess
from importlib import metadata

from simulator.errors import SimError
from simulator.inputs import check_writable

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


def tool_version() -> str:
    try:
        return metadata.version("sutro-sim")
    except metadata.PackageNotFoundError:     # run from a source tree that is not installed
        return "unknown"


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


class Database:
    """An open results database (created on first use)."""

    def __init__(self, path: str, where: str = "--db"):
        self.path = path
        check_writable(path, where)       # and SQLite writes a journal beside it
        try:
            self.conn = sqlite3.connect(path, timeout=30)
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version > USER_VERSION:
                raise SimError(f"{path} was written by a newer sutro-sim (layout {version}; "
                               f"this one reads {USER_VERSION})", where)
            tables = {r[0] for r in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and "runs" not in tables:
                raise SimError(f"{path} is an SQLite database but not a sutro-sim results "
                               "database (no `runs` table)", where)
            self.conn.executescript(LAYOUT)
            self.conn.execute(f"PRAGMA user_version = {USER_VERSION}")
            self.conn.commit()
        except sqlite3.DatabaseError as e:
            raise SimError(f"cannot use {path} as the results database: {e}", where) from None
        self.conn.row_factory = sqlite3.Row

    def close(self) -> None:
        self.conn.close()

    def add_group(self, command: str, spec: dict, note: str | None) -> int:
        with self.conn:
            cur = self.conn.execute("INSERT INTO groups (created, command, spec, note) VALUES "
                                    "(?, ?, ?, ?)", (_now(), command, json.dumps(spec), note))
        return cur.lastrowid

    def add(self, record: dict) -> int:
        """Record one run (a dict from `record`); its id."""
        values = [json.dumps(record[c]) if c in JSON_COLUMNS else _text(record[c])
                  for c in COLUMNS]
        with self.conn:
            cur = self.conn.execute(f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES "
                                    f"({', '.join('?' * len(COLUMNS))})", values)
        return cur.lastrowid

    def recorded(self, points: list[str]) -> dict[str, int]:
        """Which of these points have a record: point -> the newest run's id."""
        out: dict[str, int] = {}
        for i in range(0, len(points), 500):
            chunk = points[i:i + 500]
            for point, run_id in self.conn.execute(
                    f"SELECT point, MAX(id) FROM runs WHERE point IN "
                    f"({', '.join('?' * len(chunk))}) GROUP BY point", chunk):
                out[point] = run_id
        return out

    def get(self, run_id: int, where: str = "log") -> dict:
        row = self.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise SimError(f"no run {run_id} in {self.path}", where)
        return _decoded(row)

    def runs(self, limit: int | None = None, program: str | None = None,
             group: int | None = None) -> list[dict]:
        """The newest `limit` runs (all when None), oldest first."""
        sql, args = "SELECT * FROM runs", []
        conds = []
        if program is not None:
            conds.append("(program = ? OR program LIKE ?)")
            args += [program, f"%{program}%"]
        if group is not None:
            conds.append("group_id = ?")
            args.append(group)
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [_decoded(r) for r in self.conn.execute(sql, args)][::-1]

    def set_note(self, run_id: int, note: str) -> None:
        self.get(run_id)
        with self.conn:
            self.conn.execute("UPDATE runs SET note = ? WHERE id = ?", (note, run_id))


def open_for_writing(option: str | None, disabled: bool) -> Database | None:
    """The database a command records into, opened before its long part: None when recording
    is off, or when the default file cannot be written (a warning says so); a file the user
    named that cannot be opened is an error."""
    path, named = location(option, disabled)
    if path is None:
        return None
    try:
        return Database(path, "--db" if option is not None else ENV if named else "--db")
    except SimError as e:
        if named:
            raise
        print(f"warning: not recording this run ({e.message}; --no-db silences this)",
              file=__import__("sys").stderr)
        return None


def open_for_reading(option: str | None) -> Database:
    path, _ = location(option)
    if not os.path.exists(path):
        raise SimError(f"no results database at {path} (runs record into it; --db PATH or "
                       f"{ENV} names another)", "--db")
    return Database(path)


def _text(value):
    """SQLite text is UTF-8: a path or note holding undecodable bytes (surrogate escapes)
    keeps them as backslash escapes."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _decoded(row: sqlite3.Row) -> dict:
    d = dict(row)
    for c in JSON_COLUMNS:
        if d.get(c) is not None:
            d[c] = json.loads(d[c])
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


def git_state(program: str) -> tuple[str | None, int | None]:
    """The commit of the repository holding the program, and whether the program differs from
    it (None, None outside a repository or without git)."""
    folder = os.path.dirname(os.path.abspath(program))
    try:
        head = subprocess.run(["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None, None
        diff = subprocess.run(["git", "-C", folder, "status", "--porcelain", "--",
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
