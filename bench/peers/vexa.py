"""Drives Vexa's runtime kernel (Vexa-ai/vexa, core/runtime/src/runtime_kernel) through one
round of the peers scenario, in process, as its FastAPI app does: every call on a pool of 16
threads (Starlette's threadpool runs sync endpoints that way).

    python3 bench/peers/vexa.py <runtime_kernel's parent dir> <workloads> <round>

Prints one JSON object: the milliseconds until all are running, all stopped, all destroyed.
Only the modules on this path are imported (kernel, models, profiles, store, the process
backend), not the package's __init__, which pulls in Docker, Kubernetes, Redis and HTTP
clients; their only third-party import is pydantic 2.
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import tempfile
import time
import types
from concurrent.futures import ThreadPoolExecutor

THREADS = 16


def load(source: str):
    package_dir = os.path.join(source, "runtime_kernel")
    if not os.path.isfile(os.path.join(package_dir, "kernel.py")):
        sys.exit(f"vexa.py: no runtime_kernel/kernel.py under {source}")
    try:
        import pydantic
    except ImportError:
        sys.exit("vexa.py: pydantic 2 is not installed (pip install 'pydantic>=2,<3')")
    if not pydantic.VERSION.startswith("2."):
        sys.exit(f"vexa.py: pydantic {pydantic.VERSION} found, Vexa's models need pydantic 2")
    # A bare package object: importing its submodules skips its __init__.py.
    package = types.ModuleType("runtime_kernel")
    package.__path__ = [package_dir]
    sys.modules["runtime_kernel"] = package
    kernel = importlib.import_module("runtime_kernel.kernel")
    models = importlib.import_module("runtime_kernel.models")
    return kernel, models


def main() -> None:
    source, n, round_ = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    log_dir = tempfile.mkdtemp(prefix="rk-peers-vexa-")
    os.environ["PROCESS_LOG_DIR"] = log_dir
    kernel, models = load(source)
    runtime = kernel.Runtime(profiles={"sleeper": ["sleep", "60"]}, grace_sec=30.0)
    ids = [f"v-{round_}-{i}" for i in range(n)]
    specs = [models.WorkloadSpec(workloadId=i, profile="sleeper", env={}) for i in ids]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        # Warm the pool's threads, so the first phase does not pay for starting them.
        list(pool.map(lambda _: None, range(THREADS * 4)))
        t0 = time.perf_counter()
        states = list(pool.map(lambda spec: runtime.create(spec).state.value, specs))
        t1 = time.perf_counter()
        stopped = list(pool.map(lambda i: runtime.stop(i).state.value, ids))
        t2 = time.perf_counter()
        destroyed = list(pool.map(lambda i: runtime.destroy(i).state.value, ids))
        t3 = time.perf_counter()
    shutil.rmtree(log_dir, ignore_errors=True)
    assert all(s == "running" for s in states), "a create did not end running"
    assert all(s == "stopped" for s in stopped), "a stop did not end stopped"
    assert all(s == "destroyed" for s in destroyed), "a destroy did not end destroyed"
    print(json.dumps({
        "createMs": (t1 - t0) * 1000,
        "stopMs": (t2 - t1) * 1000,
        "destroyMs": (t3 - t2) * 1000,
    }))


if __name__ == "__main__":
    main()
