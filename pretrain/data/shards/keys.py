"""Sample keys: an injective, reversible escape of a video's relative path.

WebDataset splits a tar member name at the first dot after the last slash into key and extension,
so keys may hold only `[A-Za-z0-9-]` plus an escape: every other byte of the UTF-8 path (including
'_' itself, '.', '/', spaces) becomes `_xx` (two lowercase hex digits). Because '_' always starts an
escape, two different paths can never give the same key, and `path_for_key` inverts it exactly.
"""

from __future__ import annotations

import re
import string

_PLAIN = frozenset(string.ascii_letters + string.digits + "-")
_ESCAPE = re.compile(r"_([0-9a-f]{2})")


def key_for_path(relative_path: str) -> str:
    """`"Class/v_x.avi"` -> `"Class_2fv_5fx_2eavi"`."""
    parts = []
    for char in relative_path:
        if char in _PLAIN:
            parts.append(char)
        else:
            parts.extend(f"_{byte:02x}" for byte in char.encode("utf-8"))
    return "".join(parts)


def path_for_key(key: str) -> str:
    """Inverse of `key_for_path`."""
    out = bytearray()
    position = 0
    for match in _ESCAPE.finditer(key):
        out += key[position : match.start()].encode("ascii")
        out.append(int(match.group(1), 16))
        position = match.end()
    out += key[position:].encode("ascii")
    return out.decode("utf-8")
