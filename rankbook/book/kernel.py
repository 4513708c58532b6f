"""How the runner's kernels run: their environment, their options, what of their output reaches the log."""
from __future__ import annotations

import logging
import os
import re
import sys

from rankbook.settings import profiles

#: kernel options: its own log silenced, so a run prints no "Kernel is running over TCP without encryption"
#: (it listens on the loopback interface only) and no ZMQ traceback when Ctrl-C closes it mid-cell; a
#: kernel that dies is still reported, by the runner, as a failed row with its error
KERNEL_ARGS = ["--IPKernelApp.log_level=CRITICAL"]


class environment:
    """The kernel's environment: the profile (nested helpers agree), passive OpenMP waits, inline figures."""

    def __init__(self, profile: str, extra: dict | None = None):
        # busy-waiting OpenMP threads slow torch ~9x when other jobs share the cores; MPLBACKEND=Agg (CI)
        # would leave figures undisplayed in the executed copies
        self.values = {profiles.ENV_VAR: profile, "MPLBACKEND": "module://matplotlib_inline.backend_inline",
                       "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"), **(extra or {})}

    def __enter__(self):
        self.before = {k: os.environ.get(k) for k in self.values}
        os.environ.update(self.values)

    def __exit__(self, *exc):
        for k, v in self.before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


#: papermill's own chatter around the cells' output
_PAPERMILL_CHATTER = re.compile(r"^(Input Notebook|Output Notebook|Working directory|Executing notebook with|"
                                r"Executing Cell|Ending Cell)")


def _cell_output_only(record: logging.LogRecord) -> bool:
    text = record.getMessage().strip()
    if not text or _PAPERMILL_CHATTER.match(text):
        return False
    record.msg, record.args = text, None
    return True


class papermill_log:
    """With ``log_output``, the cells' output (a training loop's progress) goes to stderr as it comes."""

    def __init__(self, on: bool):
        self.on = on
        self.logger = logging.getLogger("papermill")

    def __enter__(self):
        if self.on:
            self.handler = logging.StreamHandler(sys.stderr)
            self.handler.addFilter(_cell_output_only)
            self.handler.setFormatter(logging.Formatter("    | %(message)s"))
            self.level = self.logger.level
            self.logger.addHandler(self.handler)
            self.logger.setLevel(logging.INFO)

    def __exit__(self, *exc):
        if self.on:
            self.logger.removeHandler(self.handler)
            self.logger.setLevel(self.level)
