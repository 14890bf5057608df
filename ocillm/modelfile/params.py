"""PARAMETER names, types and value syntax, as Ollama's ``api.FormatParams`` checks them.

Values are converted with the rules of Go's ``strconv`` (``ParseInt(s, 10, 64)``,
``ParseFloat(s, 32)``, ``ParseBool``), not Python's ``int``/``float``, which accept more
(surrounding whitespace, non-ASCII digits, ``1_000`` for ints).
"""

from __future__ import annotations

import math
import re
import struct

# api.Options + api.Runner in Ollama's api/types.go (json tag -> Go kind).
VALID_PARAMETERS: dict[str, type] = {
    "num_ctx": int,
    "num_batch": int,
    "num_gpu": int,
    "main_gpu": int,
    "use_mmap": bool,
    "num_thread": int,
    "draft_num_predict": int,
    "num_keep": int,
    "seed": int,
    "num_predict": int,
    "top_k": int,
    "top_p": float,
    "min_p": float,
    "typical_p": float,
    "repeat_last_n": int,
    "temperature": float,
    "repeat_penalty": float,
    "presence_penalty": float,
    "frequency_penalty": float,
    "stop": list,
}

#: ggml's GGML_MAX_N_THREADS: llama.cpp crashes (SIGSEGV) on more threads than this.
MAX_THREADS = 512
_INT32 = (1 << 31) - 1

#: The values llama.cpp and its samplers can take, (min, max) inclusive, None: unbounded. Ollama
#: checks none of these; a value outside them crashed the runner or failed deep in llama.cpp.
#: Load options are C ints (int32); num_ctx is capped at the model's context later.
PARAMETER_RANGES: dict[str, tuple[float | None, float | None]] = {
    "num_ctx": (1, 1 << 24),
    "num_batch": (1, _INT32),
    "num_gpu": (-1, _INT32),  # -1: as many layers as fit
    "main_gpu": (0, 1024),
    "num_thread": (0, MAX_THREADS),  # 0: llama.cpp decides
    "draft_num_predict": (0, _INT32),
    "num_keep": (-1, _INT32),  # -1: the whole prompt
    "num_predict": (-2, None),  # -1 until the context is full, -2 until it is full
    "top_k": (0, _INT32),  # 0: off
    "top_p": (0, 1),
    "min_p": (0, 1),
    "typical_p": (0, 1),
    "repeat_last_n": (-1, _INT32),  # -1: the whole context, 0: off
    "temperature": (0, None),
    "repeat_penalty": (0, None),
}


def range_error(name: str, value: float) -> str | None:
    """What is wrong with ``value`` for parameter ``name`` (``"top_p" must be between 0 and
    1``), or None when it is in range. The caller says whether it is an option or a PARAMETER."""
    low, high = PARAMETER_RANGES.get(name, (None, None))
    if (low is None or value >= low) and (high is None or value <= high):
        return None
    if low is not None and high is not None and high < _INT32:  # a range worth naming whole
        return f'"{name}" must be between {low} and {high}'
    if low is not None and value < low:
        return f'"{name}" must be at least {low}'
    return f'"{name}" must be at most {high}'


# Accepted by the parser, warned about and dropped by `ollama create`.
DEPRECATED_PARAMETERS: frozenset[str] = frozenset(
    {
        "penalize_newline",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mlock",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
    }
)

ParamValue = int | float | bool | str | list[str]

_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
# Go float literal syntax: underscores only between digits (checked separately), an optional
# exponent; hex mantissas need a 'p' exponent.
_DEC_FLOAT_RE = re.compile(r"[+-]?(?:[0-9_]+\.?[0-9_]*|\.[0-9_]+)(?:[eE][+-]?[0-9][0-9_]*)?\Z")
_HEX_FLOAT_RE = re.compile(
    r"[+-]?0[xX](?:[0-9a-fA-F_]+\.?[0-9a-fA-F_]*|\.[0-9a-fA-F_]+)[pP][+-]?[0-9][0-9_]*\Z"
)
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_INT64 = 1 << 63


def _underscores_ok(s: str) -> bool:
    """Go's strconv.underscoreOK: '_' only between digits (or after a base prefix)."""
    if "_" not in s:
        return True
    body = s[1:] if s[:1] in "+-" else s
    is_hex = body[:2].lower() == "0x"
    saw = "0" if is_hex else "^"
    for ch in body[2:] if is_hex else body:
        if ch.isascii() and (ch.isdigit() or (is_hex and ch.lower() in "abcdef")):
            saw = "0"
        elif ch == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


def float32_shortest(value: float) -> float:
    """Round to float32 and back to the shortest decimal that names it, as Go's JSON does."""
    f32 = _to_f32(value)
    for digits in range(1, 10):
        text = f"{f32:.{digits}g}"
        if _to_f32(float(text)) == f32:
            return float(text)
    return f32  # pragma: no cover - 9 significant digits always suffice


