// The ticket page (docs/web.md): follows its ticket over Server-Sent Events and chimes when called.
"use strict";
(function () {
  var root = document.documentElement, app = document.getElementById("app");
  if (!app) return;
  var token = app.getAttribute("data-token"), last = JSON.parse(app.getAttribute("data-state") || "null");
  var audio = null, soundBtn = document.getElementById("sound");
  function $(id) { return document.getElementById(id); }
  function pair(id, t) { var el = $(id); if (el && t) { el.firstChild.nodeValue = t.zh; el.lastChild.textContent = t.en; } }
  function render(s) {
    var card = $("card");
    card.className = "card main status-" + s.status;
    $("num").textContent = s.label;
    pair("svc", s.service);
    pair("head", s.headline);
    pair("detail", s.detail);
    root.className = s.connected ? "" : "offline";
    var mats = $("materials");
    if (mats) mats.hidden = !s.active || !s.materials.length;
    if (soundBtn && !s.active) soundBtn.hidden = true;  // nothing left to be called for
  }
  function chime() {
    // A beep made here (no sound file): two short tones. Browsers allow it once the page was touched.
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      [0, 0.35].forEach(function (at, i) {
        var o = audio.createOscillator(), g = audio.createGain(), t = audio.currentTime + at;
        o.frequency.value = i ? 660 : 880; o.connect(g); g.connect(audio.destination);
        g.gain.setValueAtTime(0.0001, t); g.gain.exponentialRampToValueAtTime(0.4, t + 0.02);
        g.gain.exponentialRampToValueAtTime(0.0001, t + 0.3); o.start(t); o.stop(t + 0.32);
      });
    } catch (e) { /* no audio here: the page still changes */ }
    if (navigator.vibrate) navigator.vibrate([300, 150, 300]);
  }
  function update(s) {
    var called = s.status === "called" && (!last || last.status !== "called" || s.calls > last.calls);
    render(s);
    if (called) { chime(); document.title = s.headline.zh + " · " + s.label; }
    // Finished: the page (rendered by the gateway) now carries the 好差评 form.
    var rate = s.status === "finished" && last && last.status !== "finished" && !$("rating");
    last = s;
    if (rate) location.reload();
  }
  if (soundBtn && last && last.active) {
    soundBtn.hidden = false;
    soundBtn.onclick = function () {  // a touch unlocks WebAudio on phones
      try { audio = audio || new (window.AudioContext || window.webkitAudioContext)(); audio.resume(); } catch (e) {}
      soundBtn.hidden = true;
    };
  }
  if (!window.EventSource) return;
  // patch=1: the whole state first, then only the fields that changed ("patch" events).
  var es = new EventSource((app.getAttribute("data-base") || "") + "/api/v1/tickets/" + encodeURIComponent(token) + "/events?patch=1"), lost = null;
  es.onmessage = function (e) {
    clearTimeout(lost); lost = null;
    try { update(JSON.parse(e.data)); } catch (err) { /* a bad message: wait for the next */ }
  };
  es.addEventListener("patch", function (e) {
    clearTimeout(lost); lost = null;
    try {
      var p = JSON.parse(e.data), s = {}, k;
      for (k in last) s[k] = last[k];
      for (k in p) s[k] = p[k];
      update(s);
    } catch (err) { /* a bad message: wait for the next */ }
  });
  es.addEventListener("gone", function () { es.close(); location.reload(); });
  es.onerror = function () {
    // The gateway itself is out of reach: say so after a moment; EventSource reconnects by itself.
    if (!lost) lost = setTimeout(function () { root.className = "offline"; }, 3000);
  };
})();
