"""One measurement in a fresh process: DagBag over a folder; prints JSON (seconds, peak RSS, DAG count).

Wall time and CPU time (on a shared machine CPU time is the steadier one). Airflow itself is
imported before the clock starts (every variant pays it, and a dag-processor has it
loaded); the loader's own imports (pydantic models, dag-factory) are inside the measurement.
"""

from __future__ import annotations

import json
import sys
import time

from peak import peak_mb


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    target = sys.argv[1]
    import airflow.sdk  # noqa: F401
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.standard.operators.python import PythonOperator  # noqa: F401

    base = rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    bag = DagBag(dag_folder=target, safe_mode=False)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = peak_mb()
    tasks = sum(len(d.tasks) for d in bag.dags.values())
    print(json.dumps({"seconds": seconds, "cpu": cpu, "dags": len(bag.dags), "tasks": tasks, "errors": len(bag.import_errors),
                      "peak_mb": peak, "base_mb": base, "error_text": list(bag.import_errors.values())[:1]}))


if __name__ == "__main__":
    main()
