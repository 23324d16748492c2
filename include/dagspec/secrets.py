"""The one scrubber: every form a secret can take in a message, replaced by a mask.

Drivers echo connection strings in their errors, each in its own escaping: DuckDB's ATTACH error
repeats the libpq string (`\\'`, `\\\\`), SQL quoting doubles `'`, URLs percent-encode (quote and
quote_plus, upper or lower hex), JSON and Python's repr escape backslashes, quotes and non-ASCII,
and HTTP basic auth sends base64 of `user:password`. A message can also be encoded more than once on
its way out (a repr of a libpq string inside a JSON run record), so each secret becomes one pattern
that takes, character by character, every one of those encodings nested in any order.

Every connection dagspec builds registers its password here (see ConnectionInfo), so a log
handler or an error written anywhere can be scrubbed even where no connection is at hand.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from urllib.parse import quote, quote_plus

MASK = "***"
# Shorter values are too common in ordinary text to mask (every "a" of a message would go).
MIN_SECRET_CHARS = 3

_registered: set[str] = set()
_registered_pairs: set[tuple[str, str]] = set()
_told_airflow: set[str] = set()
_lock = threading.Lock()


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


# Literal forms, for maskers that take strings (Airflow's); `_pattern` is what dagspec itself matches.
_ENCODERS: list[Callable[[str], str]] = [
    lambda s: s.replace("\\", "\\\\").replace("'", "\\'"),  # libpq keyword/value string
    lambda s: s.replace("'", "''"),  # SQL string literal
    lambda s: quote(s, safe=""),
    lambda s: quote(s, safe=" +"),  # SQLAlchemy's URL rendering
    lambda s: quote_plus(s, safe=""),
    lambda s: _lower_hex(quote(s, safe="")),
    lambda s: json.dumps(s)[1:-1],
    lambda s: repr(s)[1:-1],
    lambda s: ascii(s)[1:-1],
]


@lru_cache(maxsize=512)
def encodings(secret: str) -> tuple[str, ...]:
    """`secret` as literal strings: raw, each encoding and each encoding of an encoding, base64; longest first."""
    found = {secret}
    for first in _ENCODERS:
        once = first(secret)
        found.add(once)
        found.update(second(once) for second in _ENCODERS)
    found.add(_b64(secret))
    return tuple(sorted((f for f in found if len(f) >= MIN_SECRET_CHARS), key=len, reverse=True))


_NAMED = {"\n": "n", "\t": "t", "\r": "r", "/": "/"}
_HTML = {"&": ["&amp;"], "<": ["&lt;"], ">": ["&gt;"], "'": ["&#39;", "&#x27;"], '"': ["&quot;", "&#34;"]}
_PCT = r"%(?:25)*"  # a percent sign, itself percent-encoded any number of times
_BACKSLASH = rf"(?:\\|{_PCT}(?i:5c))"  # a backslash, raw or percent-encoded


def _char(c: str) -> str:
    """Every way one character of a secret can be written, encodings nested in any order: itself, behind
    any number of escaping backslashes (libpq, repr, JSON), percent-encoded in either case (quote,
    quote_plus, twice), `+` for a space, \\xNN / \\uNNNN / \\UNNNNNNNN (also JSON's surrogate pair),
    an HTML entity; a quote may also be doubled (SQL, CSV), any number of times over."""
    cp = ord(c)
    esc = rf"{_BACKSLASH}+"
    alts = [re.escape(c), "".join(f"{_PCT}(?i:{b:02x})" for b in c.encode())]
    if c == " ":
        alts += [r"\+", rf"{_PCT}(?i:2b)"]
    if c in _NAMED:
        alts.append(esc + re.escape(_NAMED[c]))
    if cp < 0x100:
        alts.append(rf"{esc}(?i:x{cp:02x})")
    if cp < 0x10000:
        alts.append(rf"{esc}(?i:u{cp:04x})")
    else:
        high, low = divmod(cp - 0x10000, 0x400)
        alts.append(rf"{esc}(?i:u{0xD800 + high:04x}){esc}(?i:u{0xDC00 + low:04x})")
    alts.append(rf"{esc}(?i:U{cp:08x})")
    alts.extend(re.escape(e) for e in _HTML.get(c, []))
    one = rf"{_BACKSLASH}*(?:{'|'.join(alts)})"
    return f"(?:{one})+" if c in "'\"" else one


@lru_cache(maxsize=512)
def _pattern(secret: str) -> re.Pattern:
    return re.compile("".join(_char(c) for c in secret))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@lru_cache(maxsize=512)
def _basic_auth(login: str, password: str) -> tuple[str, ...]:
    """HTTP basic auth: base64 of `login:password` (with or without padding, standard or URL-safe)."""
    raw = f"{login}:{password}".encode()
    forms = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    return tuple(sorted(forms | {f.rstrip("=") for f in forms}, key=len, reverse=True))


_SECRET_KEY = re.compile(r"secret|token|password|private_key|webhook_url|keyfile", re.I)


def extra_secrets(extra: object) -> Iterator[str]:
    """Values of a connection's extra that hold credentials (a keyfile_dict's private key, a session token, a
    webhook URL, ...)."""
    if isinstance(extra, dict):
        for key, value in extra.items():
            if isinstance(value, str) and _SECRET_KEY.search(str(key)):
                if key.endswith("keyfile_dict") and value.lstrip().startswith("{"):
                    try:
                        yield from extra_secrets(json.loads(value))
                        continue
                    except ValueError:
                        pass
                yield value
            elif isinstance(value, (dict, list)):
                yield from extra_secrets(value)
    elif isinstance(extra, list):
        for value in extra:
            yield from extra_secrets(value)


def register(password: str | None, login: str | None = None) -> None:
    """Remember a secret for `scrub_known` and the log filter (process-wide, as Airflow's masker does)."""
    if not password or len(password) < MIN_SECRET_CHARS:
        return
    with _lock:
        _registered.add(password)
        if login:
            _registered_pairs.add((login, password))
        told = password in _told_airflow
    if not told:
        _tell_airflow(password)


def _tell_airflow(password: str) -> None:
    """Inside an Airflow task, its own masker redacts the task log and what the supervisor writes: give it
    every form too. Only when Airflow is already imported (the core never imports it)."""
    import sys

    if "airflow.sdk" not in sys.modules:
        return
    try:
        from airflow.sdk.log import mask_secret

        for form in encodings(password):
            mask_secret(form)
        # Once per secret: each call is also a message to the task's supervisor, and connections are resolved
        # many times in a task.
        with _lock:
            _told_airflow.add(password)
    except Exception:  # masking is best effort there; our own scrub still runs on what we write
        pass


# Credentials that show up in driver and HTTP errors even when no secret is known.
_PATTERNS = [
    # The lookbehind starts a scheme only at a word's start: without it a long word costs quadratic time.
    (re.compile(r"(?P<keep>(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+(?=@)", re.I), rf"\g<keep>{MASK}"),
    # libpq keyword/value: password='a\'b' (a quoted value with backslash escapes)
    (re.compile(r"(?P<keep>\bpassword\s*=\s*)'(?:[^'\\]|\\.)*'", re.I), rf"\g<keep>'{MASK}'"),
    (re.compile(r"(?P<keep>\b(?:password|passwd|pwd|secret|token|api_key|apikey|access_key)\b\s*[=:]\s*)"
                r"(?P<q>['\"]?)(?!\*\*\*)[^'\"\s,;&)]+", re.I), rf"\g<keep>\g<q>{MASK}"),
    (re.compile(r"(?P<keep>\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.I), rf"\g<keep>{MASK}"),
    (re.compile(r"(?P<keep>\bAuthorization:\s*Basic\s+)[A-Za-z0-9+/=_-]+", re.I), rf"\g<keep>{MASK}"),
    (re.compile(r"(?P<keep>hooks\.slack\.com/services/)[A-Za-z0-9/_-]+", re.I), rf"\g<keep>{MASK}"),
]


def scrub(text: str, secrets: Iterable[str | None] = (), logins: Iterable[tuple[str, str]] = ()) -> str:
    """`text` without any form of the given secrets (or `(login, password)` pairs) nor credential-looking
    fragments."""
    if not text:
        return text
    wanted = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
    for secret in wanted:
        text = _pattern(secret).sub(MASK, text)
    forms = {_b64(s) for s in wanted}
    for login, password in logins:
        if password and len(password) >= MIN_SECRET_CHARS:
            forms.update(_basic_auth(login or "", password))
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def scrub_known(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` without the given secrets nor any secret a connection registered in this process."""
    with _lock:
        known, pairs = [*_registered, *secrets], list(_registered_pairs)
    return scrub(text, known, pairs)


class ScrubFilter(logging.Filter):
    """A handler filter: each record's message leaves with every registered secret removed."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub_known(message)
        if record.exc_info and record.exc_info[1] is not None:
            import traceback

            clean += "\n" + scrub_known("".join(traceback.format_exception(*record.exc_info)).rstrip())
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = clean, None
        return True
