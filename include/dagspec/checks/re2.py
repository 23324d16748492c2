"""A Python `re` pattern (what GX's pandas engine runs) rewritten for RE2 (DuckDB, BigQuery), or None.

The two differ where it matters for checks: `$` also matches before a final newline in re, `\\d` is
any Unicode digit in re and ASCII in RE2. Those are rewritten; what cannot be matched exactly (\\w, \\s,
\\b, back-references, (?...) groups and flags, possessive quantifiers, `{,n}`, POSIX classes) gives
None and the check is left to GX itself.
"""

from __future__ import annotations

_SAME_ESCAPES = set("ntrfv")  # \n, \t, ... mean the same character in both
_END = r"(?:\n?\z)"


def re2_pattern(pattern: object) -> str | None:
    if not isinstance(pattern, str):
        return None
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        ch, nxt = pattern[i], pattern[i + 1:i + 2]
        if ch == "\\":
            if nxt == "d":
                out.append(r"\p{Nd}")
            elif nxt in _SAME_ESCAPES or (nxt.isascii() and nxt and not nxt.isalnum() and nxt != " "):
                out.append(ch + nxt)
            else:
                return None
            i += 2
            continue
        if in_class:
            if ch == "[" and nxt == ":":
                return None
            in_class = ch != "]"
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            out.append(ch)
            i += 1
            # A ']' first in a class (after an optional '^') is a literal in both.
            for lead in ("^", "]"):
                if pattern[i:i + 1] == lead:
                    out.append(lead)
                    i += 1
            continue
        if (ch == "(" and nxt == "?") or (ch == "{" and nxt == ",") or (ch in "*+?}" and nxt == "+"):
            return None
        out.append(_END if ch == "$" else ch)
        i += 1
    return "".join(out)
