"""The one exception type of coroproc.shm.

Every failure a caller can act on (a segment that already exists, one that is not a
ring, a ring of another layout version, a record that can never fit) is a ShmError
whose message names the segment, says what was found and what is allowed.
"""


class ShmError(Exception):
    """A shared-memory ring could not be created, attached or used as asked."""
