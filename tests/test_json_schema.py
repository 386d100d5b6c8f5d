"""The JSON contract: every `--json` output of the command line validates against
docs/sutro-sim.schema.json (JSON Schema 2020-12) at sutro_sim.schema.SCHEMA_VERSION.

Each command runs once, in process (`main`, its stdout captured), into a module fixture (so the
file takes seconds); the tests validate each output against its `$defs` entry. The schema
closes every object it defines, so a key added to or removed from an output without the schema
following fails here. The mutation tests prove that the validation can fail; the coverage tests
that every key the schema describes is printed by some command (no key that no longer exists)
and that every key all the outputs print is required (no `required` entry dropped).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, validators

from sutro_sim.cli import main
from sutro_sim.schema import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "docs" / "sutro-sim.schema.json"
PROGRAMS = ROOT / "programs"
SEED_STEP = str(ROOT / "examples" / "seed_mlp_step.npz")

COMMANDS = ("run", "diverged", "compare", "sweep", "simulate", "score", "allocate", "lower",
            "hierarchies", "energies", "log", "log_show", "log_diff")


def load_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


SCHEMA = load_schema()


def validator_for(name: str, schema: dict | None = None, cls=Draft202012Validator):
    """A validator of $defs/NAME: the whole schema (for its $defs) with a root $ref."""
    schema = SCHEMA if schema is None else schema
    return cls({**schema, "$ref": f"#/$defs/{name}"}, format_checker=cls.FORMAT_CHECKER)


def errors(name: str, doc, schema: dict | None = None) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}"
            for e in validator_for(name, schema).iter_errors(doc)]


def _no_constant(word: str):
    raise AssertionError(f"the output is not strict JSON: it prints {word}")


def run_cli(*argv) -> tuple[int, str, str]:
    """`sutro-sim ARGV` in process: its exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


# ----------------------------------------------------------------------------- the outputs

