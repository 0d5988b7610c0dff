// The manager's supervision page (docs/supervision.md): the hall live over Server-Sent Events, alerts with an
// acknowledge button. Every value is set as text (never as HTML).
"use strict";
(function () {
  function $(id) { return document.getElementById(id); }
  // The page's own address prefix (a hall of a city gateway: /h/<hall>/supervision).
  var base = ($("sup") && $("sup").getAttribute("data-base")) || "/supervision";
  function cell(row, text, cls) { var td = row.insertCell(); td.textContent = text == null ? "—" : String(text); if (cls) td.className = cls; return td; }
  function head(table, names) { var r = table.createTHead().insertRow(); names.forEach(function (n) { var th = document.createElement("th"); th.textContent = n; r.appendChild(th); }); }
  var RULES = {wait_over_target: "等候超时 Wait over target", counter_paused: "暂停过长 Paused too long",
    no_open_counter: "无开放窗口 No open counter", counter_unstaffed: "窗口无人 Counter unstaffed",
    device_offline: "设备离线 Device offline", printer_fault: "打印故障 Printer fault",
    bad_rating: "差评未回访 差评 not called back", case_overdue: "差评超期 Case overdue", calendar: "日历无官方数据 Calendar",
    promise_at_risk: "即办件今日办不完 On-the-spot queue past session end"};
  function subject(a) {
    var d = a.details || {};
    return [d.service, d.counter != null ? d.counter + "号窗口" : null, d.device, d.case != null ? "工单 " + d.case : null, d.label]
      .filter(function (x) { return x != null; }).join(" · ");
  }
  function local(iso, tz) {  // times are UTC on the wire; the hall reads its own time zone's clock
    if (!iso) return "";
    try { return new Date(iso).toLocaleString("zh-CN", {timeZone: tz, hour12: false}); } catch (e) { return iso; }
  }
  function hm(iso, tz) {  // HH:MM on the hall's clock
    if (!iso) return null;
    try { return new Date(iso).toLocaleTimeString("zh-CN", {timeZone: tz, hour12: false, hour: "2-digit", minute: "2-digit"}); } catch (e) { return iso; }
  }
  function pct(x) { return x == null ? "—" : (Math.round(x * 1000) / 10) + "%"; }
  function ack(key) {
    var note = window.prompt("处理说明 Note", "");
    if (!note) return;
    fetch(base + "/api/ack", {method: "POST", headers: {"content-type": "application/json"}, credentials: "same-origin",
      body: JSON.stringify({key: key, note: note})});
  }
  function render(v) {
    $("conn").textContent = v.connected ? " · 已连接 Online" : " · 连接中断 Offline";
    var t = $("alerts"); t.innerHTML = ""; head(t, ["告警 Alert", "对象 Subject", "时间 Since", "处理 Ack", ""]);
    var body = t.createTBody();
    v.alerts.forEach(function (a) {
      var r = body.insertRow(); r.className = "alert" + (a.ack ? " acked" : ""); r.setAttribute("data-key", a.key);
      cell(r, RULES[a.rule] || a.rule); cell(r, subject(a)); cell(r, local(a.raised_at, v.timezone));
      cell(r, a.ack ? (a.ack.note || "已确认 acknowledged") + (a.ack.by ? " (" + a.ack.by + ")" : "") : "");
      var b = document.createElement("button"); b.textContent = "确认 Acknowledge"; b.onclick = function () { ack(a.key); };
      r.insertCell().appendChild(b);
    });
    if (!v.alerts.length) { var r0 = body.insertRow(); cell(r0, "无告警 No alerts", "none"); }
    var f = v.figures, fig = $("figures"); fig.innerHTML = "";
    [["取号 Issued", f.issued], ["办结 Served", f.served], ["等候 Waiting", f.waiting],
     ["当天办结率 Same-day completion", pct(f.same_day_rate), f.same_day_rate != null && f.same_day_rate < 0.8],
     ["好评率 Satisfaction", f.rated ? pct(f.good_rate) + " (" + f.rated + " 评价 rated)" : "—", f.good_rate != null && f.good_rate < 0.9],
     ["开放窗口 Open", f.counters_open], ["暂停 Paused", f.counters_paused]].forEach(function (x) {
      var d = document.createElement("div"); d.className = "fig" + (x[2] ? " low" : "");
      var b = document.createElement("b"); b.textContent = x[1] == null ? "—" : String(x[1]);
      var l = document.createElement("span"); l.textContent = x[0];
      d.appendChild(b); d.appendChild(l); fig.appendChild(d);
    });
    var q = $("queues"); q.innerHTML = ""; head(q, ["业务 Service", "等候 Waiting", "最长等候 Longest (min)", "目标 Target",
      "预计清空 Clear (min)", "清空时间 Clear at", "下班 Session ends"]);
    var qb = q.createTBody();
    v.queues.forEach(function (s) {
      var r = qb.insertRow(); r.className = (s.over_target ? "over" : "") + (s.clears_after_session_end ? " late" : "");
      r.setAttribute("data-code", s.code);
      cell(r, s.name); cell(r, s.waiting); cell(r, s.longest_wait_minutes); cell(r, s.target_wait_minutes); cell(r, s.estimated_clear_minutes);
      cell(r, hm(s.clear_at, v.timezone), s.clears_after_session_end ? "late" : ""); cell(r, hm(s.session_ends, v.timezone));
    });
    var c = $("counters"); c.innerHTML = ""; head(c, ["窗口 Counter", "状态 State", "时长 For (min)", "工作人员 Clerk", "岗 Post", "当前 Ticket"]);
    var cb = c.createTBody();
    v.counters.forEach(function (k) {
      var r = cb.insertRow(); r.className = "st-" + k.state;
      cell(r, k.name || k.number); cell(r, k.state + (k.pause_reason ? " (" + k.pause_reason + ")" : ""));
      cell(r, k.state === "closed" || (k.state === "open" && k.ticket) ? null : k.minutes_in_state);
      cell(r, k.clerk); cell(r, k.post); cell(r, k.ticket);
    });
    var d = $("devices"); d.innerHTML = "";
    v.devices_offline.forEach(function (x) { var li = document.createElement("li"); li.textContent = x.name + " (" + x.role + ")"; d.appendChild(li); });
  }
  var es = new EventSource(base + "/api/stream");
  es.onmessage = function (e) { try { render(JSON.parse(e.data)); } catch (err) { /* wait for the next */ } };
})();
