"""Model images: what they carry (content), how they are written (formats), opened (view)."""

from ocillm.image.content import Details, ImageContent, Piece, Role
from ocillm.image.formats import (
    MODELPACK,
    OLLAMA,
    WRITABLE_FORMATS,
    UnsupportedImage,
    detect_format,
    read_content,
    write_manifest,
)
from ocillm.image.view import ImageView, open_image

__all__ = [
    "MODELPACK",
    "OLLAMA",
    "WRITABLE_FORMATS",
    "Details",
    "ImageContent",
    "ImageView",
    "Piece",
    "Role",
    "UnsupportedImage",
    "detect_format",
    "open_image",
    "read_content",
    "write_manifest",
]
