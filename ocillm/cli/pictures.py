"""Pictures named in an ``ocillm run`` prompt, as Ollama's CLI finds them: a word that is the path of
an existing image file is read, sent as one of the message's ``images`` and left out of the text."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

#: The file names taken as pictures (what the runner decodes).
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")


def take_pictures(text: str) -> tuple[str, list[str]]:
    """The prompt without the picture paths in it, and those pictures as base64. Each one taken
    is announced on stderr (``Added image 'PATH'``), as Ollama announces it."""
    words: list[str] = []
    pictures: list[str] = []
    for word in text.split(" "):
        path = Path(word.strip("'\"")).expanduser()
        if path.suffix.lower() in PICTURE_SUFFIXES and path.is_file():
            try:
                data = path.read_bytes()
            except OSError as err:
                print(f"Couldn't read image '{path}': {err.strerror}", file=sys.stderr)
                words.append(word)
                continue
            pictures.append(base64.b64encode(data).decode())
            print(f"Added image '{path}'", file=sys.stderr)
            continue
        words.append(word)
    return " ".join(words).strip() if pictures else text, pictures
