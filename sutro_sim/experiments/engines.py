"""Where a sweep's points run: in this process (one job), on the local cores (a process pool),
or on a Dask cluster. Each engine takes the jobs and yields (index, outcome) as they finish;
the caller records outcomes as they come, so an interrupt keeps every finished point.

Dask (distributed) is the cluster engine: it is pure Python and pip-installable (the
`cluster` extra), a cluster is one `dask scheduler` and any number of `dask worker ADDRESS`
processes started by hand, over SSH or by a batch system (dask-jobqueue, dask-kubernetes), and
the same code runs on an in-process LocalCluster for tests. A sweep point is one
independent function call of a second or more, which needs no more than Dask's futures; Ray's
actors, object store and autoscaler would add a large native install for nothing used here.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator

from simulator.errors import SimError

ENGINES = ("local", "dask")


def run_job(job: dict) -> dict:
    """One point: the `run --json` object, or the divergence, or a user error's text."""
    from sutro_ir.errors import TrainingDiverged
    from sutro_sim.run import run
    from .db import hierarchy_from_spec

    try:           # the text and levels the record keeps, not what a path holds here now
        r = run(job["program"], job["overrides"], hierarchy_from_spec(job["hierarchy_spec"]),
                job["energy_preset"], job["passes"], job["seed"], job["trace_steps"],
                text=job["program_text"], **job["options"])
        return {"result": r.to_dict()}
    except TrainingDiverged as e:
        return {"diverged": e.to_dict()}
    except SimError as e:
        return {"error": str(e)}


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        os.cpu_count() or 1


def execute(jobs: list[dict], engine: str = "local", workers: int | None = None,
            address: str | None = None) -> Iterator[tuple[int, dict]]:
    """Yield (index into jobs, outcome) as points finish."""
    if not jobs:
        return iter(())
    if engine == "dask":
        return _dask(jobs, workers, address)
    if address is not None:
        raise SimError("--address is for a cluster engine (--engine dask)", "--address")
    workers = min(workers or default_jobs(), len(jobs))
    return _inline(jobs) if workers == 1 else _pool(jobs, workers)


def _inline(jobs):
    for i, job in enumerate(jobs):
        yield i, run_job(job)


def _pool(jobs, workers):
    # spawn: a fresh interpreter per worker, not a fork of one that may hold numba's threads;
    # workers ignore Ctrl-C, which the sweep's own process handles (it stops them)
    pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_ignore_interrupts)
    try:
        yield from pool.imap_unordered(_indexed, enumerate(jobs))
    finally:
        pool.terminate()
        pool.join()


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _indexed(item: tuple[int, dict]) -> tuple[int, dict]:
    return item[0], run_job(item[1])


CONNECT_S = 20      # how long to wait for a Dask scheduler to answer


def _connect(client_class, address: str):
    """A client of the scheduler at `address`, within CONNECT_S seconds. Dask's own timeout
    does not cover a server that accepts the connection and never speaks Dask (an HTTP
    server: the client waits forever), so the client is made in a thread and abandoned (a
    daemon) past the deadline."""
    import threading

    box: dict = {}

    def connect() -> None:
        try:
            box["client"] = client_class(address, timeout=f"{CONNECT_S}s")
        except BaseException as e:      # handed to the waiting thread, raised there
            box["error"] = e
    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(CONNECT_S + 5)
    if "client" in box:
        return box["client"]
    if "error" in box:
        raise box["error"]
    raise TimeoutError(f"no answer from a Dask scheduler in {CONNECT_S} s")


def _dask(jobs, workers, address):
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise SimError("the dask engine needs Dask's distributed scheduler: pip install "
                       "'sutro-sim[cluster]'", "--engine") from None
    cluster = None
    try:
        if address in (None, "local"):      # a cluster on this machine, for this sweep
            cluster = LocalCluster(n_workers=min(workers or default_jobs(), len(jobs)),
                                   threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        else:
            client = _connect(Client, address)
    except (OSError, TimeoutError, ValueError) as e:
        if cluster is not None:
            cluster.close()
        raise SimError(f"cannot reach the Dask scheduler at {address}: {e}",
                       "--address") from None
    try:
        futures = client.map(run_job, jobs, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        for future in as_completed(futures):
            yield index[future.key], future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
