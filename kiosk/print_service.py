"""The kiosk's printer worker as a Qt object: its results arrive as a signal on the GUI thread."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, Signal
from queuehall.kiosk.controller import PrintWorker
from queuehall.kiosk.printing import PrinterConfig
from queuehall.kiosk.ticket import TicketError, cjk_font_family, number_font_family

log = logging.getLogger("queuehall.kiosk")



class PrintService(QObject):
    """The kiosk's :class:`kiosk.controller.PrintWorker` with its results as a Qt signal:
    ``done(job, kind, outcome)`` arrives on the GUI thread (queued from the worker thread)."""

    done = Signal(int, str, object)

    def __init__(self, config: PrinterConfig | None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = PrintWorker(config, on_done=lambda job, kind, outcome: self.done.emit(job, kind, outcome))

    @property
    def config(self) -> PrinterConfig | None:
        return self.worker.config

    @property
    def printer(self) -> Any:
        return self.worker.printer

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()

    def configure(self, config: PrinterConfig | None) -> int:
        return self.worker.configure(config)

    def status(self) -> int:
        return self.worker.status()

    def print_ticket(self, fields: dict[str, Any]) -> int:
        return self.worker.print_ticket(fields)

    def test_print(self) -> int:
        return self.worker.test_print()

def warm_up_fonts() -> None:
    """Load the ticket fonts on the GUI thread once, so the first ticket is not slower than the rest."""
    try:
        cjk_font_family()
        number_font_family()
    except TicketError as err:
        log.error("%s", err)

