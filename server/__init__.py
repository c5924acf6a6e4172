"""queuecast: real-time queue position and wait time for Amazon Connect contacts."""

from __future__ import annotations

__version__ = "0.1.0"
