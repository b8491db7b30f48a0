// fcc dashboard: polls /dashboard/data every 2 s and redraws. No framework, nothing fetched
// from elsewhere. Every string from the server reaches the DOM as textContent, never as HTML.
"use strict";

(function () {
  const POLL_MS = 2000;
  const TIMEOUT_MS = 5000;
  const token = new URLSearchParams(location.search).get("token");
  const DATA_URL = "/dashboard/data" + (token ? "?token=" + encodeURIComponent(token) : "");

  let last = null; // the last snapshot drawn
  let lastOk = 0; // Date.now() of the last successful poll
  let failure = null; // text of the current polling error, if any
  let hoverSlot = -1;
  let chartGeom = null;

  // ---------- small helpers ----------

  const $ = (id) => document.getElementById(id);

  // el("td", {class: "n", title: "x"}, "text", childNode, ...): strings become text nodes.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === "class") node.className = v;
        else if (k === "style") for (const [p, val] of Object.entries(v)) node.style.setProperty(p, val);
        else node.setAttribute(k, String(v));
      }
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function setText(id, text, title) {
    const node = $(id);
    node.textContent = text;
    if (title !== undefined) node.title = title;
  }

  const nf = new Intl.NumberFormat();
  const num = (n) => (n === null || n === undefined ? "–" : nf.format(n));

  function compact(n) {
    if (n === null || n === undefined) return "–";
    const a = Math.abs(n);
    if (a < 10000) return nf.format(n);
    const units = [
      [1e9, "G"],
      [1e6, "M"],
      [1e3, "k"],
    ];
    for (const [size, unit] of units) {
      if (a >= size) {
        const v = n / size;
        return (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1)) + unit;
      }
    }
    return String(n);
  }

  function ms(v) {
    if (v === null || v === undefined) return "–";
    if (v >= 100) return nf.format(Math.round(v));
    if (v >= 10) return v.toFixed(1);
    return v.toFixed(2);
  }

  function duration(s) {
    s = Math.max(0, Math.floor(s));
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
    if (m) return `${m}m ${String(sec).padStart(2, "0")}s`;
    return `${sec}s`;
  }

  function ago(seconds) {
    if (seconds < 1.5) return "just now";
    return duration(seconds) + " ago";
  }

  const pad2 = (n) => String(n).padStart(2, "0");
  const hhmm = (d) => `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  const hhmmss = (d) => `${hhmm(d)}:${pad2(d.getSeconds())}`;

  function shortSession(s) {
    if (!s) return "–";
    return s.length > 8 ? s.slice(0, 8) + "…" : s;
  }

  function pct(part, whole) {
    if (!whole) return "0%";
    const p = (100 * part) / whole;
    return (p > 0 && p < 1 ? p.toFixed(1) : Math.round(p)) + "%";
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
  }

  function fill(tbody, rows, columns, emptyText) {
    const body = typeof tbody === "string" ? $(tbody).tBodies[0] : tbody;
    const frag = document.createDocumentFragment();
    if (!rows.length) frag.appendChild(el("tr", null, el("td", { class: "empty", colspan: columns }, emptyText)));
    for (const r of rows) frag.appendChild(r);
    body.replaceChildren(frag);
  }

  // ---------- header and totals ----------

  function drawHeader(d) {
    setText("version", "v" + d.version);
    setText("uptime", "up " + duration(d.uptime_s));
    const t = d.totals;
    const hour = (key) => (d.series && d.series[key] ? d.series[key].reduce((a, b) => a + b, 0) : 0);
    setText("t-requests", compact(t.requests), num(t.requests));
    setText("t-requests-sub", `${num(hour("requests"))} last hour`);
    setText("t-errors", compact(t.errors), num(t.errors));
    setText("t-errors-sub", `${pct(t.errors, t.requests)} of requests`);
    $("t-errors").parentElement.classList.toggle("bad", t.errors > 0);
    setText("t-input", compact(t.input_tokens), num(t.input_tokens));
    setText("t-input-sub", `${compact(hour("input_tokens"))} last hour`);
    setText("t-output", compact(t.output_tokens), num(t.output_tokens));
    setText("t-output-sub", `${compact(hour("output_tokens"))} last hour`);
    setText("t-cached", compact(t.cached_tokens), num(t.cached_tokens));
    const cacheable = t.input_tokens + t.cached_tokens;
    setText("t-cached-sub", `${pct(t.cached_tokens, cacheable)} of prompt`);
    setText("t-fallbacks", compact(t.fallbacks), num(t.fallbacks));
    setText("t-fallbacks-sub", "after a failure");
    const answered = d.probes ? d.probes.answered : t.probes;
    setText("t-probes", compact(answered), `${num(answered)} requests answered locally, never sent upstream`);
    setText("t-probes-sub", `${pct(answered, t.requests)} of requests`);
  }

  // ---------- tiers, providers, health, probes ----------

  function healthIndex(d) {
    const by = new Map();
    for (const h of d.health || []) by.set(h.candidate, h);
    return by;
  }

  function statePill(state) {
    const cls = state === "open" ? "bad" : state === "half_open" ? "warn" : "ok";
    const label = state === "half_open" ? "half-open" : state;
    return el("span", { class: "pill " + cls }, label);
  }

  function routeWithHealth(route, health) {
    const h = health.get(route);
    const state = h ? h.state : "closed";
    const title = h ? `${state}${h.last_error ? " — " + h.last_error : ""}` : "healthy";
    return el("span", { class: "route", title }, el("span", { class: "hdot " + state }), route);
  }

  function drawTiers(d) {
    const health = healthIndex(d);
    const rows = (d.tiers || []).map((t) => {
      const fb = el("td", { class: "route wrap" });
      if (!t.fallbacks.length) fb.appendChild(el("span", { class: "dim" }, "—"));
      t.fallbacks.forEach((f, i) => {
        if (i) fb.append(" ", el("span", { class: "arrow" }, "→"), " ");
        fb.appendChild(routeWithHealth(f, health));
      });
      return el(
        "tr",
        null,
        el("td", null, el("b", null, t.tier)),
        el("td", null, routeWithHealth(t.route, health)),
        fb,
        el("td", null, t.thinking),
        el("td", { class: "dim" }, t.origin),
      );
    });
    fill("tiers", rows, 5, "No tiers configured.");
  }

  function meter(used, limit, title) {
    const wrap = el("span", { class: "meter", title });
    if (limit) {
      const ratio = Math.min(1, used / limit);
      const cls = ratio >= 0.9 ? "fill bad" : ratio >= 0.6 ? "fill warn" : "fill";
      wrap.appendChild(el("span", { class: "bar" }, el("span", { class: cls, style: { width: (ratio * 100).toFixed(1) + "%" } })));
      wrap.appendChild(document.createTextNode(`${num(used)} / ${num(limit)}`));
    } else {
      wrap.appendChild(document.createTextNode(`${num(used)} / `));
      wrap.appendChild(el("span", { class: "dim", title: "no limit declared" }, "∞"));
    }
    return wrap;
  }

  function candidateSummary(d, provider) {
    const mine = (d.health || []).filter((h) => h.candidate.startsWith(provider + "/"));
    const count = (s) => mine.filter((h) => h.state === s).length;
    const parts = [];
    if (count("open")) parts.push(el("span", { class: "pill bad" }, `${count("open")} open`));
    if (count("half_open")) parts.push(el("span", { class: "pill warn" }, `${count("half_open")} half-open`));
    const failing = count("closed");
    if (failing) parts.push(el("span", { class: "pill plain", title: "closed, with recent failures" }, `${failing} failing`));
    if (!parts.length) return el("span", { class: "pill ok" }, "healthy");
    const wrap = el("span", { class: "pills" });
    for (const part of parts) wrap.appendChild(part);
    return wrap;
  }

  function drawProviders(d) {
    const rows = (d.providers || []).map((p) => {
      const name = el("td", null, el("b", { class: "mono" }, p.id));
      if (p.display_name && p.display_name !== p.id) {
        name.appendChild(el("div", { class: "small" }, p.display_name));
      }
      return el(
        "tr",
        null,
        name,
        el("td", { class: "n" }, num(p.requests)),
        el("td", { class: "n" }, p.errors ? el("span", { class: "pill bad" }, num(p.errors)) : "0"),
        tokenCell(p),
        el("td", null, meter(p.active_streams, p.concurrent_streams, "active upstream streams / concurrent-stream limit")),
        el("td", null, meter(p.requests_last_minute, p.requests_per_minute, "requests in the last 60 s / requests-per-minute limit")),
        el("td", null, candidateSummary(d, p.id)),
      );
    });
    fill("providers", rows, 7, "No provider has been used yet.");

    const order = { open: 0, half_open: 1, closed: 2 };
    const health = [...(d.health || [])].sort(
      (a, b) => (order[a.state] ?? 3) - (order[b.state] ?? 3) || a.candidate.localeCompare(b.candidate),
    );
    const hrows = health.map((h) =>
      el(
        "tr",
        { class: h.state === "open" ? "bad" : null },
        el("td", null, el("span", { class: "route" }, el("span", { class: "hdot " + h.state }), h.candidate)),
        el("td", null, statePill(h.state)),
        el("td", { class: "n" }, num(h.recent_failures)),
        el("td", { class: "n" }, h.cooldown_left > 0 ? `${h.cooldown_left.toFixed(0)} s` : "–"),
        el("td", { class: "wrap small" }, h.last_error || "–"),
      ),
    );
    fill("health", hrows, 5, "All candidates healthy: no failures recorded.");
  }

  function drawQuotas(d) {
    const rows = (d.quotas || []).map((q) =>
      el(
        "tr",
        null,
        el("td", null, el("b", { class: "mono" }, q.scope)),
        el("td", null, q.requests_per_day ? meter(q.requests, q.requests_per_day, "requests today / requests_per_day") : "–"),
        el("td", null, q.tokens_per_day ? meter(q.tokens, q.tokens_per_day, "tokens today / tokens_per_day") : "–"),
        el("td", { class: "dim" }, q.day_reset === "rolling_24h" ? "rolling 24 h" : "00:00 UTC"),
      ),
    );
    fill("quotas", rows, 4, "No daily quota on the providers this config uses.");
  }

  function drawDoctor(d) {
    const cls = { works: "ok", degraded: "warn", broken: "bad" };
    const rows = (d.doctor || []).map((r) =>
      el(
        "tr",
        { class: r.verdict === "broken" ? "bad" : null },
        el("td", null, el("span", { class: "mono" }, r.model)),
        el("td", null, el("span", { class: "pill " + (cls[r.verdict] || "") }, r.verdict)),
        el("td", null, r.failing || "–"),
        el("td", { class: "wrap small" }, r.reason || "–"),
        el("td", { class: "dim" }, `${r.age} ago`),
      ),
    );
    fill("doctor", rows, 5, "No doctor results yet: run fcc doctor (or fcc serve --doctor).");
  }

  function drawReload(d) {
    const box = $("reload-notice");
    const r = d.reload;
    if (!r) {
      box.hidden = true;
      return;
    }
    const when = new Date(r.time * 1000).toLocaleTimeString();
    box.className = "notice" + (r.ok ? "" : " bad");
    const head = r.ok
      ? `Config reloaded at ${when} (${r.trigger}): ${r.changes.length ? r.changes.join("; ") : "no change that matters"}`
      : `Config not reloaded at ${when} (${r.trigger}): the previous settings keep serving. Fix:`;
    const items = r.ok ? [] : r.problems.map((p) => el("li", { class: "mono" }, p));
    box.replaceChildren(el("span", null, head), ...(items.length ? [el("ul", null, ...items)] : []));
    box.hidden = false;
  }

  function drawStore(d) {
    const banner = $("store-banner");
    const s = d.store || {};
    if (s.degraded) {
      banner.textContent = `State store (${s.backend}) away: ${s.message || "not answering"}`;
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
  }

  function drawProbes(d) {
    const p = d.probes || { answered: 0, by_name: {}, active: [] };
    const names = new Set([...(p.active || []), ...Object.keys(p.by_name || {})]);
    const active = new Set(p.active || []);
    const chips = [...names]
      .sort((a, b) => (p.by_name[b] || 0) - (p.by_name[a] || 0) || a.localeCompare(b))
      .map((n) =>
        el(
          "span",
          { class: "chip" + (active.has(n) ? "" : " off"), title: active.has(n) ? "active" : "turned off" },
          n,
          el("b", null, num(p.by_name[n] || 0)),
        ),
      );
    $("probes").replaceChildren(...chips);
    if (!chips.length) $("probes").appendChild(el("span", { class: "dim" }, "No probes active."));
    setText("probes-hint", `${num(p.answered)} answered locally · ${num(active.size)} active`);
  }

  function drawRules(d) {
    const hits = d.rules || {};
    const configured = (d.routes || []).map((r) => r.name);
    const names = [...new Set([...configured, ...Object.keys(hits)])];
    const chips = names.map((n) => {
      const rule = (d.routes || []).find((r) => r.name === n);
      const title = rule ? `when ${rule.when} → ${rule.use.join(", ")}` : "no rule matched: the model's family picked this tier";
      return el("span", { class: "chip" + (rule ? "" : " off"), title }, n, el("b", null, num(hits[n] || 0)));
    });
    $("rules").replaceChildren(...chips);
    if (!chips.length) $("rules").appendChild(el("span", { class: "dim" }, "No rules: each family goes to its tier."));
    const skipped = Object.entries(d.skipped || {}).sort((a, b) => b[1] - a[1]);
    $("skipped").replaceChildren(
      ...skipped.map(([c, n]) =>
        el("span", { class: "chip off", title: "skipped: could not take the request (see recent requests)" }, "skipped " + c, el("b", null, num(n))),
      ),
    );
    const decided = Object.values(hits).reduce((a, b) => a + b, 0);
    setText("rules-hint", `${num(configured.length)} configured · ${num(decided)} decisions`);
  }

  // ---------- sessions and recent requests ----------

  function drawSessions(d) {
    const rows = (d.sessions || []).map((s) =>
      el(
        "tr",
        null,
        el("td", { class: "mono", title: s.session }, shortSession(s.session)),
        el("td", { class: "n" }, num(s.requests)),
        el("td", { class: "n" }, s.errors ? el("span", { class: "pill bad" }, num(s.errors)) : "0"),
        tokenCell(s),
        el("td", { class: "n" }, s.probes ? el("span", { class: "pill probe" }, num(s.probes)) : "0"),
        el("td", { class: "n", title: new Date(s.last_seen * 1000).toLocaleString() }, ago(d.now - s.last_seen)),
      ),
    );
    fill("sessions", rows, 6, "No sessions yet: Claude Code sends its session id with each request.");
    setText("sessions-hint", `${num(rows.length)} seen`);
  }

  // input / output / cached, in one cell; exact numbers, the cached part dim when zero.
  function tokenCell(t) {
    return el(
      "td",
      { class: "n", title: `input ${num(t.input_tokens)} · output ${num(t.output_tokens)} · cached ${num(t.cached_tokens)}` },
      `${num(t.input_tokens)} / ${num(t.output_tokens)} / `,
      el("span", { class: t.cached_tokens ? null : "dim" }, num(t.cached_tokens)),
    );
  }

  function statusPill(status) {
    const cls = status >= 500 ? "bad" : status >= 400 ? "warn" : "ok";
    return el("span", { class: "pill " + cls }, String(status));
  }

  function drawRecent(d) {
    const rows = (d.recent || []).map((r) => {
      const when = new Date(r.time);
      const route = el("td", { class: "route wrap" }, el("span", null, r.model));
      const target = r.route || (r.attempts.length ? r.attempts[r.attempts.length - 1] : null);
      if (r.tier) route.append(" ", el("span", { class: "arrow" }, "→"), " ", el("span", { class: "tier" }, r.tier));
      if (!target && !r.probe) {
        route.append(" ", el("span", { class: "arrow" }, "→"), " ");
        route.appendChild(el("span", { class: "dim", title: "no candidate could take it (circuit open or limit reached)" }, "not sent"));
      } else if (!r.tier && target === r.model) {
        route.append(" ", el("span", { class: "dim", title: "a provider/model name, no tier" }, "(direct)"));
      } else {
        route.append(" ", el("span", { class: "arrow" }, "→"), " ");
        route.appendChild(target ? el("span", null, target) : el("span", { class: "dim" }, "–"));
      }
      if (r.rule && !r.rule.startsWith("tier:") && r.rule !== "direct") {
        const why = r.skipped && r.skipped.length ? `; skipped: ${r.skipped.join("; ")}` : "";
        route.append(" ", el("span", { class: "pill rule", title: `routing rule ${r.rule}${why}` }, r.rule));
      } else if (r.skipped && r.skipped.length) {
        route.append(" ", el("span", { class: "pill warn", title: "skipped: " + r.skipped.join("; ") }, `${r.skipped.length} skipped`));
      }
      if (r.stream) route.append(" ", el("span", { class: "dim", title: "streamed" }, "⇣"));
      const tries = r.attempts.length;
      const attempts = el(
        "td",
        { class: "n", title: r.attempts.join(" → ") || (r.probe ? "answered locally by a probe" : "not sent upstream") },
        tries > 1 && r.status < 400 ? el("span", { class: "pill warn" }, `${tries} ↩`) : String(tries),
      );
      const bad = r.status >= 400;
      return el(
        "tr",
        { class: bad ? "bad" : null },
        el("td", { class: "mono", title: when.toLocaleString() }, hhmmss(when)),
        el("td", { class: "mono", title: r.session || "no session id" }, shortSession(r.session)),
        route,
        attempts,
        el("td", null, r.probe ? el("span", { class: "pill probe" }, r.probe) : el("span", { class: "dim" }, "–")),
        el("td", null, statusPill(r.status)),
        el("td", { class: "n" }, ms(r.ttft_ms)),
        el("td", { class: "n" }, ms(r.duration_ms)),
        el("td", { class: "n" }, ms(r.overhead_ms)),
        tokenCell(r),
        el("td", { class: bad ? "mono" : "dim" }, r.error_type || "–"),
      );
    });
    fill("recent", rows, 11, "No requests yet. Point Claude Code at fcc and they appear here.");
    setText("recent-hint", rows.length ? `newest first · last ${num(rows.length)}` : "newest first");
  }

  // ---------- chart ----------

  function seriesOf(d) {
    const s = d.series;
    const n = s.requests.length;
    const providers = Object.keys(s.by_provider || {}).sort();
    const palette = ["--s1", "--s2", "--s3", "--s4", "--s5", "--s6", "--s7", "--s8"];
    const stacks = providers.map((p, i) => ({ name: p, color: cssVar(palette[i % palette.length]), values: s.by_provider[p] }));
    stacks.push({ name: "probes (local)", color: cssVar("--probe"), values: s.probes });
    // Requests no provider answered (failed before any content) are the remainder.
    const rest = [];
    for (let i = 0; i < n; i++) {
      let known = s.probes[i];
      for (const p of providers) known += s.by_provider[p][i];
      rest.push(Math.max(0, s.requests[i] - known));
    }
    if (rest.some((v) => v > 0)) stacks.push({ name: "unanswered", color: cssVar("--unanswered"), values: rest });
    const tokens = [
      { name: "input tokens", color: cssVar("--in"), values: s.input_tokens },
      { name: "output tokens", color: cssVar("--out"), values: s.output_tokens },
    ];
    // Local clock labels: the last slot is the server's current minute.
    const lastMinute = Math.floor(d.now / 60) * 60;
    const minutes = [];
    for (let i = 0; i < n; i++) minutes.push(new Date((lastMinute - (n - 1 - i) * 60) * 1000));
    return { n, stacks, tokens, minutes, requests: s.requests };
  }

  // An axis from 0 to `max` in `count` round steps (1, 2, 2.5 or 5 times a power of ten).
  function scale(v, minimum, count, integer) {
    const raw = Math.max(v, minimum) / count;
    const exp = Math.pow(10, Math.floor(Math.log10(raw)));
    let step = 10 * exp;
    for (const m of [1, 2, 2.5, 5, 10]) {
      if (m * exp >= raw && (!integer || Number.isInteger(m * exp))) {
        step = m * exp;
        break;
      }
    }
    if (integer) step = Math.max(1, Math.round(step));
    const steps = Math.max(1, Math.ceil(Math.max(v, minimum) / step));
    const ticks = [];
    for (let k = 0; k <= steps; k++) ticks.push(k * step);
    return { max: steps * step, ticks };
  }

  function drawLegend(model) {
    const items = [];
    const total = (vals) => vals.reduce((a, b) => a + b, 0);
    for (const s of model.stacks) {
      items.push(el("span", { class: "item" }, el("span", { class: "sw", style: { background: s.color } }), s.name, el("span", { class: "v" }, num(total(s.values)))));
    }
    for (const s of model.tokens) {
      items.push(el("span", { class: "item" }, el("span", { class: "sw line", style: { background: s.color } }), s.name, el("span", { class: "v" }, compact(total(s.values)))));
    }
    $("legend").replaceChildren(...items);
  }

  function drawChart(d) {
    const canvas = $("chart");
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height || !d.series) return;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(height * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const model = seriesOf(d);
    const mono = getComputedStyle(document.documentElement).getPropertyValue("--mono");
    const text = cssVar("--muted");
    const faint = cssVar("--faint");
    const grid = cssVar("--grid");
    const axis = cssVar("--axis");
    const left = 56;
    const right = 14;
    const top = 22;
    const gap = 40;
    const bottom = 24;
    const plotW = width - left - right;
    const usable = height - top - gap - bottom;
    const hReq = Math.round(usable * 0.58);
    const hTok = usable - hReq;
    const reqTop = top;
    const tokTop = top + hReq + gap;
    const slot = plotW / model.n;
    chartGeom = { left, right, plotW, slot, n: model.n, top: reqTop, bottom: tokTop + hTok, model };

    let points = 0;
    ctx.font = `11px ${mono}`;
    ctx.textBaseline = "middle";

    function yAxis(panelTop, panelH, axisScale, title, fmt) {
      const max = axisScale.max;
      ctx.strokeStyle = grid;
      ctx.lineWidth = 1;
      ctx.fillStyle = text;
      ctx.textAlign = "right";
      for (const v of axisScale.ticks) {
        const y = Math.round(panelTop + panelH - (v / max) * panelH) + 0.5;
        ctx.beginPath();
        ctx.moveTo(left, y);
        ctx.lineTo(left + plotW, y);
        ctx.stroke();
        ctx.fillText(fmt(v), left - 6, y);
      }
      ctx.strokeStyle = axis;
      ctx.beginPath();
      ctx.moveTo(left + 0.5, panelTop);
      ctx.lineTo(left + 0.5, panelTop + panelH + 0.5);
      ctx.lineTo(left + plotW, panelTop + panelH + 0.5);
      ctx.stroke();
      ctx.textAlign = "left";
      ctx.fillStyle = faint;
      ctx.font = `600 11px ${mono}`;
      ctx.fillText(title, left + 4, panelTop - 10);
      ctx.font = `11px ${mono}`;
    }

    if (hoverSlot >= 0 && hoverSlot < model.n) {
      ctx.fillStyle = grid;
      ctx.fillRect(left + hoverSlot * slot, reqTop, slot, tokTop + hTok - reqTop);
    }

    // Requests per minute, stacked by provider, probes and unanswered.
    const reqScale = scale(Math.max(0, ...model.requests), 4, 4, true);
    const reqMax = reqScale.max;
    yAxis(reqTop, hReq, reqScale, "requests / min", (v) => String(Math.round(v)));
    const barW = Math.max(1, slot * 0.72);
    for (let i = 0; i < model.n; i++) {
      let acc = 0;
      for (const s of model.stacks) {
        const v = s.values[i];
        if (!v) continue;
        points++;
        const y0 = reqTop + hReq - (acc / reqMax) * hReq;
        const y1 = reqTop + hReq - ((acc + v) / reqMax) * hReq;
        ctx.fillStyle = s.color;
        ctx.fillRect(left + i * slot + (slot - barW) / 2, y1, barW, Math.max(1, y0 - y1 - 0.5));
        acc += v;
      }
    }

    // Tokens per minute: input and output side by side.
    const tokScale = scale(Math.max(0, ...model.tokens[0].values, ...model.tokens[1].values), 10, 3, true);
    const tokMax = tokScale.max;
    yAxis(tokTop, hTok, tokScale, "tokens / min", (v) => compact(Math.round(v)));
    const half = Math.max(1, barW / 2);
    model.tokens.forEach((s, k) => {
      ctx.fillStyle = s.color;
      for (let i = 0; i < model.n; i++) {
        const v = s.values[i];
        if (!v) continue;
        points++;
        const h = Math.max(1.5, (v / tokMax) * hTok);
        ctx.fillRect(left + i * slot + (slot - barW) / 2 + k * half, tokTop + hTok - h, half, h);
      }
    });

    // Minute labels, local time, every ten minutes and the current one.
    ctx.fillStyle = text;
    ctx.textAlign = "center";
    for (let i = 0; i < model.n; i++) {
      const m = model.minutes[i];
      const isLast = i === model.n - 1;
      if (!isLast && m.getMinutes() % 10 !== 0) continue;
      if (!isLast && i > model.n - 6) continue; // keep clear of the "now" label
      const x = left + (i + 0.5) * slot;
      const label = isLast ? "now" : hhmm(m);
      ctx.fillText(label, Math.min(x, left + plotW - 12), tokTop + hTok + 13);
      ctx.fillText(label, Math.min(x, left + plotW - 12), reqTop + hReq + 13);
    }

    canvas.dataset.points = String(points);
    const total = model.requests.reduce((a, b) => a + b, 0);
    canvas.setAttribute("aria-label", `Requests and tokens per minute over the last 60 minutes: ${total} requests`);
    drawLegend(model);
  }

  function showTip(evt) {
    const tip = $("tip");
    if (!chartGeom || !last) return;
    const rect = $("chart").getBoundingClientRect();
    const x = evt.clientX - rect.left;
    const y = evt.clientY - rect.top;
    const i = Math.floor((x - chartGeom.left) / chartGeom.slot);
    if (i < 0 || i >= chartGeom.n || y < chartGeom.top - 16 || y > chartGeom.bottom) {
      hideTip();
      return;
    }
    if (i !== hoverSlot) {
      hoverSlot = i;
      drawChart(last);
    }
    const m = chartGeom.model;
    const rows = [el("div", { class: "head" }, `${hhmm(m.minutes[i])}  ·  ${num(m.requests[i])} requests`)];
    for (const s of [...m.stacks, ...m.tokens]) {
      if (!s.values[i]) continue;
      rows.push(el("div", { class: "row" }, el("span", { style: { color: s.color } }, s.name), el("span", null, num(s.values[i]))));
    }
    tip.replaceChildren(...rows);
    tip.hidden = false;
    const wrap = $("chart-wrap").clientWidth;
    const tx = x + 14 + tip.offsetWidth > wrap ? x - 14 - tip.offsetWidth : x + 14;
    tip.style.left = Math.max(0, tx) + "px";
    tip.style.top = Math.max(0, y - 10) + "px";
  }

  function hideTip() {
    $("tip").hidden = true;
    if (hoverSlot !== -1) {
      hoverSlot = -1;
      if (last) drawChart(last);
    }
  }

  // ---------- polling ----------

  function drawLive() {
    const live = $("live");
    const since = lastOk ? ago((Date.now() - lastOk) / 1000) : null;
    if (failure) {
      live.dataset.state = "error";
      setText("live-text", `offline: ${failure}${since ? " · last update " + since : ""}`);
      live.title = failure;
    } else if (lastOk) {
      live.dataset.state = "ok";
      setText("live-text", `live · updated ${since}`);
      live.title = `last successful poll ${new Date(lastOk).toLocaleTimeString()}`;
    }
  }

  function draw(d) {
    const parts = [
      drawStore, drawReload, drawHeader, drawTiers, drawProviders, drawQuotas, drawDoctor, drawRules, drawProbes, drawSessions,
      drawRecent, drawChart,
    ];
    for (const part of parts) {
      try {
        part(d);
      } catch (err) {
        console.error("fcc dashboard:", part.name, err);
      }
    }
  }

  async function poll() {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), TIMEOUT_MS);
    try {
      const res = await fetch(DATA_URL, { cache: "no-store", signal: ctrl.signal, credentials: "same-origin" });
      if (!res.ok) {
        let message = `HTTP ${res.status}`;
        try {
          const body = await res.json();
          if (body && body.error && body.error.message) message += ` ${body.error.message}`;
        } catch (_) {
          /* not JSON */
        }
        throw new Error(message);
      }
      const d = await res.json();
      last = d;
      lastOk = Date.now();
      failure = null;
      $("main").classList.remove("stale");
      draw(d);
    } catch (err) {
      failure = err && err.name === "AbortError" ? "fcc did not answer in 5 s" : err && err.message ? err.message : "cannot reach fcc";
      if (failure === "Failed to fetch" || failure.startsWith("NetworkError")) failure = "cannot reach fcc";
      $("main").classList.add("stale");
    } finally {
      clearTimeout(timer);
      drawLive();
      setTimeout(poll, POLL_MS);
    }
  }

  function start() {
    const canvas = $("chart");
    canvas.addEventListener("mousemove", showTip);
    canvas.addEventListener("mouseleave", hideTip);
    let resizeTimer = 0;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => last && drawChart(last), 100);
    });
    const scheme = window.matchMedia("(prefers-color-scheme: dark)");
    if (scheme.addEventListener) scheme.addEventListener("change", () => last && draw(last));
    setInterval(drawLive, 1000);
    poll();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
