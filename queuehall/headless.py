"""``queuehall demo --headless --out DIR``: a simulated busy morning, through the real parts, offscreen.

One process holds the real broker (on loopback, with fresh CurveZMQ keys and an
SQLite database in DIR), the real kiosk, two counter windows (a passport window and
the fee window) and the hall display, all as Qt widgets on the offscreen platform.
:class:`queuehall.simulation.HallSimulation` advances the hall's clock and acts:
citizens tap the kiosk (which prints through a file printer), clerks at the two GUI
counters press their buttons, the other counters are driven over the protocol.

It leaves in DIR: ``screens/`` (kiosk, counters and display at several moments),
``tickets/`` (every printed ticket decoded back from its ESC/POS bytes to PNG),
``announcements/`` (the first announcements as WAV) and ``announcements.jsonl`` (all
of them), ``kiosk-voice/`` and ``kiosk-voice.jsonl`` (the kiosk's spoken guidance: the first prompts as WAV,
and every prompt with its step and language), ``events.jsonl`` (the broker's event log), ``summary.txt`` and
``summary.json`` (wait and service times per service), ``hall.db``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

GUI_COUNTERS = (1, 11)
SAVED_WAVS = 12  # each announcement is ~10 s of audio; the rest are listed in announcements.jsonl
SAVED_PROMPTS = 8  # the kiosk's first prompts as WAV (one citizen's visit); all are in kiosk-voice.jsonl


class _Spinner:
    """Runs the Qt event loop until a condition holds (the screens answer asynchronously)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def until(self, cond: Any, timeout: float = 5.0) -> bool:
        from PySide6.QtCore import QEventLoop

        deadline = time.monotonic() + timeout
        while not cond():
            self.app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5)
            if time.monotonic() > deadline:
                return False
            time.sleep(0.0005)
        self.app.processEvents()
        return True


