"""How many prompt tokens a step may take while other sequences are generating.

Every running stream waits for the whole step, so a prompt chunk in it lengthens their
inter-token gap. The pacer measures what a step costs (decode-only steps, and the extra each
prompt token adds) and sizes the chunk so that a step with one takes about ``GAP_RATIO`` times a
decode-only step: a long prompt arriving costs the streams many slightly longer steps, never a
freeze. The cost of a prompt token grows with its position (attention) and differs from one
machine to the next, hence measured, not a constant.
"""

from __future__ import annotations

#: A step with a prompt chunk takes at most about this many times a decode-only step.
GAP_RATIO = 2.0
#: Prompt tokens a step takes before anything is measured.
FIRST_CHUNK = 16
#: Fewest prompt tokens a step takes, however slow they are: the prompt still gets evaluated.
MIN_CHUNK = 4
#: Weight of the newest measurement in the running averages.
SMOOTHING = 0.25


class PrefillPacer:
    def __init__(self, n_batch: int) -> None:
        self.n_batch = n_batch
        self.decode_s = 0.0  # a decode-only step, running average
        self.token_s = 0.0  # what one prompt token adds to a step, running average

    def budget(self) -> int:
        """Prompt tokens the next step may take while sequences are decoding."""
        if self.decode_s <= 0 or self.token_s <= 0:
            return min(FIRST_CHUNK, self.n_batch)
        tokens = int((GAP_RATIO - 1) * self.decode_s / self.token_s)
        return max(MIN_CHUNK, min(tokens, self.n_batch))

    def observe(self, decoding: int, prompt_tokens: int, seconds: float) -> None:
        """A step's decode took ``seconds`` for ``decoding`` generating rows and
        ``prompt_tokens`` prompt tokens."""
        if decoding == 0:
            return  # prefill alone: no stream waited, and it says nothing about a decode step
        if prompt_tokens == 0:
            self.decode_s = _average(self.decode_s, seconds)
        elif self.decode_s > 0:
            extra = max(seconds - self.decode_s, 0.0) / prompt_tokens
            self.token_s = _average(self.token_s, extra)


def _average(old: float, new: float) -> float:
    return new if old <= 0 else old + SMOOTHING * (new - old)