def _to_f32(value: float) -> float:
    try:
        result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:  # rounds past float32's largest value
        return math.inf if value > 0 else -math.inf
    return result


def parse_go_int(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64), or None where Go would fail."""
    # Anything longer than 20 digits overflows int64 (and would hit Python's int() limit).
    if not _INT_RE.match(text) or len(text.lstrip("+-0")) > 19:
        return None
    value = int(text)
    return value if -_INT64 <= value < _INT64 else None


def parse_go_float(text: str) -> float | None:
    """strconv.ParseFloat(text, 32) for finite values, or None.

    Go also accepts Inf and NaN, but those cannot be stored in the JSON params blob, so they
    are rejected here (a deliberate difference, documented in docs/modelfile.md).
    """
    if _DEC_FLOAT_RE.match(text):
        if not any(c.isdigit() for c in text.split("e")[0].split("E")[0]):
            return None
        if not _underscores_ok(text):
            return None
        value = float(text.replace("_", ""))
    elif _HEX_FLOAT_RE.match(text):
        if not _underscores_ok(text):
            return None
        try:
            value = float.fromhex(text.replace("_", ""))
        except (OverflowError, ValueError):
            return None
    else:
        return None
    # Go returns ErrRange when the value rounds past float32's largest finite value.
    if not float32_is_finite(value):
        return None
    return float32_shortest(value)


def float32_is_finite(value: float) -> bool:
    """Whether ``value`` rounds to a finite float32 (struct refuses to round to inf)."""
    if not math.isfinite(value):
        return False
    return math.isfinite(_to_f32(value))


def parse_go_bool(text: str) -> bool | None:
    """strconv.ParseBool(text), or None."""
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    return None


def convert_parameter(name: str, raw: str) -> ParamValue:
    """Convert one PARAMETER value; raises ValueError with Ollama's message.

    ``stop`` returns a one-element list; the caller accumulates repeated ones.
    """
    kind = VALID_PARAMETERS.get(name)
    if kind is None:
        raise ValueError(f"unknown parameter '{name}'")
    if kind is list:
        return [raw]
    if kind is bool:
        b = parse_go_bool(raw)
        if b is None:
            raise ValueError(f"invalid bool value [{raw}]")
        return b
    if kind is int:
        i = parse_go_int(raw)
        if i is None:
            raise ValueError(f"invalid int value [{raw}]")
        return _in_range(name, i)
    f = parse_go_float(raw)
    if f is None:
        raise ValueError(f"invalid float value [{raw}]")
    return _in_range(name, f)


def _in_range(name: str, value: int | float) -> int | float:
    # An image with a value llama.cpp cannot take would fail every request: refuse it here.
    problem = range_error(name, value)
    if problem is not None:
        raise ValueError(f"PARAMETER {problem}")
    return value


def normalize_parameter(name: str, value: object) -> ParamValue:
    """Check a typed value for a known parameter (Modelfile objects built in code).

    Floats are rounded to float32 (what Ollama stores); ints are accepted for floats.
    Unknown names are kept as they are, so images written by newer tools still load.
    """
    kind = VALID_PARAMETERS.get(name)
    if kind is None:
        if isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise ValueError(f"parameter {name}: unsupported value {value!r}")
    if kind is list:
        if isinstance(value, str):
            return [value]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
        raise ValueError(f"parameter {name} must be a list of strings, got {value!r}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"parameter {name} must be a bool, got {value!r}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool) and -_INT64 <= value < _INT64:
            return value
        raise ValueError(f"parameter {name} must be a 64-bit int, got {value!r}")
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and float32_is_finite(float(value))
    ):
        return float32_shortest(float(value))
    raise ValueError(f"parameter {name} must be a finite float32, got {value!r}")


def format_parameter_value(value: int | float | bool | str) -> str:
    """Go's ``%v`` for the value types a parameter can have (``ollama show`` output)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)


_NUM = r"(?:0|[1-9][0-9]*)"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_ID = r"[0-9A-Za-z-]+"
# golang.org/x/mod/semver.IsValid: vMAJOR, vMAJOR.MINOR, or full semver with suffixes.
_SEMVER_RE = re.compile(
    rf"v{_NUM}(?:\.{_NUM}(?:\.{_NUM}(?:-{_PRE_ID}(?:\.{_PRE_ID})*)?"
    rf"(?:\+{_BUILD_ID}(?:\.{_BUILD_ID})*)?)?)?\Z"
)


def normalize_requires(raw: str) -> str | None:
    """REQUIRES value without its 'v', or None when it is not semver (Ollama's rule)."""
    version = raw if raw.startswith("v") else "v" + raw
    if not _SEMVER_RE.match(version):
        return None
    return version[1:]
