"""Ollama's own store (``~/.ollama/models``), both ways: import its models, export ours into it."""

from ocillm.ollama_store.exporter import Exported, export_ollama
from ocillm.ollama_store.importer import Imported, import_ollama
from ocillm.ollama_store.layout import OllamaStore

__all__ = ["Exported", "Imported", "OllamaStore", "export_ollama", "import_ollama"]
