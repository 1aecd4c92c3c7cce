"""Tasks that fail on purpose, for the sweep tests (used as --task path/to/broken_tasks.py:NAME)."""
import os
import signal


def failing():
    raise RuntimeError("this task fails on purpose")


def crashing():
    os.kill(os.getpid(), signal.SIGKILL)  # dies without a word: no result file, no traceback
