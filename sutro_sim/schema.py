"""The JSON contract: every `--json` object carries `schema_version`, and
docs/sutro-sim.schema.json (JSON Schema 2020-12) describes every command's output at that
version, with the unit of each figure. A change that could break a reader (a key removed,
renamed or retyped) raises the version; a key added does not."""

from __future__ import annotations

import json

SCHEMA_VERSION = 1


def dumps(obj) -> str:
    """A command's JSON output: an object gets `schema_version` first; a list (hierarchies,
    energies) is described by the schema of the same version."""
    if isinstance(obj, dict):
        obj = {"schema_version": SCHEMA_VERSION, **obj}
    return json.dumps(obj, indent=1)
