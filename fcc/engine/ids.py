"""The ids fcc makes: request, message, tool-call and lease ids. Unique, not secret.

`secrets.token_hex` asks the kernel (a getrandom system call) for every id, and fcc makes
three or four per request: py-spy put 6% of fcc's per-request CPU in those calls (bench
MISSED.md, c=16 with one-token answers). These ids guard nothing (the auth token does), so
they come from a generator of fcc's own, seeded by the kernel once per process and again in
a forked child, so two workers never share a sequence.
"""

from __future__ import annotations

import os
import random

_random = random.Random()  # seeded from os.urandom; not the global generator a caller may seed
os.register_at_fork(after_in_child=_random.seed)
_bits = _random.getrandbits


def hex_id(prefix: str, nbytes: int = 12) -> str:
    """`prefix` and `nbytes` random bytes in hex, as secrets.token_hex would give them."""
    return f"{prefix}{_bits(nbytes * 8):0{nbytes * 2}x}"
