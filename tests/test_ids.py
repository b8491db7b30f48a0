"""fcc/engine/ids.py: the ids fcc makes look like secrets.token_hex's, never repeat, and a
forked worker does not repeat its parent's sequence."""

from __future__ import annotations

import os
import re

from fcc.engine.ids import hex_id


def test_ids_have_the_shape_token_hex_gives_and_do_not_repeat():
    ids = [hex_id("msg_fcc") for _ in range(10_000)]
    assert all(re.fullmatch(r"msg_fcc[0-9a-f]{24}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert re.fullmatch(r"[0-9a-f]{16}", hex_id("", 8))


def test_a_forked_child_makes_ids_of_its_own():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        os.write(write, hex_id("x").encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    assert child != hex_id("x")  # without the reseed at fork, the two would be the same
