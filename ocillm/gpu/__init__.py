"""GPU discovery, memory estimation and model placement.

``Discovery`` is the seam (``SystemDiscovery`` for the machine, ``FakeDiscovery`` for tests);
``estimate(shape, options)`` says what a model needs; ``place(needs, inventory, ...)`` decides
``n_gpu_layers`` and the GPUs; ``processor_string`` formats the PROCESSOR column.
"""

from ocillm.gpu.discovery import Discovery, FakeDiscovery, SystemDiscovery, fake_gpu
from ocillm.gpu.estimate import EstimateOptions, MemoryNeeds, ModelShape, estimate
from ocillm.gpu.placement import Placement, place
from ocillm.gpu.processor import processor_string
from ocillm.gpu.types import GpuDevice, Inventory, SystemMemory

__all__ = [
    "Discovery",
    "EstimateOptions",
    "FakeDiscovery",
    "GpuDevice",
    "Inventory",
    "MemoryNeeds",
    "ModelShape",
    "Placement",
    "SystemDiscovery",
    "SystemMemory",
    "estimate",
    "fake_gpu",
    "place",
    "processor_string",
]
