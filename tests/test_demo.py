"""The headless demo, run as a newcomer would: the real command, then the evidence it leaves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image
from queuehall.voice.pack import rms

ROOT = Path(__file__).resolve().parent.parent


def test_short_headless_demo_leaves_evidence(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-m", "queuehall.cli", "demo", "--headless", "--out", str(out),
                           "--day", "2026-11-24", "--until", "08:45", "--shots", "2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "issued" in proc.stdout  # progress is shown while it runs

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    issued = summary["tickets"]["issued"]
    assert issued > 5

    # Every printed ticket, decoded from its ESC/POS bytes, as a picture of the paper.
    tickets = sorted((out / "tickets").glob("*.png"))
    assert len(tickets) == issued
    with Image.open(tickets[0]) as img:
        assert img.width == 576 and img.height > 600
        assert img.convert("L").getextrema()[0] == 0  # ink on the paper

    # Screens of the kiosk, both counters and the display at several moments.
    shots = {p.name for p in (out / "screens").glob("*.png")}
    for screen in ("kiosk", "counter-1", "counter-11", "display"):
        assert sum(name.endswith(f"-{screen}.png") for name in shots) >= 3, (screen, shots)
    with Image.open(next((out / "screens").glob("*-display.png"))) as img:
        assert img.size == (1920, 1080)

    # Announcements: audible WAVs, and a log of every one with what was said.
    wavs = sorted((out / "announcements").glob("*.wav"))
    assert wavs and rms(wavs[0].read_bytes()) > 0.02
    said = [json.loads(line) for line in (out / "announcements.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(said) >= len(wavs) and all(not a["cut_off"] for a in said)
    assert said[0]["text_zh"].startswith("请 ")
    # The kiosk's spoken guidance as each simulated citizen tapped through: audible, in order, ending in
    # "take your ticket" with the number.
    prompts = [json.loads(line) for line in (out / "kiosk-voice.jsonl").read_text(encoding="utf-8").splitlines()]
    steps = [p["step"] for p in prompts]
    assert steps[:2] == ["start", "details"] and steps.count("confirmation") >= issued - 1, steps[:12]
    assert any(p["said"].startswith("请取走号票 , 您的号码是") for p in prompts)
    voice = sorted((out / "kiosk-voice").glob("*.wav"))
    assert voice and all(rms(w.read_bytes()) > 0.02 for w in voice)

    # The broker's event log covers the morning, numbered without gaps.
    events = [json.loads(line) for line in (out / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert sum(e["type"] == "ticket_issued" for e in events) == issued
    assert any(e["type"] == "ticket_transferred" for e in events) or issued < 20
    assert (out / "summary.txt").read_text(encoding="utf-8").startswith("queuehall report")
