"""Carbon runtime: time, frames and worker threads for tasklets.

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

from _carbon import *  # noqa: F401,F403  (sleep, wait_frames, frame, now, spawn_worker, Worker, TaskletExit)
from _carbon import _atexit  # noqa: F401