def run_headless(args: argparse.Namespace) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from queuehall.broker import keys
    from queuehall.broker.config import DEFAULT_CONFIG, ConfigError, load_config
    from queuehall.broker.reports import ReportBuilder, to_table
    from queuehall.broker.server import Broker
    from queuehall.broker.storage import load_hall, open_store
    from queuehall.client import BrokerClient, Security
    from queuehall.clock import ManualClock
    from queuehall.demo import free_port, local_day
    from queuehall.simulation import HallSimulation, install_demo_pins

    try:
        config = load_config(args.config or DEFAULT_CONFIG)
    except ConfigError as err:
        print(f"queuehall demo: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    for sub in ("screens", "tickets", "announcements", "kiosk-voice", "printer"):
        (out / sub).mkdir(parents=True)
    # The printed tickets' QR codes lead to this demo's web gateway (docs/web.md).
    web_port = free_port()
    config = replace(config, public_base_url=f"http://127.0.0.1:{web_port}")
    tz = ZoneInfo(config.timezone)
    day = local_day(config, args.day)
    clock = ManualClock(datetime(day.year, day.month, day.day, 8, 0, tzinfo=tz))
    kdir = out / "keys"
    keys.init_keys(kdir)
    for name, role, counter in (("kiosk-1", "kiosk", None), ("wall-1", "display", None),
                                ("simulator", "admin", None), ("web-1", "web", None),
                                *((f"counter-{n}", "counter", n) for n in GUI_COUNTERS)):
        keys.add_device(kdir, name, role, counter)

    def security(name: str) -> Security:
        return Security.from_files(str(kdir / "secret" / f"{name}.key_secret"), str(kdir / "broker.key"))

    store = open_store(f"sqlite:///{(out / 'hall.db').resolve()}", sqlite_synchronous="NORMAL")
    install_demo_pins(store, config)
    hall = load_hall(config, clock, store)
    port = args.port or free_port()
    while port + 1 == web_port or port == web_port:  # the broker binds N and N+1
        port = free_port()
    broker = Broker(hall, host="127.0.0.1", port=port, keys_dir=kdir)
    broker.bind()
    thread = threading.Thread(target=broker.serve_forever, name="broker", daemon=True)
    thread.start()
    endpoint = f"127.0.0.1:{port}"
    print(f"queuehall demo (headless): simulating {day} in {config.name.zh} on {endpoint}; evidence in {out}/",
          flush=True)
    screens = _Screens(config, endpoint, security, clock, broker, out)
    from queuehall.web.main import GatewayThread, make_hub

    gateway = GatewayThread(make_hub(endpoint, security("web-1"), "web-1"), "127.0.0.1", web_port)
    try:
        gateway.start()
        print(f"  web gateway: {gateway.url}/ (ticket pages behind the QR codes)", flush=True)
        screens.start()
        client = BrokerClient(endpoint, client_id="simulator", security=security("simulator"), timeout=5)
        sim = HallSimulation(config, client, clock, day=day, end=args.until, seed=args.seed,
                             take=screens.take, after_action=screens.after_action,
                             gui_counters={n: screens.counter_command(n) for n in GUI_COUNTERS})
        screens.sim = sim
        sim.plan()
        for n in GUI_COUNTERS:
            sim.at(sim.start - timedelta(minutes=1), f"gui sign in {n}", partial(screens.sign_in, n))
        screens.plan_shots(sim, args.shots)
        stats = sim.run(progress=lambda at, st: print(
            f"  {at.astimezone(tz):%H:%M}  issued {st.issued:4d}  called {st.calls:4d}  finished {st.finished:4d}  "
            f"no-show {st.no_shows:3d}  transfers {st.transfers:3d}  announcements {screens.announced:4d}",
            flush=True))
        screens.shoot_all("end")
        client.close()
        _save_ticket_page(screens.first_page, out / "web")
    finally:
        gateway.stop()
        screens.stop()
        broker.stop_event.set()
        thread.join(10)
    screens.write_announcements()
    n_tickets = _render_tickets(out / "printer", out / "tickets")
    with open(out / "events.jsonl", "w", encoding="utf-8") as f:
        last = 0
        while batch := store.events_since(last, limit=5000):
            for ev in batch:
                f.write(json.dumps(ev, ensure_ascii=False) + "\n")
            last = batch[-1]["seq"]
    rep = ReportBuilder(store.engine, config).build(day, day, "service", now=clock.now())
    (out / "summary.txt").write_text(to_table(rep), encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(rep.to_dict(), ensure_ascii=False, indent=2, default=str),
                                      encoding="utf-8")
    store.close()
    shots = len(list((out / "screens").glob("*.png")))
    print(f"done: {stats.issued} tickets issued ({n_tickets} printed and rendered), {stats.calls} calls, "
          f"{stats.finished} finished, {stats.no_shows} no-shows, {stats.transfers} transfers, "
          f"{screens.announced} announcements, {shots} screenshots -> {out}/", flush=True)
    if stats.errors:
        print(f"unexpected refusals: {stats.errors[:10]}", file=sys.stderr)
    ok = n_tickets > 0 and shots > 0 and screens.announced > 0
    return 0 if ok else 1


def _save_ticket_page(url: str | None, out: Path) -> None:
    """The first printed ticket's page and its API answer at the end of the day, as evidence (web/)."""
    import urllib.request

    if not url:
        return
    out.mkdir(parents=True, exist_ok=True)
    token = url.rsplit("/", 1)[1]
    base = url.rsplit("/t/", 1)[0]
    for name, address in (("ticket-page.html", url), ("ticket.json", f"{base}/api/v1/tickets/{token}")):
        try:
            with urllib.request.urlopen(address, timeout=5) as r:
                (out / name).write_bytes(r.read())
        except OSError as err:
            print(f"demo: could not save {address}: {err}", file=sys.stderr)


def _render_tickets(printer_dir: Path, out: Path) -> int:
    """Decode every printed ticket's ESC/POS bytes back into a picture of the paper."""
    from queuehall.tools.escpos_decode import decoded_to_png

    n = 0
    for path in sorted(printer_dir.glob("*.bin")):
        decoded_to_png(path.read_bytes(), str(out / (path.stem + ".png")))
        n += 1
    return n


class _Screens:
    """The kiosk, two counter windows and the hall display, offscreen, and what they produced."""

    def __init__(self, config: Any, endpoint: str, security: Any, clock: Any, broker: Any, out: Path) -> None:
        self.config = config
        self.endpoint = endpoint
        self.security = security
        self.clock = clock
        self.broker = broker
        self.out = out
        self.sim: Any = None
        self.announced = 0
        self.sink: Any = None  # the hall display's recording sink, once it is made
        self.calls_log: list[dict[str, Any]] = []
        self.counters: dict[int, tuple[Any, Any, Any]] = {}
        self.shot_no = 0
        self.first_page: str | None = None  # the first printed ticket's page on the web gateway

    def start(self) -> None:
        from PySide6.QtCore import qInstallMessageHandler
        from PySide6.QtWidgets import QApplication

        from queuehall.counter.model import CounterModel
        from queuehall.counter.window import CounterWindow
        from queuehall.kiosk.model import KioskModel, KioskSettings
        from queuehall.kiosk.printing import PrinterConfig
        from queuehall.kiosk.window import KioskWindow, PrintService
        from queuehall.qtlink import QtLink

        def quiet(mode: Any, context: Any, message: str) -> None:
            # The offscreen platform says this for every window; it means nothing here.
            if "propagateSizeHints" not in message:
                print(message, file=sys.stderr)

        qInstallMessageHandler(quiet)
        self.app = QApplication.instance() or QApplication(["queuehall-demo"])
        self.spin = _Spinner(self.app)
        link = QtLink(self.endpoint, role="kiosk", name="kiosk-1", security=self.security("kiosk-1"))
        settings = KioskSettings(return_ms=60_000, message_ms=60_000, idle_ms=600_000, status_ms=600_000)
        model = KioskModel(settings=settings, clock=self.clock.now)
        printer = PrintService(PrinterConfig(backend="file", path=str(self.out / "printer"), mode="raster",
                                             paper_mm=80))
        from queuehall.voice.sink import RecordingSink

        # No sound from a headless demo: the kiosk's spoken guidance goes to a recorder.
        self.kiosk = KioskWindow(link, printer, model, printer_spec=f"file:{self.out / 'printer'}",
                                 broker_label=self.endpoint, audio=RecordingSink())
        self.kiosk.resize(1920, 1080)
        self.kiosk.show()
        self.kiosk.start()
        for n in GUI_COUNTERS:
            clink = QtLink(self.endpoint, role="counter", name=f"counter-{n}", counter=n,
                           security=self.security(f"counter-{n}"))
            cmodel = CounterModel(n, clink.request, self.clock, lang="zh")
            window = CounterWindow(clink, cmodel)
            window.resize(1366, 860)
            window.show()
            window.start()
            self.counters[n] = (window, cmodel, clink)
        self.display = _make_display(self)
        links = [self.kiosk.link, *(c[2] for c in self.counters.values()), *self.display_links()]
        self.links = links
        if not self.spin.until(lambda: all(lk.link.mirror.synced for lk in links), timeout=20):
            raise RuntimeError("the screens did not connect to the broker")

    def display_links(self) -> list[Any]:
        return [self.display.link] if self.display is not None else []

    def synced(self) -> bool:
        """Every screen has applied every event the broker published."""
        seq = self.broker.seq
        return all(lk.link.mirror.synced and lk.link.mirror.seq >= seq for lk in self.links)

    def settle(self) -> None:
        self.spin.until(self.synced, timeout=5)
        self.display_tick()

    def stop(self) -> None:
        for closer in (lambda: self.kiosk.shutdown(), *(lambda c=c: c[2].stop() for c in self.counters.values()),
                       lambda: _stop_display(self)):
            try:
                closer()
            except Exception as exc:  # keep stopping the rest
                print(f"demo: stopping a screen failed: {exc}", file=sys.stderr)

    # ------------------------------------------------------------------ the kiosk: citizens tap

    def take(self, service: str, priority: str | None) -> dict[str, Any] | None:
        """A citizen at the kiosk: tap the department, the service, maybe the green channel, confirm."""
        from queuehall.kiosk.model import Phase, Screen

        w = self.kiosk
        m = w.model
        self.spin.until(lambda: m.screen == Screen.START and not m.busy, timeout=5)
        if m.screen != Screen.START:
            return None
        svc = self.config.service(service)
        w._do(m.select_department, svc.department)
        if not m.tap_service(service):
            return None
        w.redraw()
        if priority:
            w._do(m.choose_priority, priority)
        w.confirm()
        done = self.spin.until(lambda: m.phase in (Phase.CONFIRMATION, Phase.MESSAGE, Phase.PRINT_FAILED),
                               timeout=10)
        if self.shot_no == 0 and m.phase == Phase.CONFIRMATION:
            self.shoot(self.kiosk, "kiosk-confirmation")
        issued = m.issued.ticket if (done and m.phase == Phase.CONFIRMATION and m.issued) else None
        if issued and self.first_page is None and m.issued and m.issued.url:
            self.first_page = m.issued.url
            print(f"  a ticket's page on the web (its QR code): {self.first_page}", flush=True)
        w._do(m.back_to_start, reset_language=True)
        self.settle()
        return {"ticket": issued} if issued else None

    # ------------------------------------------------------------------ the two GUI counters: clerks press

    def sign_in(self, n: int) -> None:
        _window, model, _ = self.counters[n]
        cfg = self.config.counter(n)
        from queuehall.simulation import DEMO_PINS

        model.sign_in(cfg.clerk_a, DEMO_PINS[cfg.clerk_a])
        self.spin.until(lambda: not model.busy and model.signed_in, timeout=5)
        self.sim.sessions.pop(n, None)
        self.settle()

    def counter_command(self, n: int) -> Any:
        def run(type_: str, args: dict[str, Any]) -> dict[str, Any] | None:
            window, model, _ = self.counters[n]
            if type_ == "sign_in":
                return {"session": model.session} if model.signed_in else None
            before = (model.counter_record() or {}).get("ticket")
            if type_ in ("call_next", "recall", "no_show", "start", "finish", "resume"):
                window.trigger(type_, confirmed=True)  # the scripted clerk has already decided
            elif type_ == "pause":
                model.pause(args["reason"])
            elif type_ == "transfer":
                model.transfer(args.get("service"), args.get("to_counter"), args.get("note") or "")
            else:
                raise ValueError(f"the demo does not drive {type_} through the counter screen")
            self.spin.until(lambda: not model.busy, timeout=5)
            self.settle()
            window.refresh()
            after = (model.counter_record() or {}).get("ticket")
            if type_ == "call_next":
                return {"ticket": after} if after else None
            if type_ == "recall":
                return {"no_show": after is None} if before else None
            if type_ in ("start",):
                return {} if after and after.get("status") == "serving" else None
            if type_ in ("finish", "transfer", "no_show"):
                return {} if before and not after else None
            state = (model.counter_record() or {}).get("state")
            return {} if (type_ == "pause") == (state == "paused") else None

        return run

    # ------------------------------------------------------------------ the display and evidence

    def after_action(self, at: datetime, name: str) -> None:
        self.settle()
        for when, label in list(self.pending_shots):
            if at >= when:
                self.pending_shots.remove((when, label))
                self.shoot_all(label)

    def display_tick(self) -> None:
        _tick_display(self)

    def plan_shots(self, sim: Any, count: int) -> None:
        tz = ZoneInfo(self.config.timezone)
        start = sim.start.astimezone(tz)
        span = max(timedelta(minutes=30), sim.end - sim.start)
        self.pending_shots = [(start + span * (i + 1) / (count + 1), f"t{i + 1}") for i in range(count)]

    def shoot(self, widget: Any, name: str) -> None:
        widget.grab().save(str(self.out / "screens" / f"{name}.png"))
        self.shot_no += 1

    def shoot_all(self, label: str) -> None:
        hhmm = self.clock.now().astimezone(ZoneInfo(self.config.timezone)).strftime("%H%M")
        self.settle()
        self.shoot(self.kiosk, f"{hhmm}-{label}-kiosk")
        for n, (window, _m, _l) in self.counters.items():
            window.refresh()
            self.shoot(window, f"{hhmm}-{label}-counter-{n}")
        if self.display is not None:
            self.shoot(self.display, f"{hhmm}-{label}-display")

    def write_announcements(self) -> None:
        _write_announcements(self)
        _write_prompts(self.out, self.kiosk)


# The display's construction lives apart so the demo degrades clearly if it changes.

def _make_display(screens: _Screens) -> Any:
    from queuehall.display.demo_display import DemoDisplayWindow
    from queuehall.voice.sink import RecordingSink

    sink = RecordingSink(auto_finish=True)
    screens.sink = sink
    window = DemoDisplayWindow.for_demo(screens.endpoint, security=screens.security("wall-1"), sink=sink)
    window.resize(1920, 1080)
    window.show()
    window.start()
    return window


def _tick_display(screens: _Screens) -> None:
    if screens.display is not None:
        screens.display.demo_tick()
        screens.announced = len(screens.sink.played)


def _stop_display(screens: _Screens) -> None:
    if screens.display is not None:
        screens.display.shutdown()


def _write_prompts(out: Path, kiosk: Any) -> None:
    """The kiosk's spoken guidance, as its recording sink kept it (one WAV per prompt, in order)."""
    prompts, clips = kiosk.guide.played, getattr(kiosk.guide.sink, "played", [])
    with open(out / "kiosk-voice.jsonl", "w", encoding="utf-8") as f:
        for i, (prompt, clip) in enumerate(zip(prompts, clips, strict=False)):
            meta: dict[str, Any] = {"n": i + 1, "step": prompt.name, "lang": prompt.lang,
                                    "said": " ".join(k.split(":", 1)[-1] for k in prompt.keys),
                                    "seconds": round(clip.duration, 2), "cut_off": clip.cut_off}
            if i < SAVED_PROMPTS:
                name = f"{i + 1:03d}-{prompt.name}-{prompt.lang}.wav"
                (out / "kiosk-voice" / name).write_bytes(clip.wav)
                meta["file"] = f"kiosk-voice/{name}"
            f.write(json.dumps(meta, ensure_ascii=False) + "\n")


def _write_announcements(screens: _Screens) -> None:
    if screens.display is None:
        return
    cards = screens.display.model.announced  # the calls handed to the announcer, in the order played
    with open(screens.out / "announcements.jsonl", "w", encoding="utf-8") as f:
        for i, clip in enumerate(screens.sink.played):
            meta: dict[str, Any] = {"n": i + 1, "seconds": round(clip.duration, 2), "cut_off": clip.cut_off}
            if i < len(cards):
                card = cards[i]
                meta.update({"label": card.label, "counter": card.counter, "kind": card.kind,
                             "text_zh": card.text_zh, "called_at": card.at.isoformat() if card.at else None})
            if i < SAVED_WAVS:
                name = f"{i + 1:03d}-{meta.get('label', 'call')}-{meta.get('counter', '')}.wav"
                (screens.out / "announcements" / name).write_bytes(clip.wav)
                meta["file"] = f"announcements/{name}"
            f.write(json.dumps(meta, ensure_ascii=False) + "\n")
