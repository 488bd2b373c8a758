"""Carbon runtime: time, frames, worker threads, timeouts and synchronisation
for tasklets, and carbon.patch() for the standard library.

The functions and types come from the built-in module ``_carbon``, which
exists only in a process that embeds the runtime (``carbon_init()`` or the
``carbon`` host). Further modules of this package build on it.
"""
try:
    import _carbon
except ImportError as e:  # a plain python3: the runtime is not embedded
    raise ImportError(
        "the carbon package needs a host that embeds the Carbon runtime "
        "(carbon_init() or the `carbon` command); plain python3 has only `scheduler`"
    ) from e

from _carbon import *  # noqa: F401,F403  (sleep, wait_frames, frame, now, spawn_worker, Worker, TaskletExit, Timeout, wait_fd, ...)
from _carbon import _atexit  # noqa: F401
from _carbon import Timeout

from .sync import BoundedSemaphore, Empty, Event, Full, Lock, Queue, Semaphore  # noqa: F401
from .patch import patch, unpatch, is_patched, original  # noqa: F401


def timeout(seconds):
    """``with carbon.timeout(seconds):`` raises TimeoutError in the calling
    tasklet if the block has not ended in time (None: no limit). Returns the
    carbon.Timeout; its ``expired`` says whether it fired in the block."""
    return Timeout(seconds)

from carbon._host import HostQueue, queue  # noqa: F401,E402
from carbon._host import _configure_host, _deliver_post  # noqa: F401,E402