@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, tuple[str, object]]:
    """label -> ($defs name, parsed output) of every command, each run once. A results
    database in tmp_path gets an ok run, a diverged run, a compare and a sweep, for `log`."""
    tmp = tmp_path_factory.mktemp("json-schema")
    db = str(tmp / "results.db")
    out: dict[str, tuple[str, object]] = {}

    def take(label: str, name: str, *argv, code: int = 0):
        got, text, err = run_cli(*argv)
        assert got == code, f"{label}: exit {got}, expected {code}\n{err}"
        out[label] = (name, json.loads(text, parse_constant=_no_constant))
        return out[label][1]

    xor, parity3 = PROGRAMS / "xor.sir", PROGRAMS / "parity3.sir"
    mlp4, chars = PROGRAMS / "mlp4_backprop.sir", PROGRAMS / "char_attention.sir"

    # run: exact; recorded with --cost-models and --target-accuracy; sampled with a loss, a
    # chars baseline and a target whose energy is unknown (sampled); diverged (exit 3)
    saved = tmp / "xor-run.npz"
    take("run exact, by line, saved", "run", "run", xor, "--by-line", "--save-trace", saved,
         "--json", "--no-db")
    ok = take("run recorded, cost models, target", "run", "run", parity3, "--cost-models",
              "--target-accuracy", "0.9", "--json", "--db", db)
    take("run sampled, loss, baseline", "run", "run", chars, "--set", "length=1200",
         "--trace-steps", "2", "--target-accuracy", "0.3", "--json", "--no-db")
    take("run diverged", "diverged", "run", mlp4, "--set", "lr=50", "--json", "--db", db,
         code=3)
    take("compare diverged", "diverged", "compare", mlp4, "--set", "lr=50", "--json",
         "--no-db", code=3)

    cmp = take("compare", "compare", "compare", xor, "-p", "fuse", "--hierarchy",
               "sutro-tiers,cpu-like", "--target-accuracy", "0.9", "--cost-models", "--json",
               "--db", db)
    take("compare sampled", "compare", "compare", xor, parity3, "--trace-steps", "2",
         "--json", "--no-db")

    sweep = ("sweep", xor, "--set", "lr=0.05,0.1", "--seeds", "2", "-j", "1", "--json",
             "--db", db)
    sw = take("sweep", "sweep", *sweep)
    take("sweep read back", "sweep", *sweep)
    take("sweep diverged, no db", "sweep", "sweep", mlp4, "--set", "lr=50", "-j", "1",
         "--json", "--no-db")

    # address-IR programs: a baseline, a wrong one, one past Model 2's grid
    mm4 = tmp / "matmul4.ir"
    assert run_cli("baseline", "matmul-4", "-o", mm4)[0] == 0
    wrong = tmp / "wrong.ir"
    wrong.write_text(re.sub(r"(?m)^mul ", "add ", mm4.read_text(), count=1))
    far = tmp / "far.ir"
    far.write_text("1,2\nadd 3000000000000,1,2\n3000000000000\n")

    take("simulate npz", "simulate", "simulate", SEED_STEP, "--json")
    take("simulate npz, cost models", "simulate", "simulate", SEED_STEP, "--hierarchy",
         "cpu-like", "--cost-models", "--json")
    take("simulate saved run", "simulate", "simulate", saved, "--hierarchy", "cpu-like",
         "--json")
    take("simulate saved run, cost models", "simulate", "simulate", saved, "--cost-models",
         "--json")
    take("simulate ir", "simulate", "simulate", mm4, "--json")
    take("simulate ir, cost models", "simulate", "simulate", mm4, "--cost-models", "--json")
    take("simulate ir, model 1", "simulate", "simulate", mm4, "--model", "1", "--json")

    take("score checked", "score", "score", mm4, "--problem", "matmul-4", "--json")
    take("score wrong", "score", "score", wrong, "--problem", "matmul-4", "--json", code=1)
    take("score model 2", "score", "score", mm4, "--model", "2", "--json")
    take("score past the grid", "score", "score", far, "--json")
    take("allocate checked", "allocate", "allocate", mm4, "--problem", "matmul-4", "-o",
         tmp / "allocated.ir", "--json")
    take("allocate unchecked", "allocate", "allocate", mm4, "--json")
    lower = ("lower", PROGRAMS / "matmul.sir", "--target", "dally-v0", "--set", "n=4",
             "--problem", "matmul-4", "--json")
    take("lower", "lower", *lower)
    take("lower, no allocation", "lower", *lower, "--no-allocate")

    take("hierarchies", "hierarchies", "hierarchies", "--json")
    take("energies", "energies", "energies", "--json")

    log = take("log", "log", "log", "--db", db, "-n", "0", "--json")
    take("log, no match", "log", "log", "--db", db, "--program", "no-such-program", "--json")
    diverged_id = next(r["id"] for r in log["runs"] if r["status"] == "diverged")
    ok_id, cmp_ids = ok["recorded"]["id"], cmp["recorded"]["ids"]
    sweep_id = sw["points"][0]["run_id"]
    for label, run_id in (("ok", ok_id), ("diverged", diverged_id), ("compare", cmp_ids[0]),
                          ("sweep", sweep_id)):
        take(f"log show {label}", "log_show", "log", "--db", db, "show", run_id, "--json")
    take("log diff ok, diverged", "log_diff", "log", "--db", db, "diff", ok_id, diverged_id,
         "--json")
    take("log diff compare rows", "log_diff", "log", "--db", db, "diff", cmp_ids[0],
         cmp_ids[-1], "--json")
    return out


LABELS = [
    "run exact, by line, saved", "run recorded, cost models, target",
    "run sampled, loss, baseline", "run diverged", "compare diverged", "compare",
    "compare sampled", "sweep", "sweep read back", "sweep diverged, no db", "simulate npz",
    "simulate npz, cost models", "simulate saved run", "simulate saved run, cost models",
    "simulate ir", "simulate ir, cost models", "simulate ir, model 1", "score checked",
    "score wrong", "score model 2", "score past the grid", "allocate checked",
    "allocate unchecked", "lower", "lower, no allocation", "hierarchies", "energies", "log",
    "log, no match", "log show ok", "log show diverged", "log show compare", "log show sweep",
    "log diff ok, diverged", "log diff compare rows"]


