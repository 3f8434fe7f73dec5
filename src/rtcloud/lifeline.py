"""A script's lifeline to the project server that started it: if the server dies, so does the run.

``rtcloud serve`` starts each script with a pipe on its standard input that it never writes
to, and marks the script's environment with :data:`ENV_VAR`. The pipe closes when the
server closes it (the Stop button) or when the server process ends in any way, even killed:
the operating system closes it then. :func:`watch_server` (called by ``ClientInterface``)
reads that pipe in a daemon thread; at its end the script is told (a line on stderr), its
main thread gets a ``KeyboardInterrupt`` so ``finally`` blocks and context managers end the
run cleanly, and if the script is still alive :data:`GRACE` seconds later it exits with
status :data:`EXIT_ORPHANED`. Without it a script whose server died would go on retrying a
dead port for ever.

Standard library only; works on Linux, macOS and Windows (on Windows the interrupt reaches
the main thread at its next Python instruction, and the exit after the grace covers a main
thread blocked in a system call).
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time

__all__ = ["ENV_VAR", "EXIT_ORPHANED", "GRACE", "watch_server"]

#: Set to ``stdin`` in the environment of the scripts a server starts.
ENV_VAR = "RTCLOUD_LIFELINE"
#: Seconds a script has to end its run after the interrupt.
GRACE = 3.0
#: Exit status of a script ended because its server died (EX_TEMPFAIL).
EXIT_ORPHANED = 75

_started = threading.Event()


def watch_server() -> bool:
    """Start watching the lifeline if this process was started by a server; True if so."""
    if os.environ.get(ENV_VAR) != "stdin" or _started.is_set():
        return _started.is_set()
    try:
        fd = sys.stdin.fileno() if sys.stdin is not None else 0
    except (OSError, ValueError):  # stdin replaced by an object without a descriptor
        fd = 0
    _started.set()
    threading.Thread(target=_watch, args=(fd,), name="rtcloud-lifeline", daemon=True).start()
    return True


def _watch(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 4096):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    _say(
        "rtcloud: the project server that started this script has stopped or died; "
        f"ending the run (exit in {GRACE:g} s at the latest)"
    )
    _interrupt_main()
    time.sleep(GRACE)
    _say("rtcloud: the script did not end after the interrupt; exiting")
    os._exit(EXIT_ORPHANED)


def _interrupt_main() -> None:
    """KeyboardInterrupt in the main thread, waking it from a blocking call where possible."""
    main = threading.main_thread()
    pthread_kill = getattr(signal, "pthread_kill", None)
    if pthread_kill is not None and main.ident is not None and main.is_alive():
        try:
            pthread_kill(main.ident, signal.SIGINT)
            return
        except (OSError, ValueError):
            pass
    _thread.interrupt_main()


def _say(text: str) -> None:
    try:  # stderr may be a pipe to the dead server
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
