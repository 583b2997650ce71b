"""Log lines that do not tear tqdm progress bars: both go to stderr, the message through tqdm."""

from __future__ import annotations

import logging
import sys

from tqdm import tqdm


class ProgressSafeHandler(logging.Handler):
    """Writes ``message`` (warnings and errors prefixed with their level) above any live bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if record.levelno >= logging.WARNING:
                text = f"{record.levelname.lower()}: {text}"
            tqdm.write(text, file=sys.stderr)
        except Exception:
            self.handleError(record)