def test_every_command_is_run_and_every_definition_used(outputs):
    assert list(outputs) == LABELS
    assert {name for name, _ in outputs.values()} == set(COMMANDS)


@pytest.mark.parametrize("label", LABELS)
def test_output_follows_the_schema(outputs, label):
    name, doc = outputs[label]
    assert errors(name, doc) == []


def test_the_outputs_cover_what_they_should(outputs):
    """The situations the fixture means to produce (so the validations above see them)."""
    run = outputs["run recorded, cost models, target"][1]
    assert {"memtracker", "cost_models", "target", "recorded", "loss"} <= set(run)
    assert run["traced"]["all_steps"] and "energy_per_epoch_fj" in run["traced"]
    sampled = outputs["run sampled, loss, baseline"][1]
    assert {"loss", "baseline", "target"} <= set(sampled)
    assert not sampled["traced"]["all_steps"] and sampled["costs"] == {}
    assert "energy_per_epoch_fj" not in sampled["traced"]
    assert sampled["target"]["learning_energy_fj"] is None
    exact = outputs["run exact, by line, saved"][1]
    assert "recorded" not in exact and "by_line" in exact
    assert "accounting" in outputs["simulate saved run"][1]
    statuses = {p["status"] for label in ("sweep", "sweep read back", "sweep diverged, no db")
                for p in outputs[label][1]["points"]}
    assert statuses == {"new", "recorded", "diverged"}
    assert outputs["log show diverged"][1]["result"].keys() == {"diverged"}
    assert outputs["simulate npz, cost models"][1]["bytedmd"] is None
    assert outputs["simulate ir, cost models"][1]["bytedmd"] is not None
    assert outputs["score past the grid"][1]["model2"] is None
    assert outputs["score wrong"][1]["correct"] is False


# ----------------------------------------------------------------------------- the version

def test_the_schema_is_valid_2020_12():
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["$id"] and SCHEMA["title"]
    assert set(COMMANDS) <= set(SCHEMA["$defs"])


def test_the_schema_pins_the_version_of_sutro_sim_schema():
    assert SCHEMA["$defs"]["schema_version"]["const"] == SCHEMA_VERSION
    assert f"schema_version {SCHEMA_VERSION} " in SCHEMA["description"]
    assert f"SCHEMA_VERSION = {SCHEMA_VERSION})" in SCHEMA["description"]


@pytest.mark.parametrize("label", LABELS)
def test_every_object_output_starts_with_schema_version(outputs, label):
    name, doc = outputs[label]
    if name in ("hierarchies", "energies"):
        assert isinstance(doc, list)      # lists carry no version key; the schema's applies
        return
    assert isinstance(doc, dict)
    assert next(iter(doc)) == "schema_version"
    assert doc["schema_version"] == SCHEMA_VERSION
    assert "schema_version" not in json.dumps(
        {k: v for k, v in doc.items() if k != "schema_version"})   # only once, at the top


# ----------------------------------------------------------------------------- it can fail

