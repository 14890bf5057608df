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
GAP_RATIO = 1.75
#: Prompt tokens a step takes before anything is measured.
FIRST_CHUNK = 16
#: Fewest prompt tokens a step takes, however slow they are: the prompt still gets evaluated.
MIN_CHUNK = 4
#: A chunk grows at most this many times the last one measured.
GROWTH = 2
#: Weight of the newest measurement in the running averages.
SMOOTHING = 0.25


class PrefillPacer:
    """Step costs are kept by how many rows of the step want logits (each decoding stream's
    token, a draft's, a prompt's last token): on a large vocabulary a row with logits costs
    several prompt tokens, so a step is compared with a decode-only step of as many of them."""

    def __init__(self, n_batch: int) -> None:
        self.n_batch = n_batch
        self.decode_s: dict[int, float] = {}  # a step of only N rows with logits, running average
        self.token_s = 0.0  # what one prompt token adds to a step, running average
        self.last_chunk = 0  # prompt tokens of the last step measured with a chunk

    def budget(self, outputs: int) -> int:
        """Prompt tokens the next step may take beside ``outputs`` rows with logits."""
        decode_s = self.decode_s.get(outputs, 0.0)
        if decode_s <= 0 or self.token_s <= 0:
            return min(FIRST_CHUNK, self.n_batch)
        tokens = int((GAP_RATIO - 1) * decode_s / self.token_s)
        # At most twice the last chunk measured: one noisy early measurement (a step's cost
        # less a decode-only step's, both jittering) cannot make the next step a long one.
        tokens = min(tokens, max(FIRST_CHUNK, GROWTH * self.last_chunk))
        return max(MIN_CHUNK, min(tokens, self.n_batch))

    def observe(self, decoding: int, outputs: int, prompt_tokens: int, seconds: float) -> None:
        """A step took ``seconds`` for ``outputs`` rows with logits (``decoding`` of them
        generating streams') and ``prompt_tokens`` prompt tokens without."""
        if decoding == 0:
            return  # prefill alone: no stream waited, and it says nothing about a decode step
        if prompt_tokens == 0:
            self.decode_s[outputs] = _average(self.decode_s.get(outputs, 0.0), seconds)
        elif self.decode_s.get(outputs, 0.0) > 0:
            extra = max(seconds - self.decode_s[outputs], 0.0) / prompt_tokens
            self.token_s = _average(self.token_s, extra)
            self.last_chunk = prompt_tokens


def _average(old: float, new: float) -> float:
    return new if old <= 0 else old + SMOOTHING * (new - old)
