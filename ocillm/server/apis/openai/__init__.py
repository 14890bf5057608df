"""OpenAI's chat completions, completions, embeddings and models under ``/v1``, as Ollama's
compatibility layer serves them: ``protocol`` (wire schemas), ``translate`` (→ native
requests), ``serving`` (the work and OpenAI's answer shapes), ``routes`` (thin routes)."""

from ocillm.server.apis.openai.protocol import ErrorResponse, error
from ocillm.server.errors import ErrorShape

#: Everything under ``/v1`` answers errors in OpenAI's shape, unless another API owns the path.
ERRORS = ErrorShape(prefix="/v1", shape=error, model=ErrorResponse)
