"""Hop records: one row per visit of a request to a component, and per call that the caller
times itself (a timed call, a retried attempt, a backoff, a hedge's wait).

Rows are eight 8-byte numbers appended to one ``bytearray`` with one ``struct`` pack each
(64 bytes a row: ``id``, ``parent``, ``what`` and ``code`` as int64, the times as float64;
the results convert the integers to float64 in place, giving an ``(n, 8)`` float64 array
without a copy):

=========  ==================================================================================
column     meaning
=========  ==================================================================================
id         the row's id (ids are unique in a run; a request's root id is its own)
parent     ``parent_id * 4 + relation``: the caller's row (or the request's root id), and how
           this row stands to it (:data:`IN`, :data:`AFTER`, :data:`ASYNC`, :data:`COPY`)
what       a visit: the global index of the instance (pool) it visited; any other row: the
           index of the component called
arrive     a visit: when it reached the component; a call row: when the call began
start      a visit: when it got a worker (``arrive`` when none was needed)
served     a visit: when its service time ended (its calls follow)
end        a visit: when it released its worker and answered; a call row: when the caller
           went on (at the timeout, for a call that timed out)
code       ``status + 4 * type + 16 * attempt (+ ABANDONED)``
           (:class:`~simarch.model.status.Status`, :data:`VISIT`/:data:`CALL`/
           :data:`BACKOFF`/:data:`HEDGE`, the attempt number of a retried call, 1 for the
           first; :data:`ABANDONED` marks a hedged attempt still running when its call ended)
=========  ==================================================================================

How a row stands to its parent (the ``relation``):

* :data:`IN` -- inside the parent's window: a call made while the parent holds its worker
  (in turn, or all at once when the parent fans out in parallel), or the visit under a call
  row.
* :data:`AFTER` -- a ``forward`` call: it begins after the parent released its worker, and
  the parent's own caller waits for it, in turn.
* :data:`COPY` -- a synchronous replica copy of a write: after the parent (the primary's
  visit), all at once; the caller waits for the slowest.
* :data:`ASYNC` -- fire and forget (an async call, a message a queue consumer takes, a
  hedged attempt that lost): on nobody's critical path.

A request that is not recorded passes ``-1`` as the parent: its visits write nothing, and
cost one comparison each.
"""

from __future__ import annotations

import struct
from itertools import count

IN, AFTER, ASYNC, COPY = 0, 1, 2, 3
VISIT, CALL, BACKOFF, HEDGE = 0, 1, 2, 3
ABANDONED = 1 << 12  # in ``code``: a hedged attempt still running when the call ended
STRIDE = 8
ROW_BYTES = 8 * STRIDE
_ROW = struct.Struct("qqq4dq")  # (packing ints as int64 is faster than as doubles)
INT_COLUMNS = (0, 1, 2, 7)
_ID = struct.Struct("q")
COLUMNS = ("id", "parent", "what", "arrive", "start", "served", "end", "code")


class HopLog:
    """The hop rows of one run, and the id counter every recorded request draws from.

    ``every`` records one request in ``every`` (by arrival order in the measured window):
    1 records them all.
    """

    __slots__ = ("rows", "add", "pack", "new_id", "every", "_turn")

    def __init__(self, every: int = 1):
        self.rows = bytearray()  # packed rows (struct ``qqq4dq``, native byte order)
        self.add = self.rows.extend  # rows are written as add(pack(id, parent, ...))
        self.pack = _ROW.pack
        self.new_id = count().__next__
        self.every = max(1, int(every))
        self._turn = 0

    def root(self) -> int:
        """The root id of a request arriving now in the window, or -1 when it is not sampled."""
        if self.every > 1:
            self._turn += 1
            if self._turn % self.every:
                return -1
        return self.new_id()

    def call_row(self, rid: int | None, parent: int, comp: int, begun: float, ended: float,
                 status: int, kind: int = CALL, attempt: int = 0) -> None:
        """Write a row of the caller's own (a call, a backoff, a hedge's wait) to component
        ``comp``; ``rid`` is its id, drawn when the call began (``None``: a new one)."""
        if rid is None:
            rid = self.new_id()
        self.add(self.pack(rid, parent, comp, begun, begun, begun, ended, status + 4 * kind + 16 * attempt))

    def last_id(self) -> int:
        """The id of the row written last."""
        return _ID.unpack_from(self.rows, len(self.rows) - ROW_BYTES)[0]

    def __len__(self) -> int:
        return len(self.rows) // ROW_BYTES
