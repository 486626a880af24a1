"use strict";
// Draws the report from the JSON in #data. Every section is a <section
// data-section="NAME">; figures carry data-k="..." so tests can compare
// them with the text report.
(function () {
  const D = JSON.parse(document.getElementById("data").textContent);
  const main = document.getElementById("main");
  const nav = document.getElementById("nav");
  const SVGNS = "http://www.w3.org/2000/svg";

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "text") e.textContent = v;
      else if (k === "cls") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of kids.flat()) {
      if (c === null || c === undefined) continue;
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return e;
  }
  function sv(tag, attrs, ...kids) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of kids.flat()) if (c) e.appendChild(c);
    return e;
  }
  function section(id, title, ...kids) {
    const s = el("section", { id: id, "data-section": id }, el("h2", { text: title }), ...kids);
    main.appendChild(s);
    nav.appendChild(el("a", { href: "#" + id, text: title }));
    return s;
  }
  const big = (x) => (typeof x === "string" ? BigInt(x) : BigInt(x || 0));
  const hex = (x) => "0x" + big(x).toString(16);
  function size(n) {
    n = Number(n);
    const u = [["GiB", 1 << 30], ["MiB", 1 << 20], ["KiB", 1 << 10]];
    for (const [name, v] of u) if (n >= v) return (n / v).toFixed(n % v ? 1 : 0) + " " + name;
    return n + " B";
  }
  function ns(n) {
    n = Number(n);
    if (n >= 1e9) return (n / 1e9).toFixed(3) + " s";
    if (n >= 1e6) return (n / 1e6).toFixed(3) + " ms";
    if (n >= 1e3) return (n / 1e3).toFixed(1) + " µs";
    return n + " ns";
  }
  // a stable colour per name (hypercalls and exit kinds keep theirs)
  const PALETTE = ["#2b7bb9", "#e8743b", "#19a979", "#945ecf", "#ed4a7b", "#13a4b4", "#b28600", "#6f7d8c", "#d9534f", "#5cb85c", "#8e6c8a", "#3f51b5"];
  // the kinds of exit in this run take the palette in order (no two alike
  // among the first twelve); other names a colour from their hash
  const ORDER = new Map(((D.timeline && D.timeline.kinds) || []).slice(1).map((k, i) => [k, PALETTE[i % PALETTE.length]]));
  function colour(name) {
    if (ORDER.has(name)) return ORDER.get(name);
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    return PALETTE[h % PALETTE.length];
  }
  const tip = el("div", { cls: "tip" });
  document.body.appendChild(tip);
  function showTip(ev, text) {
    tip.textContent = text;
    tip.style.display = "block";
    tip.style.left = Math.min(ev.clientX + 12, window.innerWidth - 300) + "px";
    tip.style.top = ev.clientY + 14 + "px";
  }
  const hideTip = () => { tip.style.display = "none"; };
  function table(head, rows, numeric) {
    const t = el("table", {}, el("tr", {}, head.map((h, i) => el("th", { cls: numeric && numeric[i] ? "n" : null, text: h }))));
    for (const r of rows) t.appendChild(el("tr", r.attrs || {}, r.cells.map((c, i) => (c instanceof Node ? el("td", {}, c) : el("td", { cls: numeric && numeric[i] ? "n" : null, text: String(c) })))));
    return t;
  }
  function kv(pairs) {
    return table(["", ""], pairs.map(([k, v, key]) => ({ cells: [k, el("span", { "data-k": key, text: String(v) })] })));
  }

  if (D.cut) main.appendChild(el("p", { cls: "bad", text: D.cut }));

  // ---- at a glance -------------------------------------------------------
  const L = D.layout;
  const R = D.run;
  if (D.kind === "run") {
    const kind = (R.stop && R.stop.state) || "?";
    const pairs = [
      ["guest", R.guest, "guest"],
      ["outcome", (D.text || "").split("\n")[0].replace(/^host: /, ""), "outcome"],
      ["stop", kind, "stop"],
      ["exit code", R.exit_code, "exit-code"],
      ["42 check", R.check_42 ? (R.check_42.pass ? "pass" : "FAIL") : "not asked for", "check"],
      ["exits", R.exits.total, "exits"],
      ["vCPUs", R.vcpus.length, "vcpus"],
      ["time in the run loop", (R.elapsed_us / 1000).toFixed(3) + " ms", "elapsed"],
    ];
    if (L) {
      pairs.splice(2, 0, ["CPU mode", L.mode, "mode"], ["memory", size(L.mem_size), "memory"]);
    }
    if (R.guest_errors) pairs.push(["guest errors", R.guest_errors, "guest-errors"]);
    section("glance", "At a glance", kv(pairs));
  } else if (D.kind === "layout") {
    section("glance", "At a glance", kv([
      ["CPU mode", L.mode, "mode"],
      ["memory", size(L.mem_size), "memory"],
      ["start RIP", hex(L.regs.rip), "rip"],
      ["paging", L.paging, "paging"],
      ["kvm_run", size(L.kvm_run_size) + " at HVA " + hex(L.kvm_run_hva), "kvm-run"],
    ]));
  } else if (D.kind === "matrix") {
    const M = D.matrix;
    section("glance", "At a glance", kv([
      ["policy", M.policy, "policy"],
      ["quantum", ns(M.quantum_ns), "quantum"],
      ["VMs", M.vms.length, "vms"],
      ["turns", M.vms.reduce((a, v) => a + v.quanta, 0), "turns"],
      ["ran for", ns(M.elapsed_ns), "elapsed"],
      ["stopped", M.stop, "stop"],
    ]));
  }

  // ---- the crash -----------------------------------------------------------
  if (R && R.crash) {
    const C = R.crash;
    const s = section("crash", "The crash");
    s.appendChild(el("p", { "data-k": "fault", cls: "bad", text: (D.text || "").split("\n")[0].replace(/^host: /, "") }));
    s.appendChild(kv([
      ["CPU mode", C.mode + ", CPL " + C.cpl, "crash-mode"],
      ["paging", C.paging, "crash-paging"],
      ["at RIP", (C.rip_symbol || "(no symbol)"), "crash-symbol"],
      ["instruction", C.instruction + (C.bytes ? "   [" + C.bytes + "]" : ""), "crash-instruction"],
    ]));
    if (C.stack_overflow) s.appendChild(el("p", { cls: "bad", text: C.stack_overflow }));
    if (C.code && C.code.length) {
      s.appendChild(el("h3", { text: "code around RIP" }));
      s.appendChild(table(["address", "bytes", "instruction"], C.code.map((l) => ({ attrs: l.rip ? { cls: "rip", "data-k": "rip-line" } : {}, cells: [l.addr + (l.rip ? "  ← RIP" : ""), l.bytes, l.text] }))));
    }
    if (C.backtrace.length) {
      s.appendChild(el("h3", { text: "backtrace (frame pointers), innermost first" }));
      s.appendChild(el("ol", { "data-k": "backtrace" }, C.backtrace.map((f) => el("li", { cls: "mono", text: f }))));
    }
    for (const [what, w] of [["the faulting address (CR2)", C.fault_address_walk], ["RIP", C.rip_walk], ["RSP", C.rsp_walk]]) {
      if (!w) continue;
      s.appendChild(el("h3", { text: what + ": translate GVA " + w.gva }));
      s.appendChild(el("ol", { cls: "mono" }, w.steps.map((t) => el("li", { text: t.text }))));
      s.appendChild(el("p", { cls: w.error ? "bad" : "mono", text: w.error ? w.error : "=> GPA " + w.gpa + ", HVA " + w.hva }));
    }
    s.appendChild(el("h3", { text: "the last exits, oldest first" }));
    s.appendChild(el("ol", { cls: "mono" }, C.last_exits.map((e) => el("li", { text: e }))));
  }

  // ---- guest-physical memory ------------------------------------------------
  function areaColour(what) {
    if (what === "free") return "#eef1f5";
    for (const [p, c] of [["page table", "#e8743b"], ["guest image", "#2b7bb9"], ["stack", "#19a979"], ["SIMVIRTIO", "#945ecf"], ["ABI", "#13a4b4"], ["host", "#b28600"], ["GDT", "#ed4a7b"], ["KVM", "#6f7d8c"], ["APIC", "#d9534f"]]) {
      if (what.startsWith(p) || what.includes(p)) return c;
    }
    return "#8e6c8a";
  }
  function memoryBar(areas, lo, hi, label, onzoom, minw) {
    const W = 1000, H = 46;
    const g = sv("svg", { viewBox: "0 0 " + W + " " + (H + 18), width: "100%", role: "img", "aria-label": label, "data-k": "memory-bar" });
    const span = Number(hi - lo);
    const x = (a) => (Number(big(a) - lo) / span) * W;
    g.appendChild(sv("rect", { x: 0, y: 0, width: W, height: H, fill: "#f7f8fa", stroke: "#c9ced6" }));
    for (const a of areas) {
      const s = big(a.start), e = big(a.end);
      if (e <= lo || s >= hi) continue;
      const x0 = Math.max(0, x(s < lo ? lo : s)), x1 = Math.min(W, x(e > hi ? hi : e));
      const r = sv("rect", { x: x0, y: 0, width: Math.max(a.what === "free" ? 0.6 : minw || 0.6, x1 - x0), height: H, fill: areaColour(a.what), stroke: a.what === "free" ? "none" : "#ffffff", "stroke-width": 0.3 });
      r.appendChild(sv("title", { text: a.start + ".." + a.end + "  " + size(Number(e - s)) + "  " + a.what + (a.hva ? "  (HVA " + a.hva + ")" : "  (no guest RAM)") }));
      r.addEventListener("mousemove", (ev) => showTip(ev, a.start + ".." + a.end + " · " + size(Number(e - s)) + " · " + a.what));
      r.addEventListener("mouseleave", hideTip);
      g.appendChild(r);
    }
    g.appendChild(sv("text", { x: 0, y: H + 14, "font-size": 11, fill: "#5b6575", text: hex(lo) }));
    g.appendChild(sv("text", { x: W, y: H + 14, "font-size": 11, fill: "#5b6575", "text-anchor": "end", text: hex(hi) }));
    g.appendChild(sv("text", { x: W / 2, y: H + 14, "font-size": 11, fill: "#5b6575", "text-anchor": "middle", text: label }));
    if (onzoom) g.addEventListener("click", (ev) => {
      const b = g.getBoundingClientRect();
      onzoom((ev.clientX - b.left) / b.width);
    });
    return g;
  }
  if (L) {
    const s = section("memory", "Guest-physical memory");
    const mem = big(L.mem_size);
    const ram = L.areas.filter((a) => big(a.start) < mem);
    let lo = 0n, hi = mem;
    const holder = el("div");
    const draw = () => {
      holder.replaceChildren(memoryBar(ram, lo, hi, "guest RAM " + (lo === 0n && hi === mem ? "(to scale; click to zoom in 8x)" : "(zoomed; click to zoom further)"), (f) => {
        const span = hi - lo;
        if (span <= 0x1000n) return;
        const mid = lo + BigInt(Math.floor(Number(span) * f));
        const half = span / 16n;
        lo = mid - half < 0n ? 0n : mid - half;
        hi = lo + half * 2n > mem ? mem : lo + half * 2n;
        draw();
      }));
    };
    draw();
    s.appendChild(el("div", {}, el("button", { text: "whole RAM", onclick: () => { lo = 0n; hi = mem; draw(); } })));
    s.appendChild(holder);
    s.appendChild(memoryBar(L.areas, 0n, 1n << 32n, "the first 4 GiB of guest-physical address space: RAM and the MMIO windows (no RAM behind them)", null, 4));
    const legend = el("div", { cls: "legend" });
    const seen = new Set();
    for (const a of L.areas) {
      const c = areaColour(a.what);
      const name = a.what === "free" ? "free" : a.what.split(":")[0];
      if (seen.has(name)) continue;
      seen.add(name);
      legend.appendChild(el("span", {}, el("i", { style: "background:" + c }), name));
    }
    s.appendChild(legend);
    const used = L.areas.filter((a) => a.what !== "free");
    s.appendChild(el("details", {}, el("summary", { text: used.length + " areas (free space left out)" }),
      table(["GPA", "size", "HVA", "what"], used.map((a) => ({ attrs: { "data-k": "area" }, cells: [a.start + ".." + a.end, size(Number(big(a.end) - big(a.start))), a.hva || "-", a.what] })))));
  }

  // ---- page tables -------------------------------------------------------------
  if (L) {
    const s = section("pagetables", "Page tables");
    s.appendChild(el("p", { "data-k": "paging", text: "paging: " + L.paging }));
    const tree = el("div", { cls: "tree mono" });
    const rows = [];
    L.tables.forEach((e, i) => {
      const idx = e.count > 1 ? e.index + ".." + (e.index + e.count - 1) : String(e.index);
      const to = e.next_table ? "-> next table at GPA " + e.next_table : "-> " + (e.count > 1 ? e.count + " pages of " : "page of ") + size(e.page_size) + " at GPA " + e.page_gpa;
      const d = el("div", { style: "padding-left:" + (e.depth * 22 + 4) + "px", "data-k": "pte", title: "maps GVA " + e.gva + " (" + size(e.span) + ")" },
        e.level + "[" + idx + "] at GPA " + e.at + " = " + e.value + " [" + e.flags + "] " + to);
      rows.push(d);
      tree.appendChild(d);
    });
    if (!L.tables.length) tree.appendChild(el("div", { cls: "muted", text: "no page tables: " + L.paging }));
    s.appendChild(tree);
    const input = el("input", { id: "gva", size: 22, placeholder: "GVA, e.g. 0x100000", value: "" });
    const out = el("div", { cls: "walk", "data-k": "walk" });
    const go = () => {
      for (const r of rows) r.classList.remove("hl");
      out.replaceChildren(...walk(input.value.trim(), rows));
    };
    s.appendChild(el("p", {}, "Translate a guest-virtual address: ", input, " ", el("button", { id: "walk", text: "walk", onclick: go })));
    input.addEventListener("keydown", (ev) => { if (ev.key === "Enter") go(); });
    s.appendChild(out);
    const m = /gva=(0x[0-9a-fA-F]+|[0-9]+)/.exec(location.hash);
    const first = m ? m[1] : (L.translation ? L.translation.gva : null);
    if (first) { input.value = first; go(); }
  }
  // the walk of --translate, done here on the entries the host read; its
  // lines say what `host layout --translate` says
  function walk(text, rows) {
    let gva;
    try { gva = BigInt(text); } catch (e) { return [el("p", { cls: "bad", text: "not an address: " + text })]; }
    const steps = [];
    const list = () => el("ol", { cls: "mono", "data-k": "walk-steps" }, steps.map((t) => el("li", { text: t })));
    const fail = (why) => { steps.push("fails: " + why); return [list(), el("p", { cls: "bad", "data-k": "walk-result", text: "=> Invalid GVA: " + why })]; };
    const done = (gpa) => {
      const mem = big(L.mem_size);
      if (gpa >= mem) return fail("it maps to GPA " + hex(gpa) + ", which has no guest memory behind it");
      const hva = big(L.mem_hva) + gpa;
      steps.push("GPA " + hex(gpa) + " is in memory slot 0 (GPA 0 at HVA " + hex(L.mem_hva) + "): HVA = " + hex(hva));
      return [list(), el("p", { cls: "mono", "data-k": "walk-result", text: "=> GPA " + hex(gpa) + ", HVA " + hex(hva) })];
    };
    const long = L.paging.startsWith("4-level");
    const two = L.paging.startsWith("2-level");
    if (!long && !two) {
      steps.push("no paging in effect (" + L.paging + "): the linear address is the GPA");
      return done(gva);
    }
    const mask = long ? (1n << 48n) - 1n : (1n << 32n) - 1n;
    const g = gva & mask;
    const shifts = long ? [39n, 30n, 21n, 12n] : [22n, 12n];
    const names = long ? ["PML4", "PDPT", "PD", "PT"] : ["PD", "PT"];
    const bits = long ? 511n : 1023n;
    const esz = long ? 8n : 4n;
    let table = big(L.sregs.cr3) & ~0xfffn;
    steps.push((long ? "4-level paging (CR0.PG, EFER.LMA)" : "32-bit paging (CR0.PG, no PAE)") + ": CR3 = " + L.sregs.cr3 + "; GVA " + hex(gva) + " splits into " + shifts.map((s, i) => names[i] + " " + ((g >> s) & bits)).join(" | "));
    for (let depth = 0; depth < shifts.length; depth++) {
      const idx = (g >> shifts[depth]) & bits;
      const i = L.tables.findIndex((e) => e.depth === depth && big(e.table) === table && BigInt(e.index) <= idx && idx < BigInt(e.index + e.count));
      if (i < 0) {
        steps.push(names[depth] + " at GPA " + hex(table) + ", index " + idx + ": entry at GPA " + hex(table + idx * esz) + " -> not present");
        return fail(names[depth] + " entry " + idx + " of the table at " + hex(table) + " is not present");
      }
      const e = L.tables[i];
      rows[i].classList.add("hl");
      const k = idx - BigInt(e.index);
      const head = e.level + " at GPA " + e.table + ", index " + idx + ": entry at GPA " + hex(big(e.at) + k * esz);
      if (e.next_table) {
        steps.push(head + " = " + e.value + " [" + e.flags + "] -> next table at GPA " + e.next_table);
        table = big(e.next_table);
        continue;
      }
      const psz = BigInt(e.page_size);
      const page = big(e.page_gpa) + k * psz;
      const off = g & (psz - 1n);
      steps.push(head + " = " + hex(big(e.value) + k * psz) + " [" + e.flags + "] -> maps a page");
      steps.push("page of " + size(Number(psz)) + " at GPA " + hex(page) + " + offset " + hex(off) + " = GPA " + hex(page + off));
      return done(page + off);
    }
    return fail("the walk did not end");
  }

  // ---- exits over time ---------------------------------------------------------
  const T = D.timeline;
  if (T && T.vcpus.length) {
    const s = section("timeline", "Exits over time");
    const all = T.vcpus.flatMap((v) => v.slices);
    let end = 1;
    for (const x of all) end = Math.max(end, x[0] + x[1]);
    let t0 = 0, t1 = end;
    const counts = new Array(T.kinds.length).fill(0);
    for (const x of all) counts[x[2]]++;
    const legend = el("div", { cls: "legend" });
    T.kinds.forEach((k, i) => {
      if (i === 0) legend.appendChild(el("span", {}, el("i", { style: "background:#cfe3f5" }), "in KVM_RUN (the guest runs)"));
      else legend.appendChild(el("span", { "data-k": "exit-kind" }, el("i", { style: "background:" + colour(k) }), k + " × " + counts[i]));
    });
    const info = el("span", { cls: "muted" });
    const canvases = [];
    const redraw = () => {
      info.textContent = " showing " + ns(t0) + " .. " + ns(t1) + " of " + ns(end);
      for (const [c, v] of canvases) paint(c, v);
    };
    const zoom = (f, at) => {
      const span = (t1 - t0) * f;
      const mid = t0 + (t1 - t0) * at;
      t0 = Math.max(0, mid - span * at);
      t1 = Math.min(end, t0 + Math.max(span, 50));
      redraw();
    };
    s.appendChild(el("p", {}, el("button", { text: "zoom in", onclick: () => zoom(0.25, 0.5) }), el("button", { text: "zoom out", onclick: () => zoom(4, 0.5) }), el("button", { text: "all", onclick: () => { t0 = 0; t1 = end; redraw(); } }), el("span", { cls: "muted", text: "(wheel to zoom, drag to move, hover for an exit)" }), info));
    function paint(c, v) {
      const w = Math.max(200, c.clientWidth || 800), h = 34;
      const r = window.devicePixelRatio || 1;
      c.width = w * r; c.height = h * r;
      const g = c.getContext("2d");
      g.scale(r, r);
      g.clearRect(0, 0, w, h);
      const X = (t) => ((t - t0) / (t1 - t0)) * w;
      for (const x of v.slices) {
        if (x[0] + x[1] < t0 || x[0] > t1) continue;
        const a = X(x[0]), b = X(x[0] + x[1]);
        if (x[2] === 0) { g.fillStyle = "#cfe3f5"; g.fillRect(a, 12, Math.max(b - a, 0.5), 10); }
        else { g.fillStyle = colour(T.kinds[x[2]]); g.fillRect(a, 2, Math.max(b - a, 1.5), 30); }
      }
    }
    for (const v of T.vcpus) {
      const c = el("canvas", { height: 34, "data-k": "timeline-vcpu", "aria-label": "vCPU " + v.vcpu });
      canvases.push([c, v]);
      s.appendChild(el("div", { cls: "muted", text: "vCPU " + v.vcpu + ": " + v.slices.length + " slices" + (v.dropped ? " (" + v.dropped + " later ones not drawn)" : "") }));
      s.appendChild(c);
      let drag = null;
      c.addEventListener("wheel", (ev) => { ev.preventDefault(); const b = c.getBoundingClientRect(); zoom(ev.deltaY < 0 ? 0.7 : 1 / 0.7, (ev.clientX - b.left) / b.width); }, { passive: false });
      c.addEventListener("mousedown", (ev) => { drag = [ev.clientX, t0, t1]; });
      window.addEventListener("mouseup", () => { drag = null; });
      c.addEventListener("mousemove", (ev) => {
        const b = c.getBoundingClientRect();
        if (drag) {
          const dt = ((ev.clientX - drag[0]) / b.width) * (drag[2] - drag[1]);
          t0 = Math.max(0, drag[1] - dt); t1 = Math.min(end, t0 + (drag[2] - drag[1]));
          redraw();
          return;
        }
        const t = t0 + ((ev.clientX - b.left) / b.width) * (t1 - t0);
        const px = (t1 - t0) / b.width;
        let best = null;
        for (const x of v.slices) if (x[2] !== 0 && x[0] - 2 * px <= t && t <= x[0] + x[1] + 2 * px) { best = x; break; }
        if (best) showTip(ev, T.kinds[best[2]] + " at " + ns(best[0]) + ", handled in " + ns(best[1]));
        else hideTip();
      });
      c.addEventListener("mouseleave", hideTip);
    }
    s.appendChild(legend);
    window.addEventListener("resize", redraw);
    requestAnimationFrame(redraw);
  } else if (D.kind === "run") {
    section("timeline", "Exits over time", el("p", { cls: "muted", text: "not recorded for this run" }));
  }

  // ---- the exit table and handling times -------------------------------------
  if (R) {
    const s = section("exits", "Exits");
    const E = R.exits;
    const rows = [];
    const timed = E.timed;
    for (const r of E.by_reason) {
      rows.push({ attrs: { "data-k": "reason", "data-name": r.name, "data-count": r.count }, cells: [r.name + (r.kvm_code !== null ? " (" + r.kvm_code + ")" : ""), r.count, timed ? ns(r.handling_ns) : "-"] });
      if (r.reason === "io") for (const p of E.io) rows.push({ attrs: { "data-k": "port" }, cells: ["    " + p.dir + " port " + hex(p.port) + (p.hypercall ? " " + p.hypercall : ""), p.count, timed ? ns(p.handling_ns) : "-"] });
      if (r.reason === "mmio") for (const m of E.mmio) rows.push({ attrs: { "data-k": "mmio" }, cells: ["    " + m.dir + " " + m.addr + (m.device ? " " + m.device : ""), m.count, timed ? ns(m.handling_ns) : "-"] });
    }
    s.appendChild(el("p", { "data-k": "exits-total", text: E.total + " exits in all" + (timed ? "" : " (run with --stats for the host's handling time per row)") }));
    s.appendChild(table(["reason / port / address", "count", "host handling"], rows, [false, true, true]));
    if (E.interrupts) s.appendChild(el("pre", { text: JSON.stringify(E.interrupts, null, 1) }));
    const H = D.histograms || [];
    if (H.length) {
      s.appendChild(el("h3", { text: "host handling time per exit, by kind (log2 buckets)" }));
      const box = el("div", { cls: "hists" });
      for (const h of H) {
        const W = 260, Hh = 70;
        const max = Math.max(...h.buckets.map((b) => b[1]));
        const g = sv("svg", { viewBox: "0 0 " + W + " " + (Hh + 16), width: W, "data-k": "histogram" });
        const lo = h.buckets[0][0], hi = h.buckets[h.buckets.length - 1][0];
        const nb = Math.round(Math.log2(hi / lo)) + 1;
        const bw = W / Math.max(nb, 1);
        for (const [b, c] of h.buckets) {
          const i = Math.round(Math.log2(b / lo));
          const bh = (c / max) * Hh;
          const r = sv("rect", { x: i * bw + 1, y: Hh - bh, width: Math.max(bw - 2, 1), height: bh, fill: colour(h.what) });
          r.appendChild(sv("title", { text: c + " exits took " + ns(b) + " .. " + ns(b * 2) }));
          g.appendChild(r);
        }
        g.appendChild(sv("text", { x: 0, y: Hh + 13, "font-size": 10, fill: "#5b6575", text: ns(lo) }));
        g.appendChild(sv("text", { x: W, y: Hh + 13, "font-size": 10, fill: "#5b6575", "text-anchor": "end", text: ns(hi * 2) }));
        box.appendChild(el("figure", {}, g, el("figcaption", { text: h.what + " × " + h.count })));
      }
      s.appendChild(box);
    }
    if (R.kvm_stats) {
      const K = R.kvm_stats;
      s.appendChild(el("h3", { text: "KVM's own counters (KVM_GET_STATS_FD), beside ours" }));
      const nz = (st) => st.stats.filter((x) => x.kind !== "log_hist" && x.kind !== "linear_hist" && x.values.some((v) => v !== 0));
      const rows2 = [];
      K.vcpus.forEach((v, i) => { for (const x of nz(v)) rows2.push({ attrs: { "data-k": "kvm-stat" }, cells: ["vcpu " + i, x.name, x.values.join(" "), x.unit] }); });
      for (const x of nz(K.vm)) rows2.push({ attrs: { "data-k": "kvm-stat" }, cells: ["vm", x.name, x.values.join(" "), x.unit] });
      const find = (name) => K.vcpus.reduce((a, v) => a + (v.stats.find((x) => x.name === name) || { values: [0] }).values[0], 0);
      s.appendChild(kv([
        ["exits the host handled", E.total, "our-exits"],
        ["KVM's exits (incl. those it handled itself)", find("exits"), "kvm-exits"],
        ["KVM's io_exits / our I/O exits", find("io_exits") + " / " + (E.by_reason.find((r) => r.reason === "io") || { count: 0 }).count, "io-exits"],
      ]));
      s.appendChild(table(["of", "counter", "value", "unit"], rows2));
    }
  }

  // ---- the KVM calls as a sequence diagram -----------------------------------
  if (D.kind === "run") {
    const s = section("kvmcalls", "KVM calls");
    const K = D.kvm_calls;
    const setupOnly = K && K.runs === 0 && R.exits.total > 0;
    if (!K) {
      s.appendChild(el("p", { cls: "muted", text: "not recorded for this run" }));
    } else {
      const lanes = ["VMM", "/dev/kvm", "vm", "vcpu"];
      const lane = (t) => (t === "host" ? 0 : t.startsWith("/dev/kvm") ? 1 : t.startsWith("vm") ? 2 : 3);
      const items = [];
      for (const c of K.setup) items.push(["call", c]);
      if (!setupOnly) {
        items.push(["loop", null]);
        for (const [k, n] of K.exits) items.push(["exit", k + " × " + n]);
        for (const [n, p, c] of K.handlers) items.push(["handler", n + " × " + c + " (" + p + ")"]);
        items.push(["endloop", null]);
      }
      if (K.last_exit) items.push(["exit", K.last_exit + " (the last)"]);
      for (const c of K.end) items.push(["call", c]);
      const W = 1000, row = 22, top = 30;
      const LX = [90, 330, 560, 800];
      const g = sv("svg", { viewBox: "0 0 " + W + " " + (top + row * items.length + 20), width: "100%", "data-k": "sequence" });
      lanes.forEach((n, i) => {
        g.appendChild(sv("text", { x: LX[i], y: 16, "text-anchor": "middle", "font-size": 13, "font-weight": 600, text: n }));
        g.appendChild(sv("line", { x1: LX[i], y1: 22, x2: LX[i], y2: top + row * items.length + 10, stroke: "#b8c0cc", "stroke-dasharray": "4 3" }));
      });
      let loopStart = 0;
      items.forEach(([kind, c], i) => {
        const y = top + row * i + 14;
        if (kind === "call") {
          const to = lane(c.target);
          const label = c.name + (c.args ? "(" + c.args + ")" : "") + " = " + c.ret;
          const short = label.length > 70 ? label.slice(0, 67) + "..." : label;
          const line = to === 0
            ? sv("path", { d: "M" + LX[0] + " " + (y - 6) + " h 30 v 8 h -30", fill: "none", stroke: "#2b6cb0" })
            : sv("line", { x1: LX[0], y1: y, x2: LX[to], y2: y, stroke: "#2b6cb0", "marker-end": "url(#arrow)" });
          const t = sv("text", { x: to === 0 ? LX[0] + 36 : LX[0] + 6, y: y - 3, "font-size": 11, text: short });
          const grp = sv("g", { "data-k": "seq-call" }, line, t);
          grp.appendChild(sv("title", { text: (c.target === "host" ? "" : c.target + ": ") + label + "\n" + c.purpose }));
          g.appendChild(grp);
        } else if (kind === "loop") {
          loopStart = y - 12;
        } else if (kind === "endloop") {
          g.appendChild(sv("rect", { x: 20, y: loopStart, width: W - 40, height: y - loopStart, fill: "none", stroke: "#e8743b" }));
          g.appendChild(sv("text", { x: 26, y: loopStart + 12, "font-size": 11, fill: "#e8743b", text: "loop: KVM_RUN × " + K.runs }));
        } else {
          const t = sv("text", { x: LX[3] - 6, y: y - 3, "font-size": 11, "text-anchor": "end", text: c });
          g.appendChild(sv("g", { "data-k": kind === "exit" ? "seq-exit" : "seq-handler" }, sv("line", { x1: LX[3], y1: y, x2: LX[0], y2: y, stroke: kind === "exit" ? "#19a979" : "#945ecf", "stroke-dasharray": kind === "exit" ? null : "3 2", "marker-end": "url(#arrow)" }), t));
        }
      });
      g.insertBefore(sv("defs", {}, sv("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" }, sv("path", { d: "M0 0 L10 5 L0 10 z", fill: "#5b6575" }))), g.firstChild);
 if (setupOnly) s.appendChild(el("p", { "data-k": "setup-only", text: "The set-up calls only: with several vCPUs, or a device thread, each vCPU runs its loop on a thread of its own, and those calls are not recorded (the exits are in the table and the timeline)." }));
      s.appendChild(el("p", { cls: "muted", text: K.calls + " calls recorded" + (K.dropped ? " (" + K.dropped + " later ones not kept)" : "") + "; set-up calls in order, then the exit loop with each kind of exit and the calls made while handling them, then what came after (hover an arrow for its purpose)" }));
      s.appendChild(g);
    }
  }

  // ---- SIMVIRTIO ---------------------------------------------------------------
  if (R && R.simvirtio && (R.simvirtio.tx_bytes || R.simvirtio.notifies || R.simvirtio.rx_bytes)) {
    const V = R.simvirtio;
    const s = section("simvirtio", "SIMVIRTIO");
    s.appendChild(kv([
      ["bytes from TX", V.tx_bytes, "sv-tx"], ["bytes to RX", V.rx_bytes, "sv-rx"], ["notifies", V.notifies, "sv-notifies"],
      ["polls", V.polls, "sv-polls"], ["interrupts", V.interrupts, "sv-interrupts"], ["device errors", V.errors, "sv-errors"],
    ]));
    const Hs = D.simvirtio_history;
    if (Hs && Hs.samples.length) {
      const S = Hs.samples, W = 1000, Hh = 140;
      const tEnd = Math.max(1, S[S.length - 1].t_ns), tBeg = S[0].t_ns;
      const X = (t) => 50 + ((t - tBeg) / Math.max(1, tEnd - tBeg)) * (W - 60);
      const g = sv("svg", { viewBox: "0 0 " + W + " " + (2 * Hh + 60), width: "100%", "data-k": "queues" });
      const plot = (y0, title, series, max) => {
        g.appendChild(sv("text", { x: 50, y: y0 - 6, "font-size": 12, "font-weight": 600, text: title }));
        g.appendChild(sv("rect", { x: 50, y: y0, width: W - 60, height: Hh, fill: "none", stroke: "#d5dae2" }));
        g.appendChild(sv("text", { x: 44, y: y0 + 10, "font-size": 10, "text-anchor": "end", text: String(max) }));
        g.appendChild(sv("text", { x: 44, y: y0 + Hh, "font-size": 10, "text-anchor": "end", text: "0" }));
        for (const [name, f, c] of series) {
          let d = "";
          S.forEach((p, i) => { d += (i ? " L" : "M") + X(p.t_ns).toFixed(1) + " " + (y0 + Hh - (f(p) / Math.max(1, max)) * Hh).toFixed(1); });
          g.appendChild(sv("path", { d: d, fill: "none", stroke: c, "stroke-width": 1.4 }, sv("title", { text: name })));
        }
      };
      const qmax = Math.max(1, ...S.map((p) => Math.max(p.tx_queued, p.rx_queued)));
      plot(20, "bytes waiting in the queues at each drain (TX blue, RX orange)", [["TX queued", (p) => p.tx_queued, "#2b7bb9"], ["RX queued", (p) => p.rx_queued, "#e8743b"]], qmax);
      const bmax = Math.max(1, S[S.length - 1].tx_bytes, S[S.length - 1].rx_bytes);
      plot(Hh + 50, "bytes moved so far (TX blue, RX orange)", [["TX bytes", (p) => p.tx_bytes, "#2b7bb9"], ["RX bytes", (p) => p.rx_bytes, "#e8743b"]], bmax);
      g.appendChild(sv("text", { x: 50, y: 2 * Hh + 58, "font-size": 10, text: ns(tBeg) }));
      g.appendChild(sv("text", { x: W - 10, y: 2 * Hh + 58, "font-size": 10, "text-anchor": "end", text: ns(tEnd) + " after the run's start" }));
      s.appendChild(el("p", { cls: "muted", text: S.length + " samples (at the start and end of each drain of TX)" + (Hs.dropped ? "; " + Hs.dropped + " later ones not kept" : "") }));
      s.appendChild(g);
    }
  }

  // ---- the matrix ----------------------------------------------------------------
  if (D.kind === "matrix") {
    const M = D.matrix;
    const s = section("scheduler", "Scheduler");
    const holder = el("div", { "data-k": "matrix-timeline" });
    // the host's own SVG (matrix --timeline), parsed as SVG, not as HTML
    const doc = new DOMParser().parseFromString(D.timeline_svg, "image/svg+xml");
    if (doc.documentElement && doc.documentElement.nodeName === "svg") {
      const svgEl = document.importNode(doc.documentElement, true);
      if (!svgEl.getAttribute("viewBox")) svgEl.setAttribute("viewBox", "0 0 " + svgEl.getAttribute("width") + " " + svgEl.getAttribute("height"));
      svgEl.setAttribute("width", "100%");
      svgEl.removeAttribute("height");
      holder.appendChild(svgEl);
    }
    s.appendChild(holder);
    const W = 1000, row = 26;
    const g = sv("svg", { viewBox: "0 0 " + W + " " + (row * M.vms.length * 2 + 30), width: "100%", "data-k": "shares" });
    M.vms.slice(0, 200).forEach((v, i) => {
      const y = 10 + i * row * 2;
      g.appendChild(sv("text", { x: 0, y: y + 14, "font-size": 12, text: v.name + " (weight " + v.weight + ")" }));
      g.appendChild(sv("rect", { x: 240, y: y + 2, width: v.share * (W - 300), height: 14, fill: PALETTE[i % 6] }, sv("title", { text: "CPU share " + (v.share * 100).toFixed(2) + "%" })));
      g.appendChild(sv("rect", { x: 240, y: y + 18, width: v.target_share * (W - 300), height: 8, fill: "#b8c0cc" }, sv("title", { text: "target " + (v.target_share * 100).toFixed(2) + "%" })));
      g.appendChild(sv("text", { x: 244 + v.share * (W - 300), y: y + 14, "font-size": 11, text: (v.share * 100).toFixed(1) + "% (target " + (v.target_share * 100).toFixed(1) + "%)" }));
    });
    s.appendChild(el("h3", { text: "CPU time shares against the weights' targets" }));
    s.appendChild(g);
    s.appendChild(table(["VM", "weight", "turns", "CPU time", "share", "target", "exits", "counter", "state"],
      M.vms.map((v) => ({ attrs: { "data-k": "matrix-vm" }, cells: [v.name, v.weight, v.quanta, ns(v.cpu_ns), (v.share * 100).toFixed(2) + "%", (v.target_share * 100).toFixed(2) + "%", v.exits.reduce((a, e) => a + e.count, 0), v.counter, v.state + (v.what ? ": " + v.what : "")] })),
      [false, true, true, true, true, true, true, true, false]));
  }

  // ---- output and the text report -------------------------------------------------
  if (R) {
    const out = R.output_encoding === "utf-8" ? R.output : "(not UTF-8: base64) " + R.output;
    section("output", "Guest output", el("pre", { "data-k": "output", text: out || "(none)" }),
      R.output_dropped ? el("p", { cls: "muted", text: R.output_dropped + " more bytes not kept here" }) : null);
  }
  if (D.text) section("text", "Text report", el("pre", { "data-k": "text", text: D.text }));
  // #only=SECTION: that section alone (the docs' screenshots, make doc-shots)
  const only = /only=([a-z]+)/.exec(location.hash);
  if (only) {
    document.querySelector("header").style.display = "none";
    document.querySelector("footer").style.display = "none";
    for (const sec of main.querySelectorAll("section")) if (sec.id !== only[1]) sec.style.display = "none";
  }
  document.body.setAttribute("data-drawn", "yes");
})();
