/* panel-player console: live fleet table, panel page charts, alert and push follow-up.
   No framework: the server renders the pages, this file keeps them live from the
   server-sent events of /api/stream and draws the history charts as SVG. */
"use strict";

(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const S = JSON.parse(($("#console-strings") || {}).textContent || "{}");
  const CSRF = ($('meta[name="csrf-token"]') || {}).content || "";
  const SVG = "http://www.w3.org/2000/svg";
  let serverOffset = 0; // server clock - browser clock, seconds

  function tr(key, values) {
    let text = S[key] || key;
    for (const k in values || {}) text = text.split("{" + k + "}").join(String(values[k]));
    return text;
  }
  function now() { return Date.now() / 1000 + serverOffset; }
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function fmtAge(s) {
    if (s === null || s === undefined || !isFinite(s)) return tr("never");
    s = Math.max(0, Math.round(s));
    let t;
    if (s < 60) t = s + " s";
    else if (s < 3600) t = Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s";
    else if (s < 86400) t = Math.floor(s / 3600) + " h " + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + " min";
    else t = Math.floor(s / 86400) + (document.documentElement.lang === "fr" ? " j " : " d ") +
      String(Math.floor(s % 86400 / 3600)).padStart(2, "0") + " h";
    return tr("ago", {age: t});
  }
  function hbTime(row) {
    if (row.last_heartbeat) {
      const t = Date.parse(row.last_heartbeat);
      if (!isNaN(t)) return t / 1000;
    }
    return row.received === null || row.received === undefined ? null : row.received;
  }
  function dash(v) { return v === null || v === undefined || v === "" ? tr("none") : String(v); }
  function num(v, digits) { return v === null || v === undefined ? null : Number(v).toFixed(digits); }

  // -- the live stream ------------------------------------------------------------------
  function stream(handlers, panel) {
    const live = $("#live");
    const source = new EventSource("/api/stream" + (panel ? "?panel=" + encodeURIComponent(panel) : ""));
    const mark = (state) => {
      if (!live) return;
      live.dataset.state = state;
      live.textContent = state === "open" ? tr("fleet.live") : tr("fleet.disconnected");
    };
    source.onopen = () => mark("open");
    source.onerror = () => mark("error");
    for (const kind of ["snapshot", "panel", "alert", "push", "notice"]) {
      source.addEventListener(kind, (ev) => {
        const data = JSON.parse(ev.data);
        if (kind === "snapshot" && typeof data.now === "number") serverOffset = data.now - Date.now() / 1000;
        if (handlers[kind]) handlers[kind](data);
      });
    }
    window.addEventListener("pagehide", () => source.close());
    return source;
  }

  function post(url) {
    return fetch(url, {method: "POST", headers: {"X-CSRF-Token": CSRF}, credentials: "same-origin"});
  }

  const alertTitles = {};
  function learnTitles() {
    const block = $("#alert-titles");
    if (block) Object.assign(alertTitles, JSON.parse(block.textContent));
  }
  function localTime(t) {
    const d = new Date(t * 1000);
    const p = (n) => String(n).padStart(2, "0");
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " + p(d.getHours()) + ":" +
      p(d.getMinutes()) + ":" + p(d.getSeconds());
  }

  // -- the fleet page ----------------------------------------------------------------------
  function showing(row) {
    const s = row.showing || {kind: "unknown", text: null};
    if (s.kind === "unknown") return tr("none");
    const label = tr("showing." + s.kind);
    if (s.kind === "alert" && row.alerts && row.alerts.length) {
      const names = row.alerts.map((id) => alertTitles[id] ? "« " + alertTitles[id] + " »" : id).join(", ");
      return label + (document.documentElement.lang === "fr" ? " : " : ": ") + names;
    }
    return s.text ? label + (document.documentElement.lang === "fr" ? " : " : ": ") + s.text : label;
  }

  function fleetPage() {
    const labels = JSON.parse($("#fleet-labels").textContent);
    serverOffset = labels.server_now - Date.now() / 1000;
    const rows = new Map();
    for (const r of JSON.parse($("#fleet-data").textContent)) rows.set(r.panel, r);
    const tbody = $("#fleet tbody");
    const wall = $("#wall");
    const groupFilter = $("#group-filter");
    const textFilter = $("#text-filter");

    function cell(cls, label, text, extra) {
      const td = el("td", Object.assign({"class": cls, "data-label": label}, extra || {}));
      if (text instanceof Node) td.appendChild(text); else td.textContent = text;
      return td;
    }
    function render(row) {
      const tr_ = el("tr", {"data-panel": row.panel});
      const link = el("a", {href: "/panels/" + encodeURIComponent(row.panel)}, row.panel);
      tr_.appendChild(cell("panel", labels.panel, link));
      const badge = el("span", {"class": "badge"}, tr("state." + row.state));
      tr_.appendChild(cell("state", labels.state, badge, {"data-state": row.state}));
      const t = hbTime(row);
      tr_.appendChild(cell("age", labels.heartbeat, fmtAge(t === null ? null : now() - t),
                           {"data-t": t === null ? "" : String(t)}));
      tr_.appendChild(cell("showing", labels.showing, showing(row),
                           {"data-kind": (row.showing || {}).kind || "unknown"}));
      tr_.appendChild(cell("firmware", labels.firmware, dash(row.firmware)));
      tr_.appendChild(cell("num", labels.brightness, row.brightness === null ? tr("none") : row.brightness + " %"));
      tr_.appendChild(cell("num", labels.ambient,
                           row.ambient === null ? tr("none") : Math.round(row.ambient * 100) + " %"));
      const hot = row.cpu_temp_c !== null && row.cpu_temp_c > labels.temp_limit;
      tr_.appendChild(cell("num" + (hot ? " bad" : ""), labels.temperature,
                           row.cpu_temp_c === null ? tr("none") : num(row.cpu_temp_c, 1) + " °C"));
      tr_.appendChild(cell("num" + (row.errors ? " bad" : ""), labels.errors, dash(row.errors)));
      tr_.appendChild(cell(row.door_open ? "bad" : "", labels.door,
                           row.door_open === null ? tr("none") : tr(row.door_open ? "door.open" : "door.closed")));
      tr_.appendChild(cell(row.under_voltage ? "bad" : "", labels.power,
                           row.under_voltage === null ? tr("none") : tr(row.under_voltage ? "power.low" : "power.ok")));
      tr_.appendChild(cell("groups", labels.groups, (row.groups || []).join(", ") || tr("none")));
      return tr_;
    }
    function thumb(row) {
      const a = el("a", {"class": "thumb", href: "/panels/" + encodeURIComponent(row.panel), "data-panel": row.panel});
      if (row.screenshot_ts) {
        a.appendChild(el("img", {src: "/panels/" + encodeURIComponent(row.panel) + "/screenshot.png?ts=" +
                                      row.screenshot_ts, alt: row.panel, loading: "lazy"}));
      } else {
        a.appendChild(el("span", {"class": "noshot"}, tr("fleet.no_screenshot")));
      }
      const cap = el("span", {"class": "cap"});
      cap.appendChild(el("span", {"class": "dot", "data-state": row.state}));
      cap.appendChild(document.createTextNode(" " + row.panel));
      a.appendChild(cap);
      return a;
    }
    function visible(row) {
      const g = groupFilter.value;
      if (g && !(row.groups || []).includes(g)) return false;
      const q = textFilter.value.trim().toLowerCase();
      if (!q) return true;
      const hay = [row.panel, row.state, tr("state." + row.state), row.firmware, showing(row),
                   (row.groups || []).join(" ")].join(" ").toLowerCase();
      return q.split(/\s+/).every((w) => hay.includes(w));
    }
    // Changes are applied in batches, FLUSH_MS apart: each change to a table of 2,000 rows
    // makes the browser lay the whole page out again (60-80 ms), so applying the 66 heartbeats
    // a second of such a fleet one by one kept a core busy and the page 4 frames a second.
    const FLUSH_MS = 500;
    const pending = new Map();
    let flushTimer = null;
    function upsert(row) {
      pending.set(row.panel, row);
      if (flushTimer === null) flushTimer = setTimeout(flush, FLUSH_MS);
    }
    function flush() {
      flushTimer = null;
      for (const row of pending.values()) apply(row);
      pending.clear();
      counts();
    }
    function apply(row) {
      const old = rows.get(row.panel);
      rows.set(row.panel, row);
      const fresh = render(row);
      fresh.hidden = !visible(row);
      const existing = tbody.querySelector('tr[data-panel="' + CSS.escape(row.panel) + '"]');
      if (existing) existing.replaceWith(fresh);
      else placeRow(fresh, row.panel);
      const oldThumb = wall.querySelector('a[data-panel="' + CSS.escape(row.panel) + '"]');
      if (!oldThumb || !old || old.screenshot_ts !== row.screenshot_ts || old.state !== row.state) {
        const t = thumb(row);
        t.hidden = fresh.hidden;
        if (oldThumb) oldThumb.replaceWith(t); else wall.appendChild(t);
      }
    }
    function placeRow(tr_, panel) {
      for (const other of tbody.children) {
        if (other.dataset.panel > panel) { tbody.insertBefore(tr_, other); return; }
      }
      tbody.appendChild(tr_);
    }
    function counts() {
      $("#fleet-count").textContent = labels.count.replace("{n}", rows.size);
      $("#fleet-empty").hidden = rows.size > 0;
    }
    function applyFilters() {
      for (const tr_ of tbody.children) {
        const row = rows.get(tr_.dataset.panel);
        tr_.hidden = !(row && visible(row));
      }
      for (const a of wall.children) {
        const row = rows.get(a.dataset.panel);
        a.hidden = !(row && visible(row));
      }
    }
    function rebuild() {
      tbody.replaceChildren(...Array.from(rows.values()).sort((a, b) => a.panel < b.panel ? -1 : 1).map(render));
      wall.replaceChildren(...Array.from(rows.values()).sort((a, b) => a.panel < b.panel ? -1 : 1).map(thumb));
      applyFilters();
      counts();
    }
    function tick() {
      for (const td of $$("td.age", tbody)) {
        const t = td.dataset.t;
        const text = fmtAge(t ? now() - Number(t) : null);
        if (td.textContent !== text) td.textContent = text;  // an unchanged text costs no layout
      }
    }
    groupFilter.addEventListener("change", applyFilters);
    textFilter.addEventListener("input", applyFilters);
    $(".filters").addEventListener("submit", (ev) => ev.preventDefault());
    rebuild();
    setInterval(tick, 1000);
    stream({
      // On (re)connection: only the rows that differ from what the page shows are redrawn.
      snapshot: (d) => {
        const known = new Set(d.panels.map((r) => r.panel));
        if (Array.from(rows.keys()).some((p) => !known.has(p))) {
          rows.clear(); for (const r of d.panels) rows.set(r.panel, r); rebuild(); return;
        }
        for (const r of d.panels) {
          if (JSON.stringify(rows.get(r.panel)) !== JSON.stringify(r)) upsert(r);
        }
      },
      panel: (d) => upsert(d.row),
      notice: () => refreshNotices(),
      alert: (d) => {
        if (alertTitles[d.alert.id] === undefined) {
          alertTitles[d.alert.id] = d.alert.title;
          rebuild();
        }
      },
    });
  }

  function refreshNotices() {
    const box = $("#notices");
    if (!box) return;
    fetch("/api/notices", {credentials: "same-origin"}).then((r) => r.json()).then((d) => {
      const ul = $("ul", box);
      ul.replaceChildren(...d.notices.map((n) => {
        const li = el("li", {"class": "notice", "data-kind": n.kind});
        li.appendChild(el("a", {href: "/panels/" + encodeURIComponent(n.panel)}, n.panel));
        li.appendChild(document.createTextNode(" " + n.text));
        return li;
      }));
      box.hidden = d.notices.length === 0;
    }).catch(() => {});
  }

  // -- charts ------------------------------------------------------------------------------
  const W_PAD = 46, H = 160, TOP = 22, BOTTOM = 22;
  const STATE_COLOURS = {online: "#2e8b57", stale: "#d49a00", offline: "#c0392b", asleep: "#5b6b8c",
                         unknown: "#999999"};

  function timeLabel(t, span) {
    const d = new Date(t * 1000);
    const p = (n) => String(n).padStart(2, "0");
    return span === "24h" ? p(d.getHours()) + ":" + p(d.getMinutes()) : p(d.getDate()) + "/" + p(d.getMonth() + 1);
  }
  function frame(plot, data) {
    const width = Math.max(260, plot.clientWidth || 600);
    const root = svg("svg", {viewBox: "0 0 " + width + " " + H, width: width, height: H, role: "img"});
    const x = (t) => W_PAD + (t - data.from) / Math.max(1, data.to - data.from) * (width - W_PAD - 8);
    const ticks = width < 420 ? 3 : 5;
    for (let i = 0; i <= ticks; i++) {
      const t = data.from + (data.to - data.from) * i / ticks;
      root.appendChild(svg("line", {x1: x(t), x2: x(t), y1: TOP, y2: H - BOTTOM, "class": "grid"}));
      root.appendChild(svg("text", {x: x(t), y: H - 6, "text-anchor": i === 0 ? "start" : i === ticks ? "end" : "middle",
                                    "class": "axis"}, timeLabel(t, data.span)));
    }
    plot.replaceChildren(root);
    return {root, x, width};
  }
  function lineChart(plot, data, series, opts) {
    const f = frame(plot, data);
    const values = [];
    for (const s of series) for (const p of s.points) if (p[1] !== null) values.push(p[1]);
    if (opts.threshold !== undefined) values.push(opts.threshold);
    if (!series.some((s) => s.points.some((p) => p[1] !== null))) {
      f.root.appendChild(svg("text", {x: f.width / 2, y: H / 2, "text-anchor": "middle", "class": "empty"},
                             S["panel.no_data"] || "no data"));
      return;
    }
    let lo = opts.min !== undefined ? opts.min : Math.min(...values);
    let hi = opts.max !== undefined ? opts.max : Math.max(...values);
    if (hi - lo < 1e-9) { hi += 1; lo -= opts.min !== undefined ? 0 : 1; }
    const pad = (hi - lo) * 0.08;
    if (opts.min === undefined) lo -= pad;
    if (opts.max === undefined) hi += pad;
    const y = (v) => TOP + (hi - v) / (hi - lo) * (H - TOP - BOTTOM);
    for (let i = 0; i <= 2; i++) {
      const v = lo + (hi - lo) * i / 2;
      f.root.appendChild(svg("line", {x1: W_PAD, x2: f.width - 8, y1: y(v), y2: y(v), "class": "grid"}));
      f.root.appendChild(svg("text", {x: W_PAD - 4, y: y(v) + 4, "text-anchor": "end", "class": "axis"},
                             Math.abs(hi - lo) >= 10 ? Math.round(v) : v.toFixed(1)));
    }
    if (opts.threshold !== undefined) {
      f.root.appendChild(svg("line", {x1: W_PAD, x2: f.width - 8, y1: y(opts.threshold), y2: y(opts.threshold),
                                      "class": "threshold"}));
      f.root.appendChild(svg("text", {x: f.width - 10, y: y(opts.threshold) - 4, "text-anchor": "end",
                                      "class": "threshold-label"}, opts.threshold + (opts.unit || "")));
    }
    series.forEach((s, k) => {
      let d = "", pen = false;
      for (const p of s.points) {
        if (p[1] === null) { pen = false; continue; }
        d += (pen ? "L" : "M") + f.x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1);
        pen = true;
      }
      f.root.appendChild(svg("path", {d: d, "class": "series s" + k}));
      if (s.label) {
        f.root.appendChild(svg("text", {x: W_PAD + k * 120, y: 12, "class": "legend s" + k}, "— " + s.label));
      }
    });
  }
  function stateStrip(plot, data) {
    const f = frame(plot, data);
    if (!(data.states || []).length) {
      f.root.appendChild(svg("text", {x: f.width / 2, y: H / 2, "text-anchor": "middle", "class": "empty"},
                             S["panel.no_data"] || "no data"));
      return;
    }
    for (const [a, b, state] of data.states || []) {
      const x1 = f.x(Math.max(a, data.from)), x2 = f.x(Math.min(b === null ? data.to : b, data.to));
      if (x2 <= x1) continue;
      const r = svg("rect", {x: x1, y: TOP + 10, width: Math.max(1, x2 - x1), height: H - TOP - BOTTOM - 20,
                             fill: STATE_COLOURS[state] || STATE_COLOURS.unknown, "data-state": state});
      r.appendChild(svg("title", {}, tr("state." + state)));
      f.root.appendChild(r);
    }
    let k = 0;
    for (const state of ["online", "stale", "offline", "asleep"]) {
      f.root.appendChild(svg("rect", {x: W_PAD + k * 90, y: 2, width: 10, height: 10, fill: STATE_COLOURS[state]}));
      f.root.appendChild(svg("text", {x: W_PAD + 14 + k * 90, y: 11, "class": "axis"}, tr("state." + state)));
      k++;
    }
  }
  function restarts(plot, data) {
    const f = frame(plot, data);
    for (const t of data.restarts || []) {
      f.root.appendChild(svg("line", {x1: f.x(t), x2: f.x(t), y1: TOP + 10, y2: H - BOTTOM, "class": "restart"}));
    }
    f.root.appendChild(svg("text", {x: W_PAD, y: 12, "class": "axis"}, "× " + String((data.restarts || []).length)));
  }

  function panelPage() {
    const info = JSON.parse($("#panel-data").textContent);
    serverOffset = info.server_now - Date.now() / 1000;
    let row = info.row;
    const charts = $("#charts");
    const pid = charts.dataset.panel;
    let span = "24h", lastData = null;

    function draw(data) {
      lastData = data;
      const m = data.metrics || {};
      const plot = (name) => $('.chart[data-chart="' + name + '"] .plot', charts);
      const th = (data.thresholds || {}).cpu_temp_c;
      lineChart(plot("temperature"), data, [{points: m.cpu_temp_c || []}],
                {threshold: th === undefined ? 75 : th, unit: " °C"});
      lineChart(plot("brightness"), data, [
        {points: m.brightness || [], label: info.labels.brightness},
        {points: (m.ambient || []).map((p) => [p[0], p[1] === null ? null : p[1] * 100]), label: info.labels.ambient},
      ], {min: 0, max: 100});
      stateStrip(plot("states"), data);
      restarts(plot("restarts"), data);
      lineChart(plot("reconnects"), data, [{points: m.mqtt_reconnects || []}], {min: 0});
      lineChart(plot("rss"), data, [{points: m.rss_mb || []}], {});
      lineChart(plot("disk"), data, [{points: m.disk_free_mb || []}], {min: 0});
    }
    function load() {
      fetch("/api/panels/" + encodeURIComponent(pid) + "/history?span=" + span, {credentials: "same-origin"})
        .then((r) => r.ok ? r.json() : Promise.reject(r.status)).then(draw).catch(() => {});
    }
    for (const b of $$(".span")) {
      b.addEventListener("click", () => {
        span = b.dataset.span;
        for (const o of $$(".span")) o.setAttribute("aria-pressed", o === b ? "true" : "false");
        load();
      });
    }
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => lastData && draw(lastData), 150);
    });
    load();
    setInterval(load, 60000);

    function showRow(r) {
      const old = row;
      row = r;
      const badge = $("#panel-state");
      badge.dataset.state = r.state;
      badge.textContent = tr("state." + r.state);
      $("#hb-showing").textContent = showing(r);
      $("#hb-brightness").textContent = r.brightness === null ? tr("none") : r.brightness + " %" +
        (r.ambient === null ? "" : " (" + tr("chart.ambient_label") + " " + Math.round(r.ambient * 100) + " %)");
      $("#hb-temperature").textContent = r.cpu_temp_c === null ? tr("none") : num(r.cpu_temp_c, 1) + " °C";
      $("#hb-errors").textContent = dash(r.errors);
      const hb = r.heartbeat || {};
      for (const tr_ of $$("#heartbeat tbody tr")) {
        const v = hb[tr_.dataset.field];
        $(".val", tr_).textContent = v === null || v === undefined ? tr("none")
          : typeof v === "object" ? JSON.stringify(v) : String(v);
      }
      if (r.screenshot_ts && r.screenshot_ts !== old.screenshot_ts) {
        const img = $("#screenshot");
        img.src = "/panels/" + encodeURIComponent(r.panel) + "/screenshot.png?ts=" + r.screenshot_ts;
        img.hidden = false;
        $("#screenshot-when").textContent = info.labels.taken.replace("{when}", localTime(r.screenshot_ts));
        $("#refresh-note").hidden = true;
        $("#refresh-screenshot").disabled = false;
      }
    }
    function tick() {
      const t = hbTime(row);
      $("#hb-age").textContent = fmtAge(t === null ? null : now() - t);
    }
    showRow(row);
    tick();
    setInterval(tick, 1000);
    $("#refresh-screenshot").addEventListener("click", (ev) => {
      const b = ev.currentTarget;
      b.disabled = true;
      $("#refresh-note").hidden = false;
      post("/panels/" + encodeURIComponent(pid) + "/screenshot").then((r) => {
        if (!r.ok) throw new Error(String(r.status));
      }).catch(() => { b.disabled = false; });
      setTimeout(() => { b.disabled = false; }, 15000);
    });
    stream({
      snapshot: (d) => { const r = d.panels.find((p) => p.panel === pid); if (r) showRow(r); },
      panel: (d) => { if (d.row.panel === pid) showRow(d.row); },
    }, pid);
  }

  // -- alert and push follow-up -----------------------------------------------------------
  function statusTable(table, panels) {
    for (const pid in panels) {
      const st = panels[pid];
      let tr_ = table.querySelector('tr[data-panel="' + CSS.escape(pid) + '"]');
      if (!tr_) {
        tr_ = el("tr", {"data-panel": pid});
        const a = el("td");
        a.appendChild(el("a", {href: "/panels/" + encodeURIComponent(pid)}, pid));
        tr_.appendChild(a);
        tr_.appendChild(el("td", {"class": "status"}));
        tr_.appendChild(el("td", {"class": "muted at"}));
        $("tbody", table).appendChild(tr_);
      }
      const td = $("td.status", tr_);
      td.dataset.status = st.status;
      td.replaceChildren(el("span", {"class": "badge"}, tr("status." + st.status)));
      $("td.at", tr_).textContent = (st.at || "") + (st.detail ? " · " + st.detail : "");
    }
  }
  function alertPage() {
    const a = JSON.parse($("#alert-data").textContent);
    const show = (rep) => {
      statusTable($("#alert-panels"), rep.panels);
      $("#reached").textContent = rep.reached + " / " + rep.total;
      const bar = $("#reached-bar");
      bar.style.width = (rep.total ? 100 * rep.reached / rep.total : 0) + "%";
      if (rep.cancelled_at) $("#cancelled").hidden = false;
    };
    show(a);
    const refetch = () => fetch("/api/alerts/" + encodeURIComponent(a.id), {credentials: "same-origin"})
      .then((r) => r.ok ? r.json() : null).then((rep) => rep && show(rep)).catch(() => {});
    stream({alert: (d) => { if (d.alert.id === a.id) show(d.alert); }, snapshot: refetch});
  }
  function pushPage() {
    const p = JSON.parse($("#push-data").textContent);
    const show = (rep) => {
      statusTable($("#push-panels"), rep.panels);
      $("#applied").textContent = tr("playlists.applied_text", {n: rep.applied, m: rep.total});
    };
    stream({push: (d) => { if (d.push.key === p.key) show(d.push); }});
  }

  // -- forms -------------------------------------------------------------------------------
  function forms() {
    for (const b of $$("button[data-confirm]")) {
      b.addEventListener("click", (ev) => { if (!window.confirm(b.dataset.confirm)) ev.preventDefault(); });
    }
    const form = $("#alert-form");
    if (form) {
      const sync = () => {
        const scope = (form.querySelector('input[name="scope"]:checked') || {}).value;
        for (const box of $$(".choices[data-for]", form)) box.hidden = box.dataset.for !== scope;
      };
      for (const r of $$('input[name="scope"]', form)) r.addEventListener("change", sync);
      sync();
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    learnTitles();
    forms();
    const page = document.body.dataset.page;
    if (page === "fleet") fleetPage();
    else if (page === "panel") panelPage();
    else if (page === "alert") alertPage();
    else if (page === "push") pushPage();
  });
})();
