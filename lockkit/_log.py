"""lockkit's logger (``logging.getLogger("lockkit")``), without importing logging early.

A record reaches a handler only if the application configured one, and configuring one
means importing `logging`. Until something in the process has imported it, a record
could reach no handler (the ``lockkit`` logger carries a `logging.NullHandler`, so not
even logging's last-resort one), so it is dropped here without importing logging, which
would cost a fresh process about as much as the rest of its first lock. From the moment
logging is imported, by the application or by any library, every record goes through.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: importing typing costs what this module saves
if TYPE_CHECKING:
    import logging

__all__ = ["log"]

NAME = "lockkit"


class _Log:
    """Forwards to the ``lockkit`` logger once `logging` is imported; drops records before."""

    __slots__ = ("_logger",)

    def __init__(self) -> None:
        self._logger: logging.Logger | None = None

    def _get(self) -> logging.Logger | None:
        if self._logger is not None:
            return self._logger
        module = sys.modules.get("logging")
        if module is None:
            return None
        logger: logging.Logger = module.getLogger(NAME)
        # A library must not print through logging's last-resort handler: warnings.warn
        # is the user-visible channel, and applications opt in with a handler.
        if not any(isinstance(handler, module.NullHandler) for handler in logger.handlers):
            logger.addHandler(module.NullHandler())
        self._logger = logger
        return logger

    def debug(self, message: str, *args: object, exc_info: bool = False) -> None:
        """``Logger.debug``, when logging is loaded."""
        logger = self._get()
        if logger is not None:
            logger.debug(message, *args, exc_info=exc_info, stacklevel=2)

    def info(self, message: str, *args: object, exc_info: bool = False) -> None:
        """``Logger.info``, when logging is loaded."""
        logger = self._get()
        if logger is not None:
            logger.info(message, *args, exc_info=exc_info, stacklevel=2)

    def warning(self, message: str, *args: object, exc_info: bool = False) -> None:
        """``Logger.warning``, when logging is loaded."""
        logger = self._get()
        if logger is not None:
            logger.warning(message, *args, exc_info=exc_info, stacklevel=2)

    def exception(self, message: str, *args: object) -> None:
        """``Logger.exception`` (from an ``except`` block), when logging is loaded."""
        logger = self._get()
        if logger is not None:
            logger.error(message, *args, exc_info=True, stacklevel=2)  # noqa: LOG014 - called from one


log = _Log()
"""The ``lockkit`` logger as every module of lockkit uses it."""
