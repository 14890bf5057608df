"""Go's ``fmt`` formatting of values: ``%v`` (what ``{{ x }}`` prints), Sprint, Sprintln, Sprintf."""

from __future__ import annotations

import math
import re
from typing import Any

from .gotypes import (
    NO_VALUE,
    GoMap,
    GoSlice,
    GoStruct,
    NilPointer,
    OrderedMap,
    type_name,
)

# ---- floats ----------------------------------------------------------------------------------------


def shortest_digits(f: float) -> tuple[str, int]:
    """The shortest round-trip decimal digits of abs(f) and the decimal point position."""
    text = repr(abs(f))
    mantissa, _, exp = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    if frac == "0":
        frac = ""
    digits = (whole + frac).lstrip("0")
    dp = len(whole) + (int(exp) if exp else 0)
    if whole == "0" or not whole.strip("0"):
        lead = len(frac) - len(frac.lstrip("0"))
        dp = -lead + (int(exp) if exp else 0)
    digits = digits.rstrip("0")
    if not digits:
        return "0", 1
    return digits, dp


def _fmt_e(neg: bool, digits: str, dp: int, prec: int, upper: bool = False) -> str:
    """Go's %e with ``prec`` digits after the point (digits already rounded)."""
    out = "-" if neg else ""
    out += digits[0]
    if prec > 0:
        rest = digits[1 : prec + 1].ljust(prec, "0")
        out += "." + rest
    exp = 0 if digits == "0" else dp - 1
    sign = "-" if exp < 0 else "+"
    out += ("E" if upper else "e") + sign + str(abs(exp)).rjust(2, "0")
    return out


def _fmt_f(neg: bool, digits: str, dp: int, prec: int) -> str:
    out = "-" if neg else ""
    if dp > 0:
        out += digits[:dp].ljust(dp, "0")
    else:
        out += "0"
    if prec > 0:
        frac = ""
        for i in range(prec):
            j = dp + i
            frac += digits[j] if 0 <= j < len(digits) else "0"
        out += "." + frac
    return out


def _special(f: float) -> str | None:
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    return None


def format_float_json(f: float) -> str:
    """``encoding/json``'s float64 encoding."""
    neg = math.copysign(1.0, f) < 0 and f != 0
    digits, dp = shortest_digits(f)
    a = abs(f)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        text = _fmt_e(neg, digits, dp, len(digits) - 1)
        mant, _, exp = text.partition("e")
        sign, num = exp[0], exp[1:].lstrip("0") or "0"
        return f"{mant}e{sign}{num}"
    if digits == "0":
        return "0"
    return _fmt_f(neg, digits, dp, max(len(digits) - dp, 0))


def _round_digits(f: float, ndigits: int) -> tuple[str, int]:
    """abs(f) rounded to ``ndigits`` significant digits (half-even on the exact binary value)."""
    if f == 0:
        return "0" * max(ndigits, 1), 1
    text = f"{abs(f):.{max(ndigits - 1, 0)}e}"
    mant, _, exp = text.partition("e")
    digits = mant.replace(".", "")
    return digits, int(exp) + 1


def format_float_verb(f: float, verb: str, prec: int | None, sharp: bool = False) -> str:
    special = _special(f)
    if special is not None:
        return special
    neg = math.copysign(1.0, f) < 0
    if verb in "eE":
        p = 6 if prec is None else prec
        digits, dp = _round_digits(f, p + 1)
        return _fmt_e(neg, digits, dp, p, verb == "E")
    if verb in "fF":
        p = 6 if prec is None else prec
        text = f"{abs(f):.{p}f}"
        return ("-" if neg else "") + text
    # g / G / v
    if prec is None or verb == "v":
        digits, dp = shortest_digits(f)
        if digits == "0":
            return "-0" if neg else "0"
        # shortest precision: %e when the exponent is < -4 or >= 6 (strconv's rule)
        exp = dp - 1
        if exp < -4 or exp >= 6:
            return _fmt_e(neg, digits, dp, len(digits) - 1, verb == "G")
        return _fmt_f(neg, digits, dp, max(len(digits) - dp, 0))
    p = max(prec, 1)
    digits, dp = _round_digits(f, p)
    digits = digits.rstrip("0") or "0"
    exp = dp - 1
    eprec = p
    if eprec > len(digits) and len(digits) >= dp:
        eprec = len(digits)
    if exp < -4 or exp >= eprec:
        return _fmt_e(neg, digits, dp, len(digits) - 1, verb == "G")
    return _fmt_f(neg, digits, dp, max(len(digits) - dp, 0))


