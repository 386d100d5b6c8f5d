"""Write the example traces in this folder (run from the repository root).

    python examples/make_traces.py

- seed_mlp_step.npz: one training step of the seed's MLP (3 inputs, 1,000 hidden units, hinge
  loss, SGD), standard backprop, replayed element by element from the buffer-level events in
  reference/cost-models.md section 2. 34,022 accesses.
- seed_mlp_step_fused.npz: the same step with the fused layer-wise update.
- matvec.npz: y = A @ x for a 2x2 A of one-byte elements, one instruction per multiply and
  add, arguments (A, x) and output y declared: ByteDMD's worked example (26).
- my_add.npz: (a + b) + c on one-byte scalars, the sum returned: ByteDMD 6.
"""

from pathlib import Path

from simulator.trace import TraceBuilder

HERE = Path(__file__).parent
EVENTS = HERE.parent / "tests" / "data" / "seed_events.txt"
ROLES = {"W1": "param", "b1": "param", "W2": "param", "b2": "param", "x": "data", "y": "data",
         "dW2": "grad", "db2": "grad", "dout": "grad", "dh": "grad", "dh_pre": "grad"}


def seed_step(variant: str):
    rows = dict(line.split(": ", 1) for line in EVENTS.read_text().splitlines()
                if line and not line.startswith("#"))
    b, ids = TraceBuilder(), {}
    for event in (rows["prologue"] + ", " + rows[variant]).split(", "):
        kind, name, size = event.split()
        if name not in ids:
            ids[name] = b.buffer(name, int(size), role=ROLES.get(name, "activation"))
        k = b.kernel(f"{kind} {name}")
        b.access(ids[name], None, kind == "W", kernel=k)
    return b.build(meta={"source": f"seed MLP step, {variant} (reference/cost-models.md)"})


def matvec():
    """ByteDMD's worked example (reference/cost-models.md section 3): one byte per element,
    arguments (A, x), y returned. `simulate --cost-models` prints ByteDMD 26."""
    b = TraceBuilder(align=1)
    A, x = b.buffer("A", 4, dtype="u8", role="data"), b.buffer("x", 2, dtype="u8", role="data")
    y, t = b.buffer("y", 2, dtype="u8"), b.buffer("t", 2, dtype="u8", role="temp")
    mul = b.kernel("mul", ops=("mul",), arith={"mul.u8": 4})
    add = b.kernel("add", ops=("add",), arith={"add.u8": 2})
    instr = 0
    for i in range(2):
        for j in range(2):
            b.read(A, 2 * i + j, mul, instr)
            b.read(x, j, mul, instr)
            b.write(t, j, mul, instr)
            instr += 1
        b.read(t, 0, add, instr)
        b.read(t, 1, add, instr)
        b.write(y, i, add, instr)
        instr += 1
    return b.build(meta={"source": "2x2 matvec, ByteDMD worked example", "args": ["A", "x"],
                         "outputs": ["y"]})


def my_add():
    """(a + b) + c on three one-byte scalars, the sum returned: ByteDMD 6."""
    b = TraceBuilder(align=1)
    for name in "abc":
        b.buffer(name, 1, dtype="u8", role="data")
    b.buffer("s", 1, dtype="u8")
    add = b.kernel("add", ops=("add",), arith={"add.u8": 2})
    for k, (u, v) in enumerate([("a", "b"), ("s", "c")]):
        b.read(u, 0, add, k)
        b.read(v, 0, add, k)
        b.write("s", 0, add, k)
    return b.build(meta={"source": "my_add(a, b, c) = (a + b) + c, ByteDMD's first example",
                         "args": ["a", "b", "c"], "outputs": ["s"]})


if __name__ == "__main__":
    seed_step("standard").save(HERE / "seed_mlp_step.npz")
    seed_step("fused").save(HERE / "seed_mlp_step_fused.npz")
    matvec().save(HERE / "matvec.npz")
    my_add().save(HERE / "my_add.npz")
