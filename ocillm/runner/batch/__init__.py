"""Continuous batching in one llama.cpp context.

One context holds ``n_seq`` sequences (``n_seq x n_ctx`` KV cells, each sequence its own
``n_ctx``); one thread runs the decode loop: every step is one ``llama_decode`` of one batch that
carries the next token of every decoding sequence and chunks of the prompts of newly admitted ones
(``loop.py``). Each sequence samples with its own llama.cpp sampler chain (``sampling.py``) and
turns tokens into text with its own UTF-8 and stop-string state (``text.py``).
"""
