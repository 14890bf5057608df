"""GPU discovery, memory estimation and model placement.

``Discovery`` is the seam (``SystemDiscovery`` for the machine, ``FakeDiscovery`` for tests);
``estimate(shape, options)`` says what a model needs; ``place(needs, inventory, ...)`` decides
``n_gpu_layers`` and the GPUs; ``fit(...)`` says whether a load goes ahead beside the loaded models;
``processor_string`` formats the PROCESSOR column.
"""

from ocillm.gpu.discovery import Discovery, FakeDiscovery, SystemDiscovery, fake_gpu
from ocillm.gpu.estimate import EstimateOptions, MemoryNeeds, ModelShape, ProjectorShape, estimate
from ocillm.gpu.fit import Fit, fit
from ocillm.gpu.placement import Placement, place
from ocillm.gpu.processor import processor_string
from ocillm.gpu.types import GpuDevice, Inventory, SystemMemory

__all__ = [
    "Discovery",
    "EstimateOptions",
    "FakeDiscovery",
    "Fit",
    "GpuDevice",
    "Inventory",
    "MemoryNeeds",
    "ModelShape",
    "Placement",
    "ProjectorShape",
    "SystemDiscovery",
    "SystemMemory",
    "estimate",
    "fake_gpu",
    "fit",
    "place",
    "processor_string",
]
