"""Anthropic's Messages API under ``/v1/messages``: ``protocol`` (wire schemas), ``translate``
(→ the native chat request), ``serving`` (the work, the message and its event stream),
``routes`` (thin routes)."""

from ocillm.server.apis.anthropic.protocol import ErrorResponse, error
from ocillm.server.errors import ErrorShape

ERRORS = ErrorShape(prefix="/v1/messages", shape=error, model=ErrorResponse)
