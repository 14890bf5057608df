"""Token bytes to text, one code point per unit the way llama.cpp's grammar counts them.

A character whose bytes are split across tokens (byte-fallback tokens, multi-byte pieces) comes
out once all its bytes have arrived. Bytes that are not valid UTF-8 become one U+FFFD per unit
llama.cpp's ``decode_utf8`` reads (the lead byte's high bits give the length), not one per byte:
the grammar sampler counted that unit as one character, so a ``maxLength`` or a closing quote it
enforced still holds in the text.
"""

from __future__ import annotations

# Unit length by the lead byte's high nibble (a stray continuation byte is a unit of one).
_UNIT = (1,) * 12 + (2, 2, 3, 4)


class Utf8Stream:
    def __init__(self) -> None:
        self._held = b""

    def feed(self, piece: bytes) -> str:
        data = self._held + piece
        out: list[str] = []
        i = 0
        while i < len(data):
            n = _UNIT[data[i] >> 4]
            if i + n > len(data):
                break  # the rest of this character is in a later token
            unit = data[i : i + n]
            try:
                out.append(unit.decode("utf-8"))
            except UnicodeDecodeError:
                out.append("\ufffd")
            i += n
        self._held = data[i:]
        return "".join(out)

    def flush(self) -> str:
        """An incomplete character at the end of a generation becomes U+FFFD."""
        held, self._held = self._held, b""
        return "\ufffd" if held else ""
