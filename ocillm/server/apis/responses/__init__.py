"""OpenAI's Responses API under ``/v1/responses``: ``protocol`` (wire schemas), ``translate``
(→ the native chat request), ``serving`` (the work, the response and its event stream),
``store`` (responses kept for ``previous_response_id``), ``routes`` (thin routes). Errors are
OpenAI's, as everywhere under ``/v1``."""
