"""The outcome of a request or of one visit: one enum, used by the runtime, the records and
the results alike."""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """How a request (or a call) ended. The values are the codes stored in the records."""

    OK = 0
    REJECTED = 1  # a full wait queue, a rate limit or a full broker turned it away
    TIMEOUT = 2  # the caller stopped waiting
    FAILED = 3  # a dead instance, a lost message, an injected error, an open breaker

    @property
    def label(self) -> str:
        return self.name.lower()


OK, REJECTED, TIMEOUT, FAILED = Status
STATUS_NAMES: tuple[str, ...] = tuple(s.label for s in Status)
ERROR_NAMES: tuple[str, ...] = STATUS_NAMES[1:]
N_STATUS = len(Status)  # records pack ``class * N_STATUS + status`` into one code
