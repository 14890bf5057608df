"""The asyncio scheduler: queue, slots, loads, eviction and keep-alive of model runners."""

from ocillm.scheduler.duration import parse_go_duration, parse_keep_alive
from ocillm.scheduler.errors import InsufficientMemory, QueueFull, SchedulerClosed
from ocillm.scheduler.events import SchedulerEvents
from ocillm.scheduler.factory import (
    ProcessRunnerFactory,
    RunnerFactory,
    StubRunner,
    StubRunnerFactory,
)
from ocillm.scheduler.request import LoadOptions, LoadRequest
from ocillm.scheduler.scheduler import RunningModel, Scheduler

__all__ = [
    "InsufficientMemory",
    "LoadOptions",
    "LoadRequest",
    "ProcessRunnerFactory",
    "QueueFull",
    "RunnerFactory",
    "RunningModel",
    "Scheduler",
    "SchedulerClosed",
    "SchedulerEvents",
    "StubRunner",
    "StubRunnerFactory",
    "parse_go_duration",
    "parse_keep_alive",
]