# ---- %v --------------------------------------------------------------------------------------------


def fake_address(value: object) -> str:
    """Go prints nested pointers as addresses; these are stable per object, never meaningful."""
    return "0xc" + format(id(value) & 0xFFFFFFFFF, "09x")


def sprint_value(v: Any, depth: int = 0) -> str:
    """fmt's ``%v`` of one operand (``depth`` > 0 inside a composite)."""
    if isinstance(v, str):
        return v
    if v is None or v is NO_VALUE:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format_float_verb(v, "v", None)
    if isinstance(v, GoStruct):
        s = v.go_string()
        if s is not None:
            return s
        if v.pointer:
            if depth > 0:
                return fake_address(v)
            return "&" + _struct(v, depth)
        return _struct(v, depth)
    if isinstance(v, (GoSlice, GoMap)):
        s = v.go_string()
        if s is not None:
            return s
    if isinstance(v, OrderedMap):
        if depth > 0:
            return fake_address(v)
        return "&{" + fake_address(v) + "}"
    if isinstance(v, NilPointer):
        return "<nil>"
    if isinstance(v, dict):
        items = " ".join(
            f"{sprint_value(k, depth + 1)}:{sprint_value(v[k], depth + 1)}" for k in sorted(v)
        )
        return "map[" + items + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(sprint_value(x, depth + 1) for x in v) + "]"
    if isinstance(v, (bytes, bytearray)):
        return "[" + " ".join(str(b) for b in v) + "]"
    if isinstance(v, complex):
        return "(" + format_float_verb(v.real, "v", None) + _signed(v.imag) + "i)"
    return str(v)


def _signed(f: float) -> str:
    s = format_float_verb(f, "v", None)
    return s if s.startswith(("-", "+")) else "+" + s


def _struct(v: GoStruct, depth: int) -> str:
    return "{" + " ".join(sprint_value(x, depth + 1) for _, x in v.field_items()) + "}"


def sprint(args: list[Any]) -> str:
    """fmt.Sprint: spaces between operands when neither side is a string."""
    out: list[str] = []
    prev_string = True
    for i, a in enumerate(args):
        is_string = isinstance(a, str)
        if i > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(sprint_value(a))
        prev_string = is_string
    return "".join(out)


def sprintln(args: list[Any]) -> str:
    return " ".join(sprint_value(a) for a in args) + "\n"


# ---- quoting and escapers --------------------------------------------------------------------------


def _is_print(ch: str) -> bool:
    return ch == " " or (ch.isprintable() and not ch.isspace())


