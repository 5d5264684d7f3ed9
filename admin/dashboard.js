"use strict";
// gritsd's dashboard: polls /api/dashboard and draws it. Everything the
// swarm or a browser report says goes in through textContent.
(() => {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  const bytes = (n) => {
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
  };
  const count = (n) => n.toLocaleString("en");
  const dur = (s) => {
    const neg = s < 0; s = Math.abs(s);
    const t = s < 90 ? Math.round(s) + " s" : s < 5400 ? Math.round(s / 60) + " min" : s < 172800 ? (s / 3600).toFixed(1) + " h" : (s / 86400).toFixed(1) + " d";
    return neg ? "-" + t : t;
  };
  const pct = (x) => x < 0 ? "–" : (100 * x).toFixed(1) + " %";
  const set = (id, text) => { $(id).textContent = text; };
  const cell = (tr, text, cls) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
  };

  function chart(svg, w) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const W = 600, H = 140, top = 8, bottom = 18, left = 4;
    const n = w.buckets.length;
    const max = Math.max(1, ...w.buckets.map((b) => b.origin + b.volunteers));
    const bw = (W - left) / Math.max(1, n);
    const scale = (H - top - bottom) / max;
    w.buckets.forEach((b, i) => {
      const x = left + i * bw;
      let y = H - bottom;
      for (const [cls, v] of [["vol", b.volunteers], ["org", b.origin]]) {
        if (v <= 0) continue;
        const h = Math.max(1, v * scale);
        y -= h;
        const r = document.createElementNS(SVG, "rect");
        r.setAttribute("class", cls);
        r.setAttribute("x", x.toFixed(1));
        r.setAttribute("y", y.toFixed(1));
        r.setAttribute("width", Math.max(1, bw - 1).toFixed(1));
        r.setAttribute("height", h.toFixed(1));
        const tip = document.createElementNS(SVG, "title");
        tip.textContent = new Date(b.start).toLocaleTimeString() + ": " + bytes(v) + (cls === "vol" ? " from volunteers" : " from the origin");
        r.appendChild(tip);
        svg.appendChild(r);
      }
    });
    const label = (x, anchor, text) => {
      const t = document.createElementNS(SVG, "text");
      t.setAttribute("x", x); t.setAttribute("y", H - 5); t.setAttribute("text-anchor", anchor);
      t.textContent = text;
      svg.appendChild(t);
    };
    if (n > 0) {
      label(left, "start", new Date(w.buckets[0].start).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
      label(W - 2, "end", "now");
    }
    const peak = document.createElementNS(SVG, "text");
    peak.setAttribute("x", left + 4); peak.setAttribute("y", top + 4); peak.setAttribute("text-anchor", "start");
    peak.textContent = "peak " + bytes(max) + " per " + dur(w.step_seconds);
    svg.appendChild(peak);
  }

  function draw(d) {
    set("role", d.node.role);
    set("node", d.node.id ? d.node.id.slice(0, 24) + "…" : "–");
    const ready = $("ready");
    ready.textContent = d.node.ready ? "ready" : "not ready";
    ready.className = "badge " + (d.node.ready ? "ok" : "bad");
    const nr = $("notready");
    nr.hidden = d.node.ready;
    nr.textContent = d.node.ready ? "" : "not ready: " + (d.node.not_ready || []).join("; ");
    set("uptime", dur(d.node.uptime_seconds));
    set("updated", new Date(d.now).toLocaleTimeString());
    if (d.root) {
      set("root-seq", "seq " + d.root.seq);
      set("root-tree", d.root.tree);
      set("root-age", dur(d.root.age_seconds) + " ago");
      set("root-expires", dur(d.root.expires_in_seconds));
    }
    set("replicas", d.replicas + " of " + d.pinning + " pinning nodes");
    set("lacking", bytes(d.lacking_bytes));
    set("share-hour", pct(d.hour.share));
    set("share-day", pct(d.day.share));
    chart($("chart-hour"), d.hour);
    chart($("chart-day"), d.day);
    const t = d.totals;
    set("http-requests", count(t.http_requests));
    set("http-bytes", bytes(t.http_bytes));
    set("grits1-requests", count(t.grits1_requests));
    set("grits1-bytes", bytes(t.grits1_bytes));
    set("cache-ratio", pct(t.cache_hit_ratio));
    set("verify-failures", count(t.verification_failures));

    set("member-count", d.members.length);
    const mb = $("members").tBodies[0];
    mb.replaceChildren();
    for (const m of d.members) {
      const tr = document.createElement("tr");
      tr.className = m.state + (m.self ? " self" : "");
      tr.dataset.role = m.role;
      cell(tr, m.id.slice(8, 24));
      cell(tr, m.role);
      cell(tr, m.state);
      cell(tr, m.load + " %", "num");
      cell(tr, String(m.root_seq), "num");
      cell(tr, m.pins && m.pins.length ? String(m.complete_seq) : "–", "num");
      cell(tr, m.pins && m.pins.length ? bytes(m.lacking_bytes) : "–", "num");
      cell(tr, m.reported ? bytes(m.http_bytes) : "–", "num served");
      cell(tr, m.reported ? bytes(m.grits1_bytes) : "–", "num");
      cell(tr, m.url || "");
      mb.appendChild(tr);
    }
    set("report-count", t.reports);
    const rb = $("reports").tBodies[0];
    rb.replaceChildren();
    for (const r of d.reports) {
      const tr = document.createElement("tr");
      cell(tr, r.peer);
      cell(tr, String(r.count), "num");
      cell(tr, new Date(r.last).toLocaleTimeString());
      cell(tr, r.reason);
      cell(tr, r.hash || "");
      rb.appendChild(tr);
    }
    document.body.dataset.updated = String(Date.now());
  }

  async function poll() {
    try {
      const resp = await fetch("/api/dashboard", { cache: "no-store" });
      if (!resp.ok) throw new Error(resp.status + " " + resp.statusText);
      draw(await resp.json());
    } catch (e) {
      const r = $("ready");
      r.textContent = "unreachable";
      r.className = "badge bad";
    }
    setTimeout(poll, 2000);
  }
  poll();
})();
