"""The daemon's store as an OCI registry under ``/v2/`` (read side; the write side on request).

``names`` maps URL names to store references, ``wire`` holds the OCI error bodies, headers and
the key check, ``view`` and ``uploads`` do the work on the store, ``pullthrough`` fills the store
from an upstream in mirror mode, and ``routes`` is the thin HTTP layer over them.
"""

from ocillm.server.registry_api.routes import RegistryApi, registry_router

__all__ = ["RegistryApi", "registry_router"]
