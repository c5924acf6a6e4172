"""`queuecast serve` with a memory probe: SIGUSR1 writes what the process holds to a file.

Run as `python bench/_serve_probe.py serve ...` (the same arguments as `python -m server`).
Environment:

- QC_PROBE_DIR: where each SIGUSR1 writes `probe-<n>.pickle` (gc object counts by type, and
  a tracemalloc snapshot when tracing), renamed into place once complete;
- QC_PROBE_TRACEMALLOC: trace allocations with this many frames per traceback (0: off);
- QC_PROBE_UVLOOP: 1 to run on uvloop's event loop instead of asyncio's.

The signal handler runs in the main thread between two bytecodes, i.e. while the event loop
is between callbacks or inside one; nothing it reads is mutated concurrently.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import gc
import os
import pickle
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from server.cli import main as queuecast  # noqa: E402


def _object_counts() -> dict[str, int]:
    counts: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        counts[f"{kind.__module__}.{kind.__qualname__}"] += 1
    return dict(counts)


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _allocators(out_dir: Path) -> dict[str, int]:
    """pymalloc's arenas (`sys._debugmallocstats`, which writes to fd 2) and glibc's heap
    (`mallinfo2`): how much of the process's memory each holds, used and free."""
    out: dict[str, int] = {}
    path = out_dir / "mallocstats.txt"
    saved = os.dup(2)
    try:
        with open(path, "w") as f:
            os.dup2(f.fileno(), 2)
            sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    wanted = {
        "# bytes in allocated blocks": "pymalloc_used",
        "# bytes in available blocks": "pymalloc_free_in_pools",
        "unused pools": "pymalloc_unused_pools",  # "37 unused pools * 16384 bytes"
        "Total": "pymalloc_total",  # the arenas' size
    }
    for line in path.read_text().splitlines():
        name, _, value = line.partition("=")
        name = name.strip()
        for label, key in wanted.items():
            if name == label or (label == "unused pools" and label in name):
                out.setdefault(key, int(value.strip().replace(",", "")))
    try:
        info = ctypes.CDLL(None).mallinfo2
    except AttributeError:  # not glibc, or older than 2.33
        return out
    info.restype = _MallInfo2
    m = info()
    out |= {
        "glibc_heap": m.arena,
        "glibc_mmapped": m.hblkhd,
        "glibc_used": m.uordblks,
        "glibc_free": m.fordblks,
    }
    return out


def _install_probe(out_dir: Path) -> None:
    taken = 0

    def probe(_signum: int, _frame: FrameType | None) -> None:
        nonlocal taken
        collected = gc.collect()
        data: dict[str, Any] = {
            "collected": collected,
            "allocators": _allocators(out_dir),
            "objects": _object_counts(),
            "snapshot": None,
        }
        if tracemalloc.is_tracing():
            data["snapshot"] = tracemalloc.take_snapshot()
        path = out_dir / f"probe-{taken}.pickle"
        part = path.with_suffix(".part")
        with open(part, "wb") as f:
            pickle.dump(data, f)
        part.rename(path)
        taken += 1

    signal.signal(signal.SIGUSR1, probe)


def main() -> int:
    frames = int(os.environ.get("QC_PROBE_TRACEMALLOC", "0"))
    if frames:
        tracemalloc.start(frames)
    if os.environ.get("QC_PROBE_UVLOOP") == "1":
        import uvloop  # noqa: PLC0415 (optional: not a dependency of the project)

        # asyncio.run() asks the policy for its loop.
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if out := os.environ.get("QC_PROBE_DIR"):
        _install_probe(Path(out))
    return queuecast(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