def _mutations():
    """(label of an output, what the mutation does, the mutation)."""
    def drop(*path):
        def f(d, outputs):
            node = d
            for p in path[:-1]:
                node = node[p]
            del node[path[-1]]
        return f

    def put(value, *path):
        def f(d, outputs):
            node = d
            for p in path[:-1]:
                node = node[p]
            node[path[-1]] = value
        return f

    run, cmp = "run exact, by line, saved", "compare"
    return [
        # a required key removed
        (run, "traced removed", drop("traced")),
        (run, "schema_version removed", drop("schema_version")),
        (run, "a level's hit_rate removed", drop("levels", 0, "hit_rate")),
        (cmp, "a row's run loses energy_fj", drop("rows", 0, "run", "energy_fj")),
        ("sweep", "a point's status removed", drop("points", 0, "status")),
        ("sweep", "a point's test accuracy removed (its other metrics kept)",
         drop("points", 0, "accuracy_test")),
        ("run diverged", "diverged.where removed", drop("diverged", "where")),
        ("log show ok", "result.accuracy removed", drop("result", "accuracy")),
        ("hierarchies", "a level's line_bytes removed", drop(0, "levels", 0, "line_bytes")),
        # an undocumented key added
        (run, "an extra key at the top", put(1, "surprise")),
        (run, "an extra key in traced", put(1, "traced", "surprise")),
        (run, "an extra key in energy_fj.distance_model",
         put(1, "energy_fj", "distance_model", "surprise")),
        (cmp, "a row's run carries schema_version", put(1, "rows", 0, "run", "schema_version")),
        (cmp, "an extra key in a row's run", put(1, "rows", 0, "run", "surprise")),
        ("log show ok", "an extra key in the recorded result", put(1, "result", "surprise")),
        ("energies", "an extra key in a constant", put(1, 0, "constants", "e_w", "surprise")),
        ("simulate ir, cost models", "an extra key in bytedmd", put(1, "bytedmd", "surprise")),
        ("score checked", "an extra key in model1", put(1, "model1", "surprise")),
        # a wrong type
        (run, "steps as a string", put("48", "steps")),
        (run, "hit_rate as a string", put("67%", "levels", 0, "hit_rate")),
        (run, "accuracy out of 0..1", put(1.5, "accuracy", "test")),
        (run, "costs partly empty", put({"total_fj": 1.0}, "costs")),
        (run, "energy by level as a list", put([1.0], "energy_fj", "by_level")),
        (run, "schema_version 2", put(2, "schema_version")),
        (cmp, "trained_by_row as a label", put("row 1", "rows", 1, "trained_by_row")),
        ("log", "exact as a boolean", put(True, "runs", 0, "exact")),
        ("log show diverged", "a diverged row whose result is a run",
         lambda d, outputs: d.__setitem__("result", outputs["log show ok"][1]["result"])),
        ("lower", "allocated lower without cost_ssa", drop("cost_ssa")),
    ]


@pytest.mark.parametrize("label, what, mutate", _mutations(),
                         ids=[f"{m[0]}: {m[1]}" for m in _mutations()])
def test_a_broken_output_fails_validation(outputs, label, what, mutate):
    name, doc = outputs[label]
    assert errors(name, doc) == []
    broken = copy.deepcopy(doc)
    mutate(broken, copy.deepcopy(outputs))
    assert json.dumps(broken) != json.dumps(doc)
    assert errors(name, broken), f"{label}: {what} still validates"


def test_a_schema_without_a_key_rejects_the_outputs_that_print_it(outputs):
    """The other direction: a key taken out of the schema fails the outputs that carry it."""
    schema = load_schema()
    del schema["$defs"]["run_fields"]["properties"]["traced"]
    schema["$defs"]["run_fields"]["required"].remove("traced")
    assert errors("run", outputs["run exact, by line, saved"][1], schema)
    assert errors("compare", outputs["compare"][1], schema)      # through run_body


# ----------------------------------------------------------------------------- the schema

CONDITIONS = ("if", "then", "else")     # log_show's status/result link: no keys of their own


