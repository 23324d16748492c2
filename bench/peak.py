"""Peak memory of the current process, as benchmarks report it."""

from __future__ import annotations

from pathlib import Path


def peak_mb() -> float:
    """This process's own high-water RSS in MB (VmHWM). Not getrusage's ru_maxrss: Linux carries that across
    exec from the (v)forking parent, so a child of a large driver would report the driver's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
