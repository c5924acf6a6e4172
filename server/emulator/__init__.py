"""An Amazon Connect emulator: GetContactMetrics and DescribeContact over the real wire
protocol, answered from a live queue model, with a control and truth API under `/_sim/`."""

from __future__ import annotations

from server.emulator.app import create_emulator_app
from server.emulator.config import LEAVE_MODES, EmulatorConfig
from server.emulator.model import QueueModel, QueueSpec
from server.emulator.simulator import Emulator

__all__ = [
    "LEAVE_MODES",
    "Emulator",
    "EmulatorConfig",
    "QueueModel",
    "QueueSpec",
    "create_emulator_app",
]