_CONTROL_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def go_quote(s: str) -> str:
    """strconv.Quote."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif _is_print(ch):
            out.append(ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append(_CONTROL_ESCAPES[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def html_escape(s: str) -> str:
    """template.HTMLEscapeString."""
    return (
        s.replace("&", "&amp;")
        .replace("'", "&#39;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("\x00", "\ufffd")
    )


def js_escape(s: str) -> str:
    """template.JSEscapeString."""
    out: list[str] = []
    for ch in s:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'")
        elif ch == '"':
            out.append('\\"')
        elif ch in "<>&=" or o < 0x20 or (o >= 0x80 and not _is_print(ch)):
            out.append(f"\\u{o:04X}")
        else:
            out.append(ch)
    return "".join(out)


_URL_SAFE = re.compile(r"[A-Za-z0-9\-_.~]")


def url_query_escape(s: str) -> str:
    """url.QueryEscape."""
    out: list[str] = []
    for b in s.encode("utf-8"):
        ch = chr(b)
        if _URL_SAFE.fullmatch(ch):
            out.append(ch)
        elif ch == " ":
            out.append("+")
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


# ---- Sprintf ---------------------------------------------------------------------------------------

_VERB = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d*))?([a-zA-Z%])")

MAX_WIDTH = 1_000_000


def _bad(verb: str, v: Any) -> str:
    if v is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(v)}={sprint_value(v)})"


def _pad(s: str, width: int | None, minus: bool, zero: bool) -> str:
    if width is None or len(s) >= width:
        return s
    if minus:
        return s + " " * (width - len(s))
    if zero:
        sign = s[0] if s[:1] in ("-", "+") else ""
        body = s[len(sign) :]
        return sign + "0" * (width - len(s)) + body
    return " " * (width - len(s)) + s


def _fmt_int(v: int, verb: str, flags: str, prec: int | None) -> str:
    neg = v < 0
    a = -v if neg else v
    if verb == "d":
        body = str(a)
    elif verb == "x":
        body = format(a, "x")
    elif verb == "X":
        body = format(a, "X")
    elif verb == "o":
        body = format(a, "o")
    elif verb == "O":
        body = "0o" + format(a, "o")
    elif verb == "b":
        body = format(a, "b")
    elif verb == "c":
        return chr(v) if 0 <= v <= 0x10FFFF else "\ufffd"
    elif verb == "q":
        return "'" + go_quote(chr(v))[1:-1].replace("'", "\\'").replace('\\"', '"') + "'"
    elif verb == "U":
        body = "U+" + format(a, "04X")
    else:
        return _bad(verb, v)
    if prec is not None:
        body = body.rjust(prec, "0")
    if "#" in flags:
        body = {"x": "0x", "X": "0X", "o": "0", "b": ""}.get(verb, "") + body
    sign = "-" if neg else ("+" if "+" in flags else (" " if " " in flags else ""))
    return sign + body


def _fmt_one(verb: str, flags: str, width: int | None, prec: int | None, v: Any) -> str:
    minus = "-" in flags
    zero = "0" in flags and not minus
    if verb in ("v", "s") and isinstance(v, str):
        s = v if prec is None else v[:prec]
        return _pad(s, width, minus, False)
    if verb == "v":
        if "+" in flags and isinstance(v, GoStruct) and v.go_string() is None:
            s = "{" + " ".join(f"{k}:{sprint_value(x, 1)}" for k, x in v.field_items()) + "}"
        elif "#" in flags and isinstance(v, str):
            s = go_quote(v)
        else:
            s = sprint_value(v)
        return _pad(s, width, minus, zero and isinstance(v, (int, float)))
    if verb == "T":
        return _pad(type_name(v), width, minus, False)
    if isinstance(v, bool):
        if verb == "t":
            return _pad("true" if v else "false", width, minus, False)
        return _bad(verb, v)
    if isinstance(v, int):
        if verb in "dxXobcqUO":
            return _pad(_fmt_int(v, verb, flags, prec), width, minus, zero and prec is None)
        if verb in "eEfFgG":
            return _bad(verb, v)
        return _bad(verb, v)
    if isinstance(v, float):
        if verb in "eEfFgG":
            s = format_float_verb(v, verb, prec, "#" in flags)
            if "+" in flags and not s.startswith("-"):
                s = "+" + s
            elif " " in flags and not s.startswith("-"):
                s = " " + s
            return _pad(s, width, minus, zero)
        return _bad(verb, v)
    if isinstance(v, str):
        if verb == "q":
            return _pad(go_quote(v), width, minus, False)
        if verb in "xX":
            data = v.encode("utf-8")
            s = data.hex() if verb == "x" else data.hex().upper()
            if " " in flags:
                s = " ".join(s[i : i + 2] for i in range(0, len(s), 2))
            return _pad(s, width, minus, False)
        return _bad(verb, v)
    if verb == "s":
        if isinstance(v, (GoStruct, GoSlice, GoMap)) and v.go_string() is not None:
            return _pad(sprint_value(v), width, minus, False)
        if isinstance(v, (list, dict, GoStruct)):
            return _pad(sprint_value(v), width, minus, False)
    if verb == "d" and isinstance(v, list):
        return "[" + " ".join(_fmt_one("d", flags, None, prec, x) for x in v) + "]"
    return _bad(verb, v)


def sprintf(fmt: str, args: list[Any]) -> str:
    """fmt.Sprintf for the verbs templates use, with Go's error notation for mismatches."""
    out: list[str] = []
    argi = 0
    pos = 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos : m.start()])
        pos = m.end()
        flags, width_s, prec_s, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        width: int | None = None
        prec: int | None = None
        if width_s == "*":
            if argi < len(args) and isinstance(args[argi], int):
                width = args[argi]
                argi += 1
            else:
                out.append("%!(BADWIDTH)")
                argi += 1
        elif width_s:
            width = int(width_s)
        if prec_s == "*":
            if argi < len(args) and isinstance(args[argi], int):
                prec = args[argi]
                argi += 1
            else:
                out.append("%!(BADPREC)")
                argi += 1
        elif prec_s is not None:
            prec = int(prec_s) if prec_s else 0
        if width is not None and width < 0:
            flags += "-"
            width = -width
        if (width or 0) > MAX_WIDTH or (prec or 0) > MAX_WIDTH:
            raise ValueError("printf width or precision too large")
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_fmt_one(verb, flags, width, prec, args[argi]))
        argi += 1
    out.append(fmt[pos:])
    if argi < len(args):
        extra = ", ".join(
            "<nil>" if a is None else f"{type_name(a)}={sprint_value(a)}" for a in args[argi:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
