"""Registry transport: push and pull OCI images through any registry with oras-py underneath.

``pull(ref, store)`` and ``push(ref, store)`` are the library calls the CLI and the server share;
``login``/``logout`` keep credentials; ``save``/``load`` move images as OCI-layout tars.
"""

from ocillm.registry.archive import load, save
from ocillm.registry.login import login, logout
from ocillm.registry.options import TransferOptions
from ocillm.registry.pull import PullResult, pull
from ocillm.registry.push import PushResult, push

__all__ = [
    "PullResult",
    "PushResult",
    "TransferOptions",
    "load",
    "login",
    "logout",
    "pull",
    "push",
    "save",
]
