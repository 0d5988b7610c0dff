"""The kiosk's window shell: thin Qt widgets over :class:`kiosk.model.KioskModel`.

:class:`KioskWindow` owns the pages (start: :mod:`kiosk.start_view`; service details:
:mod:`kiosk.service_view`; confirmation, failed print and notices: :mod:`kiosk.confirm_view`;
PIN pad and settings: :mod:`kiosk.staff_view`; the header and widget helpers: :mod:`kiosk.widgets`;
the look: :mod:`kiosk.style`), the timers (return to the start screen, printer status polling,
the clock) and wires the broker link (``queuehall.qtlink.QtLink``) and the ticket printer
(:class:`~kiosk.print_service.PrintService`, which runs every printer operation on one worker
thread so a slow network printer never freezes the screen) to the controller and the model. It
never closes by touch: no window frame, Esc and Alt+F4 are ignored, and only the PIN-protected
settings can quit.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QFont, QKeyEvent
from PySide6.QtWidgets import QApplication, QLayout, QStackedWidget, QVBoxLayout, QWidget
from queuehall.kiosk.checkin import CHECKIN_TITLE
from queuehall.kiosk.checkin_view import CheckinScreens
from queuehall.kiosk.confirm_view import ConfirmationPage, NoticePage, PrintFailedPage
from queuehall.kiosk.controller import KioskController
from queuehall.kiosk.guide import VoiceGuide, still_there
from queuehall.kiosk.journal import KioskJournal
from queuehall.kiosk.model import ASK_STAFF, OUT_OF_SERVICE, Bi, KioskModel, Phase, Screen, system_now
from queuehall.kiosk.print_service import PrintService, warm_up_fonts
from queuehall.kiosk.printing import PrinterConfig, PrinterError
from queuehall.kiosk.service_view import DetailsPage
from queuehall.kiosk.staff_view import PinPage, SettingsPage
from queuehall.kiosk.start_view import StartPage
from queuehall.kiosk.style import setup_app_font, stylesheet
from queuehall.kiosk.ticket import TicketError
from queuehall.kiosk.widgets import Header, apply_scale
from queuehall.voice.pack import VoiceError, VoicePack, load_pack
from queuehall.voice.sink import AudioSink

from queuehall.qtfonts import cjk_family

log = logging.getLogger("queuehall.kiosk")

WAIT_PROMPT_MS = 800  # "正在为您打印号票，请稍候" only when printing (or a check-in) takes longer than this
STILL_THERE_MS = 15_000  # "touch the screen to continue" this long before an idle page returns to the start

__all__ = ["KioskWindow", "PrintService", "setup_app_font", "warm_up_fonts"]


class KioskWindow(QWidget):
    """The kiosk application window.

    ``link`` is a :class:`queuehall.qtlink.QtLink` (or anything with its signals and
    ``request``); ``printer`` a :class:`PrintService`; ``model`` the view-model (its settings
    hold the timer delays, injectable for tests). ``printer_spec`` is shown and edited in the
    settings. Signals for observers (tests, logs): ``screen_changed(str)``, ``phase_changed(str)``,
    ``ready()`` once the first hall state and printer status are in.

    Spoken guidance (:mod:`kiosk.guide`): ``audio`` is where prompts are played (default: a
    :class:`~voice.qt_audio.QtAudioSink`, made once the window has started); ``voice_pack`` the pack, or
    its folder (default: the shipped pack), loaded off the GUI thread at :meth:`start`.
    """

    screen_changed = Signal(str)
    phase_changed = Signal(str)
    ready = Signal()
    _pack_loaded = Signal(object)  # from the loading thread: a VoicePack, or the VoiceError

    def __init__(self, link: Any, printer: PrintService, model: KioskModel, *, printer_spec: str = "",
                 broker_label: str = "", quit_app: Callable[[], None] | None = None,
                 journal: KioskJournal | None = None, name: str = "kiosk", audio: AudioSink | None = None,
                 voice_pack: VoicePack | str | None = None) -> None:
        super().__init__()
        self.link = link
        self.printer = printer
        self.model = model
        if model.clock is system_now and getattr(link, "hall_clock", None) is not None:
            # The hall's time from the broker: the PC's clock may be off (or the hall simulated).
            model.clock = link.hall_clock
        self.printer_spec = printer_spec
        self.broker_label = broker_label
        self.quit_app = quit_app or QApplication.quit
        self.allow_close = False
        client_id = str(getattr(link, "client_id", "") or "")
        if journal is None:  # memory only: the link's client id, whatever it is
            journal = KioskJournal(None, name, client_id=client_id or None)
        elif client_id and client_id != journal.client_id:
            log.error("the link's client id %s is not the journal's %s: unsettled requests cannot be recovered",
                      client_id, journal.client_id)
        # Everything but drawing and timers: issuing, printing, faults, reprints, recovery (Qt-free).
        self.controller = KioskController(model, link, printer, journal, name=name, on_change=self.redraw)
        self.guide = VoiceGuide(audio, voice_pack if isinstance(voice_pack, VoicePack) else None)
        self._voice_pack_path = voice_pack if isinstance(voice_pack, str) else None
        self._last_touch: float | None = None  # monotonic time of the last tap: someone is at the kiosk
        self._touches = 0  # taps so far (the guide greets the next citizen's first tap on a silent start page)
        self._last_screen: Screen | None = None
        self._timer_key: tuple[Screen, Phase | None, bool] | None = None  # what the flow timer was armed for
        self._last_phase = model.phase
        self._was_ready = False
        self._deadline = 0.0
        self.setObjectName("root")
        self.setWindowTitle("queuehall kiosk")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        # The window's own font (not the application's: other windows in the process keep theirs).
        self.family = cjk_family()
        font = QFont(self.family)
        font.setPixelSize(24)
        self.setFont(font)
        self._scale = 0.0
        self._portrait = False
        self._large = False
        self._build()
        self._wire()

    # ------------------------------------------------------------------ construction

    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        # The window is the screen's size, whatever its pages would like: they are scaled to fit it (rescale),
        # and the layout check in the tests proves they do at every supported size.
        lay.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        self.header = Header()
        lay.addWidget(self.header)
        self.stack = QStackedWidget()
        lay.addWidget(self.stack, 1)
        self.start_page = StartPage()
        self.details_page = DetailsPage()
        self.confirm_page = ConfirmationPage()
        self.closed_page = NoticePage("休", "#1666c5")
        self.out_page = NoticePage("!", "#8a94a3")
        self.staff_page = NoticePage("!", "#d9822b")
        self.failed_page = PrintFailedPage()
        self.message_page = NoticePage("i", "#b34700")
        self.pin_page = PinPage()
        self.settings_page = SettingsPage()
        self.pages: dict[Screen, QWidget] = {
            Screen.START: self.start_page, Screen.DETAILS: self.details_page,
            Screen.CONFIRMATION: self.confirm_page, Screen.CLOSED: self.closed_page,
            Screen.OUT_OF_SERVICE: self.out_page, Screen.ASK_STAFF: self.staff_page,
            Screen.PRINT_FAILED: self.failed_page, Screen.MESSAGE: self.message_page,
            Screen.PIN: self.pin_page, Screen.SETTINGS: self.settings_page,
        }
        # Check-in (预约签到, remote tickets): its pages, the start page's entry and the barcode scanner.
        self.checkin = CheckinScreens(self.controller, self._touched)
        self.pages.update(self.checkin.pages())
        self.start_page.add_action(self.checkin.button)
        for page in self.pages.values():
            self.stack.addWidget(page)
        self.flow_timer = QTimer(self)
        self.flow_timer.setSingleShot(True)
        self.flow_timer.timeout.connect(self._flow_timeout)
        # "如需继续，请触摸屏幕": said STILL_THERE_MS before an idle page gives up on its citizen.
        self.still_timer = QTimer(self)
        self.still_timer.setSingleShot(True)
        self.still_timer.timeout.connect(self._still_there)
        self.wait_timer = QTimer(self)
        self.wait_timer.setSingleShot(True)
        self.wait_timer.timeout.connect(lambda: self.guide.say_deferred(self.model))
        self.status_timer = QTimer(self)
        self.status_timer.timeout.connect(self._poll)
        self.tick_timer = QTimer(self)
        self.tick_timer.setInterval(1000)
        self.tick_timer.timeout.connect(self._tick)

    def _wire(self) -> None:
        c = self.controller
        self.link.state_changed.connect(c.on_state)
        self.link.connection_changed.connect(c.on_connection)
        self.link.replied.connect(c.on_reply)
        self.printer.done.connect(c.on_job)
        self.header.language_tapped.connect(self._toggle_language)
        self.header.large_text_tapped.connect(lambda: self._do(self.model.toggle_large_text))
        self.header.settings_gesture.connect(self._open_settings)
        self.start_page.department_tapped.connect(lambda c: self._do(self.model.select_department, c))
        self.start_page.service_tapped.connect(lambda c: self._do(self.model.tap_service, c))
        self.details_page.priority_chosen.connect(lambda c: self._do(self.model.choose_priority, c))
        self.details_page.confirm_tapped.connect(self.confirm)
        self.details_page.back_tapped.connect(lambda: self._do(self.model.back_to_start))
        self.confirm_page.done_tapped.connect(lambda: self._do(self.model.back_to_start, reset_language=True))
        self.message_page.button_tapped.connect(lambda: self._do(self.model.back_to_start))
        self.closed_page.button_tapped.connect(lambda: self._do(self.model.open_checkin))  # bookings still check in
        self.failed_page.button_tapped.connect(
            lambda: self._do(self.model.back_to_start, reset_language=True))
        self.pin_page.submitted.connect(self._pin)
        self.pin_page.cancelled.connect(self._close_settings)
        sp = self.settings_page
        sp.apply_printer.connect(self._apply_printer)
        sp.test_print.connect(self._test_print)
        sp.refresh_status.connect(self._poll)
        sp.reprint.connect(self._staff_reprint)
        sp.default_language.connect(lambda c: self._do(self.model.set_default_language, c))
        sp.voice_muted.connect(lambda muted: self._do(self.model.set_voice_muted, muted))
        self._pack_loaded.connect(self._on_pack)
        sp.back_tapped.connect(self._close_settings)
        sp.quit_tapped.connect(self._quit)
        # Scrolling the materials list is "still reading": it restarts the idle countdown. (Only this
        # viewport is watched: an application-wide Python event filter would cost the interpreter lock
        # on every paint event, slowing the printer and broker threads.)
        self.details_page.materials_scroll.viewport().installEventFilter(self)
        self.pin_page.touched.connect(self._touched)
        sp.spec.textEdited.connect(self._touched)
        sp.pad.touched.connect(self._touched)
        sp.spec_pad.touched.connect(self._touched)

    def start(self) -> None:
        """Start the printer worker, the broker link and the timers, and draw the first screen."""
        self.printer.start()
        self.link.start()
        self.status_timer.start(self.model.settings.status_ms)
        self.tick_timer.start()
        self._poll()
        self.redraw()
        if self.guide.pack is None:
            # ~0.2 s of reading WAVs: off the GUI thread, so the first screen is not held up.
            threading.Thread(target=self._load_pack, name="kiosk-voice-pack", daemon=True).start()
        if self.guide.sink is None:
            QTimer.singleShot(0, self, self._make_audio)  # QtMultimedia's set-up after the first paint

    def _load_pack(self) -> None:
        loaded: object
        try:
            loaded = load_pack(self._voice_pack_path)
        except VoiceError as err:
            loaded = err
        try:
            self._pack_loaded.emit(loaded)
        except RuntimeError:
            # The window was deleted while the pack loaded (the kiosk closed or Ctrl-C within its first
            # fraction of a second): there is no one to give it to, and a traceback on the way out helps nobody.
            log.debug("the kiosk closed before its voice pack loaded")

    def _on_pack(self, pack: object) -> None:
        if isinstance(pack, VoicePack):
            self.guide.set_pack(pack)
        else:
            log.error("语音包无法加载，取号机没有语音引导 / no spoken guidance: the voice pack cannot be loaded: %s",
                      pack)

    def _make_audio(self) -> None:
        if self.guide.sink is None:
            from queuehall.voice.qt_audio import QtAudioSink  # QtMultimedia only where sound is played

            self.guide.sink = QtAudioSink(self)

    def shutdown(self) -> None:
        """Stop timers, the link and the printer worker (for tests and a clean exit)."""
        for t in (self.flow_timer, self.still_timer, self.wait_timer, self.status_timer, self.tick_timer):
            t.stop()
        self.guide.stop()
        self.link.stop()
        self.printer.stop()
        self.allow_close = True

    # ------------------------------------------------------------------ never closed by a citizen

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.allow_close:
            event.accept()
        else:
            event.ignore()  # Alt+F4, a window manager's close: the kiosk stays

    def keyPressEvent(self, event: QKeyEvent) -> None:
        # Keys a child did not use end here: Esc, Ctrl+Q, F-keys… are all swallowed, nothing leaves the
        # kiosk by keyboard (Alt+F4 arrives as a close event, which closeEvent refuses).
        self.checkin.key(event)  # a barcode scanner types here too: the check-in recognises its reads
        event.accept()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.Wheel):
            self._touched()
        return False

    def _touched(self, *_: Any) -> None:
        """The person at the screen is still busy: restart the idle countdown of the current page."""
        self._last_touch = time.monotonic()
        self._touches += 1
        if self.model.screen not in (Screen.CONFIRMATION, Screen.MESSAGE, Screen.PRINT_FAILED, Screen.CHECKED_IN,
                                     Screen.CHECKIN_REFUSED) \
                and self.flow_timer.isActive():
            self.flow_timer.start()
            self._arm_still_there(self.flow_timer.interval())

    @property
    def someone_there(self) -> bool:
        """Whether the screen was touched within the idle time: spoken guidance is for a person, not the hall."""
        return self._last_touch is not None and \
            time.monotonic() - self._last_touch < self.model.settings.idle_ms / 1000

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self.rescale()

    def rescale(self, force: bool = False) -> None:
        """Scale type, margins and buttons to the screen and re-flow the pages for its orientation.

        The scale follows the screen's smaller dimension (1.0 = 1920×1080 landscape or 1080×1920 portrait),
        limited by the larger one, so a portrait kiosk gets the same type as a landscape one of that width.
        """
        w, h = self.width(), self.height()
        u = min(min(w, h) / 1080, max(w, h) / 1920)
        u = max(0.45, min(u, 2.0))
        portrait = h > w
        large = self.model.large_text
        if force or abs(u - self._scale) > 0.01 or portrait != self._portrait or large != self._large:
            self._scale, self._portrait, self._large = u, portrait, large
            self.setStyleSheet(stylesheet(u, self.family, large))
            self.checkin.scale(u, large)
            self.header.setFixedHeight(round(118 * u))
            # Large type takes its room from the gaps: margins and spacing shrink as the type grows.
            gaps = u * (0.75 if large else 1.0)
            for page in (self.start_page, self.details_page):
                page.u = gaps
                page.set_portrait(portrait)
            apply_scale(self, gaps, sizes=u)  # buttons keep their size: large type needs it

    # ------------------------------------------------------------------ inputs

    def _do(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> None:
        self._last_touch = time.monotonic()
        self._touches += 1
        fn(*args, **kw)
        self._touched()
        self.redraw()

    def _toggle_language(self) -> None:
        self._do(self.model.set_language, "en" if self.model.language == "zh" else "zh")

    # ------------------------------------------------------------------ issuing and the printer

    def confirm(self) -> None:
        """The citizen tapped "take a ticket" (double taps are ignored by the model)."""
        self._last_touch = time.monotonic()
        self._touches += 1
        self.controller.confirm()

    def _poll(self) -> None:
        """Ask the printer for its status (every ``status_seconds``, and "check again" in the settings)."""
        self.controller.poll()

    # ------------------------------------------------------------------ settings

    def _open_settings(self) -> None:
        self._do(self.model.open_settings)

    def _close_settings(self) -> None:
        self.guide.hush()  # staff leaving the settings: the start page is not announced to them
        self._do(self.model.close_settings)

    def _pin(self, pin: str) -> None:
        ok, message = self.model.enter_pin(pin)
        self.pin_page.message.setText("" if ok else message(self.model.language))
        if ok:
            cfg = self.printer.config
            self.settings_page.load(self.printer_spec, cfg.paper_mm if cfg else 80,
                                    cfg.mode if cfg else "raster")
            self.settings_page.result.setText("")
            log.info("settings opened")
        self.redraw()

    def _apply_printer(self, spec: str, paper: int, mode: str) -> None:
        from queuehall.kiosk.model import KioskConfigError, parse_printer_spec

        self._touched()
        lang = self.model.language
        try:
            values = parse_printer_spec(spec)
            old = self.printer.config
            extra = {} if old is None or old.backend != values["backend"] else {"profile": old.profile}
            config = PrinterConfig.from_dict({**values, **extra, "paper_mm": paper, "mode": mode})
        except (KioskConfigError, PrinterError) as err:
            self.settings_page.result.setText(err.zh if lang == "zh" else err.en)
            return
        self.printer_spec = spec
        job = self.printer.configure(config)

        def configured(outcome: Any) -> None:
            self._show_result(outcome, Bi("打印机已设置", "Printer set"))
            self._poll()

        self.controller.expect_job(job, configured)
        log.info("printer set to %s (%s, %d mm)", spec, mode, paper)

    def _test_print(self) -> None:
        self._touched()
        job = self.printer.test_print()
        self.controller.expect_job(job, lambda outcome: self._show_result(outcome, Bi("测试页已打印",
                                                                                   "Test page printed")))

    def _staff_reprint(self, ticket: str) -> None:
        """Settings: order a reprint of ``ticket`` at this kiosk (printed when the order comes back)."""
        self._touched()
        if not ticket.strip():
            return

        def done(reply: Any) -> None:
            lang = self.model.language
            if reply.get("status") == "ok":
                label = (reply.get("result") or {}).get("ticket", {}).get("label", ticket)
                text = Bi(f"已下达补打 {label}，即将打印", f"Reprint of {label} ordered; printing now")(lang)
            elif reply.get("status") == "error":
                err = reply.get("error") or {}
                text = f"{err.get('code')} · {err.get('message_zh') if lang == 'zh' else err.get('message_en')}"
            else:
                text = Bi("叫号服务器没有响应，请重试", "The ticket server did not answer; try again")(lang)
            self.settings_page.result.setText(text)

        self.controller.order_reprint(ticket, done)

    def _show_result(self, outcome: Any, ok_text: Bi) -> None:
        lang = self.model.language
        if isinstance(outcome, PrinterError | TicketError):
            text = f"{outcome.code} · {outcome.zh if lang == 'zh' else outcome.en}"
        elif isinstance(outcome, Exception):
            text = f"{type(outcome).__name__}: {outcome}"
        else:
            text = ok_text(lang)
        self.settings_page.result.setText(text)
        self.redraw()

    def _quit(self) -> None:
        log.info("kiosk quit from the settings")
        self.allow_close = True
        self.quit_app()

    # ------------------------------------------------------------------ drawing

    def _flow_timeout(self) -> None:
        self.model.on_timeout()  # whoever comes next starts clean, in the default language
        self._timer_key = None
        self.guide.hush()  # the citizen has gone: the start page is not announced to an empty hall
        self.redraw()

    def _arm_still_there(self, delay: int) -> None:
        if self.model.screen in (Screen.DETAILS, Screen.CHECKIN) and not self.model.busy \
                and delay > 2 * STILL_THERE_MS:
            self.still_timer.start(delay - STILL_THERE_MS)
        else:
            self.still_timer.stop()

    def _still_there(self) -> None:
        """An idle details page or keypad: ask aloud whether the citizen is still there, before giving up."""
        if self.model.voice_on and self.model.screen in (Screen.DETAILS, Screen.CHECKIN) and not self.model.busy:
            self.guide.say(still_there(self.model))

    def _tick(self) -> None:
        self.redraw()

    def _timer_for(self, screen: Screen) -> int | None:
        return self.model.timeout_ms(screen)

    def redraw(self) -> None:
        """Show the model's screen and refresh its texts."""
        m = self.model
        if m.large_text != self._large:
            self.rescale()
        screen = m.screen
        lang = m.language
        delay = self._timer_for(screen)
        # (Re)arm on a new page or phase, and when a page turns from clean to not (English chosen on
        # the start page) or back: the start, closed and out-of-service pages time out only then.
        key = (screen, m.phase if screen == Screen.DETAILS else None, delay is None)
        if key != self._timer_key:
            self._timer_key = key
            if delay is None:
                self.flow_timer.stop()
                self.still_timer.stop()
            else:
                self.flow_timer.start(delay)
                self._arm_still_there(delay)
                self._deadline = time.monotonic() + delay / 1000
        self.header.refresh(m, show_language=screen not in (Screen.PIN, Screen.SETTINGS))
        if screen == Screen.START:
            self.start_page.refresh(m)
        elif screen == Screen.DETAILS:
            self.details_page.refresh(m)
        elif screen == Screen.CONFIRMATION:
            left = max(0, math.ceil(self._deadline - time.monotonic())) if self.flow_timer.isActive() else 0
            self.confirm_page.refresh(m, left)
        elif screen == Screen.CLOSED:
            info = m.closed_info()
            if info is not None:
                reason, when = info
                body = Bi(f"下次取号时间：{when.zh}", f"Tickets again from {when.en}") if when else \
                    Bi("请留意大厅公告", "Please see the hall notices")
                self.closed_page.show_notice(lang, reason, body, button=CHECKIN_TITLE)
        elif screen == Screen.OUT_OF_SERVICE:
            reason, detail = m.out_of_service_reason()
            if detail.startswith("BROKER_"):
                detail = f"{detail} · {self.broker_label}"
            self.out_page.show_notice(lang, OUT_OF_SERVICE, reason, m.go_for_help(), detail=detail)
        elif screen == Screen.ASK_STAFF:
            reason, detail = m.ask_staff_reason()
            paused = Bi(f"暂停取号。{m.go_for_help().zh}", f"Tickets are paused. {m.go_for_help().en}")
            self.staff_page.show_notice(lang, ASK_STAFF, reason, paused, detail=detail)
        elif screen == Screen.PRINT_FAILED:
            left = max(0, math.ceil(self._deadline - time.monotonic())) if self.flow_timer.isActive() else 0
            self.failed_page.refresh(m, left)
        elif screen == Screen.MESSAGE and m.message is not None:
            self.message_page.show_notice(lang, m.message.title, m.message.body, "", Bi("返回", "Back"))
        elif screen == Screen.PIN:
            self.pin_page.refresh(lang)
        elif screen == Screen.SETTINGS:
            self.settings_page.refresh(m, self.broker_label)
        left = max(0, math.ceil(self._deadline - time.monotonic())) if self.flow_timer.isActive() else 0
        self.checkin.refresh(screen, left)
        self.stack.setCurrentWidget(self.pages[screen])
        if screen != self._last_screen:
            self._last_screen = screen
            self.screen_changed.emit(str(screen))
        if m.phase != self._last_phase:
            self._last_phase = m.phase
            self.phase_changed.emit(str(m.phase))
        # The step's spoken prompt (a new step only; it stops the one before).
        self.guide.follow(m, present=self.someone_there, enabled=m.voice_on, touches=self._touches)
        if self.guide.deferred is not None and not self.wait_timer.isActive():
            self.wait_timer.start(WAIT_PROMPT_MS)
        if not self._was_ready and m.state and m.printer.code != "PRINTER_UNKNOWN":
            self._was_ready = True
            self.ready.emit()

