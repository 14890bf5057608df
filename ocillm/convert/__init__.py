"""Hugging Face checkpoint folders -> GGUF, during ``build``.

``FROM ./dir`` on a safetensors checkpoint and ``ADAPTER ./dir`` on a PEFT LoRA become GGUF files
as llama.cpp's own converter would write them (tensor names from gguf-py's tensor map, the same
transforms), streamed one tensor at a time. Nothing here knows about the store or the Modelfile:
the builder hands in a folder and an output path.
"""

from __future__ import annotations

from ocillm.convert.checkpoint import ConvertError, is_checkpoint, is_lora
from ocillm.convert.lora import BaseModel, convert_lora
from ocillm.convert.model import Converted, convert_checkpoint

__all__ = [
    "BaseModel",
    "ConvertError",
    "Converted",
    "convert_checkpoint",
    "convert_lora",
    "is_checkpoint",
    "is_lora",
]
