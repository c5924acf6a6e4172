"""Reusable test helpers (emulator processes and in-process servers)."""

from __future__ import annotations

import os

# One knob for every timeout in the helpers: raise it on a slow CI machine.
TIMEOUT_SCALE = float(os.environ.get("QUEUECAST_TEST_TIMEOUT_SCALE", "1"))
