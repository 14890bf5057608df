"""The Ollama-compatible daemon (``ocillm serve``): a FastAPI app over the scheduler and store.

``app.create_app(settings)`` builds the app; ``app.serve(settings)`` runs it under uvicorn on
``OCILLM_HOST``. Routes (``routes/``) are thin; the work is in ``generate``, ``embed`` and
``manage``; wire shapes in ``schemas/``. Nothing is imported here, so the CLI's client stays light.
"""
