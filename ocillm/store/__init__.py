"""The local OCI-layout store."""

from ocillm.store.blobs import BlobStore
from ocillm.store.store import ImageRecord, Store

__all__ = ["BlobStore", "ImageRecord", "Store"]
