// The city page (docs/web.md): every hall's queues live over Server-Sent Events; the citizen picks a service
// and the halls are ordered by its estimated wait, the shortest marked. Every value is set as text.
"use strict";
(function () {
  var halls = [], chosen = decodeURIComponent((location.hash.match(/svc=([^&]+)/) || [])[1] || "");
  var box = document.getElementById("halls"), controls = document.getElementById("controls");
  var offline = document.getElementById("offline");
  function el(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text != null) e.textContent = String(text); return e; }
  function pair(tag, cls, t) { var e = el(tag, cls, t.zh); e.appendChild(el("span", "en", t.en)); return e; }
  function when(iso, tz) {  // the next opening on the hall's clock: "12-08 08:30"
    if (!iso) return "";
    try {
      var p = new Intl.DateTimeFormat("zh-CN", {timeZone: tz || "Asia/Shanghai", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", hour12: false}).formatToParts(new Date(iso)), o = {};
      p.forEach(function (x) { o[x.type] = x.value; });
      return o.month + "-" + o.day + " " + o.hour + ":" + o.minute;
    } catch (e) { return iso; }
  }
  function services() {  // every service any hall offers, in the first hall's order
    var seen = {}, out = [];
    halls.forEach(function (h) { h.services.forEach(function (s) { if (!seen[s.code]) { seen[s.code] = 1; out.push(s); } }); });
    return out;
  }
  function svc(h) { for (var i = 0; i < h.services.length; i++) if (h.services[i].code === chosen) return h.services[i]; return null; }
  function usable(h) { var s = svc(h); return h.connected && h.open && (!chosen || (s && s.issue_state === "open")); }
  function rank(h) { var s = svc(h); return chosen ? (s ? s.estimated_wait_minutes : 1e9) : h.waiting; }
  function renderControls() {
    var list = services(), sel = controls.querySelector("select");
    var key = list.map(function (s) { return s.code; }).join(",");
    if (sel && sel.getAttribute("data-key") === key) return;
    controls.innerHTML = "";
    var label = pair("label", "", {zh: "我要办理", en: "I need"});
    sel = el("select"); sel.setAttribute("data-key", key); sel.id = "service";
    var all = el("option", "", "全部业务 All services"); all.value = ""; sel.appendChild(all);
    list.forEach(function (s) { var o = el("option", "", s.name.zh + " " + s.name.en); o.value = s.code; sel.appendChild(o); });
    sel.value = chosen;
    sel.onchange = function () { chosen = sel.value; location.hash = chosen ? "svc=" + encodeURIComponent(chosen) : ""; render(); };
    label.appendChild(sel); controls.appendChild(label);
  }
  function card(h, best) {
    var st = !h.connected ? "offline" : h.open ? "open" : "closed";
    var c = el("section", "hall st-" + st + (best ? " best" : "")); c.setAttribute("data-key", h.key);
    var title = pair("h2", "", h.name);
    if (best) title.insertBefore(el("span", "best-tag", "等候最短 Shortest wait"), title.lastChild);
    c.appendChild(title);
    if (h.address) c.appendChild(pair("p", "addr", h.address));
    var line = !h.connected ? {zh: "暂时无法连接", en: "Unreachable"} : h.open
      ? {zh: "办公中 · 等候 " + h.waiting + " 人", en: "Open · " + h.waiting + " waiting"}
      : {zh: "暂停办公" + (h.next_open ? " · 下次开放 " + when(h.next_open, h.timezone) : ""),
         en: "Closed" + (h.next_open ? " · opens " + when(h.next_open, h.timezone) : "")};
    c.appendChild(pair("p", "state", line));
    var t = el("table"), b = t.createTBody();
    h.services.forEach(function (s) {
      if (chosen && s.code !== chosen) return;
      var r = b.insertRow(); r.setAttribute("data-code", s.code); if (s.code === chosen) r.className = "pick";
      r.insertCell().appendChild(pair("span", "", s.name));
      var w = r.insertCell(); w.className = "n"; w.textContent = s.waiting + " 人";
      var m = r.insertCell(); m.className = "n";
      if (s.issue_state !== "open") {
        m.appendChild(pair("span", "", s.next_open ? {zh: when(s.next_open, h.timezone) + " 起取号", en: "from " + when(s.next_open, h.timezone)}
                                                     : {zh: "今日停止取号", en: "Not issuing today"}));
      } else {
        m.appendChild(pair("span", "", s.estimated_wait_minutes ? {zh: "约 " + s.estimated_wait_minutes + " 分钟", en: "~" + s.estimated_wait_minutes + " min"}
                                                                : {zh: "无需等候", en: "No wait"}));
      }
    });
    c.appendChild(t);
    return c;
  }
  function render() {
    renderControls();
    var order = halls.slice().sort(function (a, b) {
      return (usable(b) - usable(a)) || (rank(a) - rank(b)) || (a.name.zh < b.name.zh ? -1 : 1);
    });
    var frag = document.createDocumentFragment();
    order.forEach(function (h, i) { frag.appendChild(card(h, i === 0 && usable(h) && order.length > 1)); });
    box.innerHTML = ""; box.appendChild(frag);
  }
  if (!window.EventSource) return;
  var es = new EventSource("/api/v1/city/events");
  es.onopen = function () { offline.hidden = true; };
  es.onmessage = function (e) { try { halls = JSON.parse(e.data).halls; render(); } catch (err) { /* wait */ } };
  es.addEventListener("halls", function (e) {
    try {
      JSON.parse(e.data).halls.forEach(function (h) {
        for (var i = 0; i < halls.length; i++) if (halls[i].key === h.key) { halls[i] = h; return; }
        halls.push(h);
      });
      render();
    } catch (err) { /* wait for the next */ }
  });
  es.onerror = function () { offline.hidden = false; };
})();
