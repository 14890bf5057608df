"""Rerank (``/api/rerank``, ``/v1/rerank``) in the shape llama-server, Jina and Cohere clients
use, for GGUF rerankers (pooling type rank): ``protocol`` (wire schemas), ``serving`` (the
work), ``routes`` (thin routes). Errors: Ollama's shape under ``/api``, OpenAI's under ``/v1``
(that prefix's shape)."""
