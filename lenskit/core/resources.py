"""
Memory bounds: a request that cannot fit is refused before any work.

``Simulator.sample(10**9)`` would otherwise grow until the machine runs out
of memory, hours later, and write nothing.  Calls that hold their whole
result in memory estimate its size first and refuse, with a pointer to the
streaming or sharded alternative, when it exceeds `memory_budget`.
"""

import os

__all__ = ["available_memory", "memory_budget", "check_memory", "BUDGET_FRACTION"]

#: Share of the memory available now that one in-memory result may take.
BUDGET_FRACTION = 0.8


def available_memory():
    """Bytes of memory available to new allocations now (``MemAvailable``), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):  # pragma: no cover - platform dependent
        return None


def memory_budget():
    """Bytes one in-memory result may take: `BUDGET_FRACTION` of `available_memory` (None where unknown)."""
    avail = available_memory()
    return None if avail is None else int(BUDGET_FRACTION * avail)


def _size(n):
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def check_memory(nbytes, name, value, alternative):
    """
    Raise `ValueError` naming ``name`` when ``nbytes`` exceed `memory_budget`.

    Parameters
    ----------
    nbytes : int
        Estimated peak bytes of the request.
    name, value
        The argument that sets the size, and its value, for the message.
    alternative : str
        What to use instead (a streaming or sharded call).
    """
    budget = memory_budget()
    if budget is not None and nbytes > budget:
        raise ValueError(f"{name}={value!r} needs about {_size(nbytes)} of memory, more than the {_size(budget)} "
                         f"available; {alternative}")
    return nbytes
