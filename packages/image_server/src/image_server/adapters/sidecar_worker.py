"""A worker process of an index rebuild: parses a share of the sidecars, hands back rows.

Started by ``fs_sidecars`` with this interpreter (``-P``: nothing from the working
folder), which sends the server's ``sys.path`` first, then one pickled job (the folder,
its chunks of ids, the module-level function that makes a value of each record's
indexed fields). The worker writes one pickled ``Parsed`` per chunk, in order, and
exits. Its standard output carries only those: anything else printed goes to its
standard error, which it shares with the server.
"""

from __future__ import annotations

import os
import pickle
import sys

from image_server.adapters.fs_sidecars import parse_chunks


def main() -> None:
    """Run one job from standard input to standard output."""
    results = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    job = pickle.load(sys.stdin.buffer)  # noqa: S301 - written by the server itself
    with results:
        for parsed in parse_chunks(job):
            pickle.dump(parsed, results, pickle.HIGHEST_PROTOCOL)
            results.flush()