def _objects(node, pointer="#"):
    """Every (pointer, object schema with `properties`) of the schema, conditions left out."""
    if isinstance(node, dict):
        if "properties" in node:
            yield pointer, node
        for k, v in node.items():
            if isinstance(v, (dict, list)) and k not in CONDITIONS:
                yield from _objects(v, f"{pointer}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _objects(v, f"{pointer}/{i}")


UNITS = {"_fj": "fJ", "_bytes": "bytes", "_s": "seconds", "_ps": "picoseconds",
         "_elements": "elements", "_values": "values", "fj_per_bit": "fJ per bit"}


def test_every_property_is_described_with_its_unit():
    missing, unitless = [], []
    for pointer, name, sub in ((f"{p}/properties/{k}", k, sub) for p, node in _objects(SCHEMA)
                               for k, sub in node["properties"].items()):
        described = sub.get("description") or (
            "$ref" in sub and SCHEMA["$defs"][sub["$ref"].split("/")[-1]].get("description"))
        if not described:
            missing.append(pointer)
            continue
        for suffix, unit in UNITS.items():
            if name.endswith(suffix) and unit not in described:
                unitless.append(f"{pointer}: {unit}")
    assert missing == [] and unitless == []


def test_every_object_the_schema_defines_is_closed():
    """additionalProperties false, or unevaluatedProperties false where a definition is
    composed ($ref run_fields); run_fields itself is closed by run and run_body."""
    open_ = []
    for pointer, node in _objects(SCHEMA):
        if pointer == "#/$defs/run_fields":
            continue
        if node.get("additionalProperties") is not False and \
                node.get("unevaluatedProperties") is not False:
            open_.append(pointer)
    assert open_ == []
    for name in ("run", "run_body"):
        assert SCHEMA["$defs"][name]["$ref"] == "#/$defs/run_fields"


# keys the schema describes that the fixture's commands cannot print cheaply
NOT_PRINTED = {
    # a NaN or infinite mean loss in an epoch that did not diverge
    "#/$defs/history_entry/properties/loss_not_finite",
    # the sparse-parity-mask32 problems' verdict (a 2,000,000-line scorer run)
    "#/$defs/check/properties/recovery",
    "#/$defs/check/properties/band",
    "#/$defs/check/properties/suite",
}


def _tracked(outputs) -> tuple[Counter, Counter, dict]:
    """Validate every output, counting per object schema (by id) the instances it saw and, per
    key, the instances that had it: (instances, (schema id, key) -> count, id -> schema)."""
    seen, has, schemas = Counter(), Counter(), {}
    original = Draft202012Validator.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if validator.is_type(instance, "object"):
            seen[id(schema)] += 1
            schemas[id(schema)] = schema
            has.update((id(schema), k) for k in props if k in instance)
        yield from original(validator, props, instance, schema)

    tracking = validators.extend(Draft202012Validator, {"properties": properties})
    for name, doc in outputs.values():
        assert list(validator_for(name, cls=tracking).iter_errors(doc)) == []
    return seen, has, schemas


def test_every_key_of_the_schema_is_printed_by_some_command(outputs):
    """A key the schema describes but no output prints is a key that no longer exists (or a
    situation the fixture misses): either way the schema and the tests must follow."""
    _, has, _ = _tracked(outputs)
    keys = {f"{pointer}/properties/{key}": (id(node), key)
            for pointer, node in _objects(SCHEMA) for key in node["properties"]}
    assert NOT_PRINTED <= set(keys)
    assert {p for p, k in keys.items() if not has[k]} == NOT_PRINTED


# optional keys that every output of the fixture happens to print
PRINTED_BUT_OPTIONAL = {
    # chars.baseline: only the built-in grammar has an entropy, a text file's corpus not
    "#/$defs/run_fields/properties/baseline/properties/entropy",
}


def test_every_key_printed_in_every_output_is_required(outputs):
    """A key taken out of a `required` list (the schema made looser) fails here: every key
    that all the outputs print is required, unless it is known to be optional."""
    seen, has, schemas = _tracked(outputs)
    pointers = {id(node): pointer for pointer, node in _objects(SCHEMA)}
    loose = {f"{pointers[sid]}/properties/{key}" for sid, schema in schemas.items()
             if sid in pointers for key in schema["properties"]
             if has[sid, key] == seen[sid] and key not in schema.get("required", ())}
    assert loose == PRINTED_BUT_OPTIONAL


def test_a_non_finite_number_is_null_in_strict_json():
    import math
    from sutro_sim.schema import dumps
    out = json.loads(dumps({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -math.inf}}))
    assert out == {"schema_version": SCHEMA_VERSION, "a": None, "b": [1.0, None],
                   "c": {"d": None}}
