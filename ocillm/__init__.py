"""ocillm: build, ship and serve local LLMs as OCI images."""

__version__ = "0.1.0"
