"""The JSON contract: every `--json` object carries `schema_version`, and
docs/sutro-sim.schema.json (JSON Schema 2020-12) describes every command's output at that
version, with the unit of each figure. A change that could break a reader (a key removed,
renamed or retyped) raises the version; a key added does not."""

from __future__ import annotations

import json
import math

SCHEMA_VERSION = 1


def dumps(obj) -> str:
    """A command's JSON output: an object gets `schema_version` first; a list (hierarchies,
    energies) is described by the schema of the same version. Strict JSON: a NaN or infinity
    (which it has no words for) becomes null."""
    if isinstance(obj, dict):
        obj = {"schema_version": SCHEMA_VERSION, **obj}
    try:
        return json.dumps(obj, indent=1, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(obj), indent=1, allow_nan=False)


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
