/*
 * shortd web UI: one page, views chosen by the URL's fragment (#/,
 * #/stats/CODE, #/keys). It talks to the same JSON API as everyone else,
 * signed in by the session cookie (POST /api/v1/session); it never keeps
 * the API key. Every request that changes something carries
 * X-Shortd-CSRF. Text from the API is put in the page as text, never as
 * markup. Written for this project.
 */
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const PAGE = 25;
  let me = null;            // the session's key: {key_id, name, role}
  let cursor = null;        // the links list's next page
  let query = "";           // the links list's search
  const rows = new Map();   // code -> link, as listed
  const charts = [];
  let editing = null, deleting = null, revoking = null;
  let live = null;          // the statistics page's event stream

  /* ---- the API ---- */

  async function api(method, path, body) {
    const opt = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") opt.headers["X-Shortd-CSRF"] = "1";
    if (body !== undefined) {
      opt.headers["Content-Type"] = "application/json";
      opt.body = JSON.stringify(body);
    }
    let r;
    try {
      r = await fetch(path, opt);
    } catch (e) {
      return { status: 0, ok: false, data: { error: { message: "the server cannot be reached" } } };
    }
    let data = null;
    if (r.status !== 204 && r.status !== 304) {
      try { data = await r.json(); } catch (e) { data = null; }
    }
    if (r.status === 401 && me && path !== "/api/v1/session") signedOut();
    return { status: r.status, ok: r.ok, data };
  }

  function errorOf(res) {
    const e = res.data && res.data.error;
    return e ? e : { message: "the request failed (HTTP " + res.status + ")" };
  }

  /* ---- small helpers ---- */

  function el(tag, attrs, ...kids) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") n.textContent = v;
      else n.setAttribute(k, v);
    }
    for (const k of kids) n.append(k);
    return n;
  }

  function when(iso) {
    return iso ? iso.slice(0, 16).replace("T", " ") + " UTC" : "never";
  }

  function toInput(iso) {           // RFC 3339 -> datetime-local (UTC)
    return iso ? iso.slice(0, 16) : "";
  }

  function fromInput(v) {           // datetime-local (read as UTC) -> RFC 3339
    return v ? v + ":00Z" : null;
  }

  function say(id, text) {
    $(id).textContent = text || "";
  }

  /* Field errors: the message next to the field it names. */
  function clearErrors(form) {
    for (const p of form.querySelectorAll(".field-error")) p.textContent = "";
    for (const i of form.querySelectorAll("[aria-invalid]")) i.removeAttribute("aria-invalid");
  }

  function showError(prefix, res, fallbackId) {
    const e = errorOf(res);
    let field = e.field;
    if (!field && e.code && e.code.startsWith("alias")) field = "alias";
    const map = { url: "url", alias: "alias", expires_at: "expires", ttl_s: "expires" };
    const input = field && map[field] ? $(prefix + "-" + map[field]) : null;
    if (input) {
      say(prefix + "-" + map[field] + "-error", e.message);
      input.setAttribute("aria-invalid", "true");
      input.focus();
    } else {
      say(fallbackId, e.message);
    }
  }

  async function copy(text, statusId) {
    try {
      await navigator.clipboard.writeText(text);
      say(statusId, "Copied " + text);
    } catch (e) {
      say(statusId, "Copying is not allowed here: " + text);
    }
  }

  function closeDialogs() {
    for (const d of document.querySelectorAll("dialog[open]")) d.close();
  }

  /* ---- views ---- */

  function show(view, title) {
    if (live && view !== "stats") {
      live.close();
      live = null;
    }
    $("loading").hidden = true;
    for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== "view-" + view;
    document.title = title + " · shortd";
  }

  function signedOut() {
    me = null;
    closeDialogs();
    $("nav").hidden = true;
    show("signin", "Sign in");
    $("signin-key").focus();
  }

  function signedIn(who) {
    me = who;
    $("nav").hidden = false;
    $("nav-keys").hidden = who.role !== "admin";
    say("who", who.name + " (" + who.role + ")");
    route();
  }

  function route() {
    if (!me) return signedOut();
    const h = location.hash || "#/";
    const stats = h.match(/^#\/stats\/([A-Za-z0-9_-]{1,64})$/);
    if (stats) return openStats(stats[1]);
    if (h === "#/keys" && me.role === "admin") return openKeys();
    return openLinks();
  }

  /* ---- links ---- */

  function linkRow(l) {
    const code = el("a", { href: l.short_url, text: l.code });
    const actions = el("td", { class: "actions" });
    const button = (label, name, fn) => {
      const b = el("button", { type: "button", class: "quiet", "aria-label": label + " " + l.code, text: name });
      b.addEventListener("click", fn);
      actions.append(b);
    };
    button("Copy the short link of", "Copy", () => copy(l.short_url, "create-status"));
    button("QR code of", "QR", () => openQr(l));
    button("Statistics of", "Stats", () => { location.hash = "#/stats/" + l.code; });
    button("Edit", "Edit", () => openEdit(l));
    button("Delete", "Delete", () => openDelete(l));
    return el("tr", { "data-code": l.code },
      el("td", {}, code), el("td", { class: "target", text: l.url }),
      el("td", { text: when(l.created_at) }), actions);
  }

  async function loadLinks(reset) {
    if (reset) {
      cursor = null;
      rows.clear();
      $("links-body").replaceChildren();
    }
    let path = "/api/v1/links?limit=" + PAGE;
    if (query) path += "&q=" + encodeURIComponent(query);
    if (cursor) path += "&cursor=" + encodeURIComponent(cursor);
    const res = await api("GET", path);
    if (!res.ok) {
      say("create-status", errorOf(res).message);
      return;
    }
    for (const l of res.data.links) {
      rows.set(l.code, l);
      $("links-body").append(linkRow(l));
    }
    cursor = res.data.next_cursor;
    $("links-more").hidden = !cursor;
    $("links-empty").hidden = rows.size > 0;
    $("links-empty").textContent = query ? "No link matches “" + query + "”." : "No links yet.";
  }

  function openLinks() {
    show("links", "Links");
    loadLinks(true);
  }

  async function create(ev) {
    ev.preventDefault();
    const f = $("create-form");
    clearErrors(f);
    say("create-error", "");
    say("create-status", "");
    const body = { url: $("create-url").value.trim() };
    if ($("create-alias").value.trim()) body.alias = $("create-alias").value.trim();
    if ($("create-expires").value) body.expires_at = fromInput($("create-expires").value);
    if ($("create-redirect").value) body.redirect = Number($("create-redirect").value);
    $("create-submit").disabled = true;
    const res = await api("POST", "/api/v1/links", body);
    $("create-submit").disabled = false;
    if (!res.ok) {
      showError("create", res, "create-error");
      return;
    }
    f.reset();
    say("create-status", "Created " + res.data.short_url);
    query = "";
    $("search-q").value = "";
    await loadLinks(true);
    $("create-url").focus();
  }

  /* ---- dialogs: QR, edit, delete ---- */

  function openQr(l) {
    const base = "/api/v1/links/" + encodeURIComponent(l.code) + "/qr";
    $("qr-img").src = base + "?format=svg&size=256";
    $("qr-img").alt = "QR code of " + l.short_url;
    say("qr-url", l.short_url);
    $("qr-png").href = base + "?format=png&size=512";
    $("qr-png").setAttribute("download", l.code + ".png");
    $("qr-svg").href = base + "?format=svg&size=512";
    $("qr-svg").setAttribute("download", l.code + ".svg");
    $("dlg-qr").showModal();
  }

  function openEdit(l) {
    editing = l;
    const f = $("edit-form");
    clearErrors(f);
    say("edit-error", "");
    $("edit-url").value = l.url;
    $("edit-expires").value = toInput(l.expires_at);
    $("edit-redirect").value = String(l.redirect);
    $("dlg-edit").showModal();
    $("edit-url").focus();
  }

  async function saveEdit(ev) {
    ev.preventDefault();
    const f = $("edit-form");
    clearErrors(f);
    const body = { url: $("edit-url").value.trim(), expires_at: fromInput($("edit-expires").value),
                   redirect: Number($("edit-redirect").value) };
    const res = await api("PATCH", "/api/v1/links/" + encodeURIComponent(editing.code), body);
    if (!res.ok) {
      showError("edit", res, "edit-error");
      return;
    }
    $("dlg-edit").close();
    const row = document.querySelector('tr[data-code="' + CSS.escape(editing.code) + '"]');
    rows.set(res.data.code, res.data);
    if (row) row.replaceWith(linkRow(res.data));
    say("create-status", "Saved " + res.data.short_url);
  }

  function openDelete(l) {
    deleting = l;
    say("delete-code", l.short_url);
    $("dlg-delete").showModal();
  }

  async function confirmDelete() {
    const l = deleting;
    const res = await api("DELETE", "/api/v1/links/" + encodeURIComponent(l.code));
    $("dlg-delete").close();
    if (!res.ok && res.status !== 410) {
      say("create-status", errorOf(res).message);
      return;
    }
    const row = document.querySelector('tr[data-code="' + CSS.escape(l.code) + '"]');
    if (row) row.remove();
    rows.delete(l.code);
    $("links-empty").hidden = rows.size > 0;
    say("create-status", "Deleted " + l.short_url);
  }

  /* ---- stats ---- */

  let statsCode = null;

  function chart(id, type, labels, data, horizontal) {
    const c = new Chart($(id), {
      type,
      data: { labels, datasets: [{ label: "clicks", data, borderColor: "#0a58ca",
        backgroundColor: type === "line" ? "rgba(10,88,202,.15)" : "#0a58ca", fill: type === "line",
        tension: 0.2, pointRadius: 0 }] },
      options: { animation: false, maintainAspectRatio: false, indexAxis: horizontal ? "y" : "x",
        plugins: { legend: { display: false } },
        scales: { x: { beginAtZero: true }, y: { beginAtZero: true } } },
    });
    charts.push(c);
  }

  /* The query of the range chosen: a preset, or two dates (whole UTC days). */
  function statsQuery() {
    const range = $("stats-range").value;
    const custom = range === "custom";
    $("stats-custom").hidden = $("stats-custom-to").hidden = !custom;
    if (custom) {
      const from = $("stats-from").value, to = $("stats-to").value;
      if (!from || !to) return null;
      return "?interval=day&from=" + encodeURIComponent(from + "T00:00:00Z") +
        "&to=" + encodeURIComponent(to + "T23:59:59Z");
    }
    const days = Number(range);
    const from = new Date(Date.now() - days * 86400000);
    return "?interval=" + (days === 1 ? "hour" : "day") + "&from=" +
      encodeURIComponent(from.toISOString().slice(0, 19) + "Z");
  }

  async function loadStats() {
    say("stats-error", "");
    const q = statsQuery();
    if (!q) {
      say("stats-error", "give both dates");
      return;
    }
    const res = await api("GET", "/api/v1/links/" + encodeURIComponent(statsCode) + "/stats" + q);
    if (!res.ok) {
      say("stats-error", errorOf(res).message);
      return;
    }
    while (charts.length) charts.pop().destroy();
    const s = res.data;
    say("stats-clicks", String(s.total));
    say("stats-bots", String(s.bots));
    const hourly = s.interval === "hour";
    chart("chart-series", "line", s.series.map((p) => hourly ? p.t.slice(11, 16) : p.t.slice(5, 10)),
      s.series.map((p) => p.clicks));
    for (const dim of ["referrers", "countries", "devices", "browsers", "os"])
      chart("chart-" + dim, "bar", s[dim].map((x) => x.value), s[dim].map((x) => x.clicks), true);
  }

  /* New clicks as they happen: the server's event stream of this link
   * (GET .../events), opened with the page and closed when it is left. */
  function watch(code) {
    if (live) live.close();
    say("stats-live", "0");
    say("stats-live-state", "(connecting)");
    live = new EventSource("/api/v1/links/" + encodeURIComponent(code) + "/events");
    live.addEventListener("ready", () => say("stats-live-state", "(live)"));
    live.addEventListener("click", (ev) => {
      const d = JSON.parse(ev.data);
      say("stats-live", String(d.clicks));
      say("stats-live-state", "(live; " + d.bots + " from bots)");
    });
    live.addEventListener("error", () => say("stats-live-state", "(reconnecting)"));
  }

  async function openStats(code) {
    statsCode = code;
    show("stats", "Statistics of " + code);
    watch(code);
    say("stats-title", "Statistics of " + code);
    const res = await api("GET", "/api/v1/links/" + encodeURIComponent(code));
    say("stats-target", res.ok ? res.data.short_url + " → " + res.data.url : errorOf(res).message);
    if (res.ok) await loadStats();
  }

  /* ---- keys (admins) ---- */

  async function loadKeys() {
    const res = await api("GET", "/api/v1/keys");
    const body = $("keys-body");
    body.replaceChildren();
    if (!res.ok) return;
    for (const k of res.data.keys) {
      const actions = el("td");
      if (!k.revoked_at) {
        const b = el("button", { type: "button", class: "quiet", "aria-label": "Revoke key " + k.id, text: "Revoke" });
        b.addEventListener("click", () => { revoking = k; say("revoke-id", k.id + " (" + k.name + ")"); $("dlg-revoke").showModal(); });
        actions.append(b);
      }
      body.append(el("tr", { "data-key": k.id }, el("td", { text: k.id }), el("td", { text: k.name }),
        el("td", { text: k.role }), el("td", { text: when(k.created_at) }),
        el("td", { text: k.revoked_at ? "revoked " + when(k.revoked_at) : "valid" }), actions));
    }
  }

  function openKeys() {
    show("keys", "API keys");
    $("key-new").hidden = true;
    loadKeys();
  }

  async function createKey(ev) {
    ev.preventDefault();
    clearErrors($("key-form"));
    const res = await api("POST", "/api/v1/keys", { name: $("key-name").value.trim(), role: $("key-role").value });
    if (!res.ok) {
      say("key-name-error", errorOf(res).message);
      $("key-name").setAttribute("aria-invalid", "true");
      return;
    }
    $("key-form").reset();
    say("key-new-value", res.data.key);
    $("key-new").hidden = false;
    $("key-copy").focus();
    loadKeys();
  }

  async function confirmRevoke() {
    const res = await api("DELETE", "/api/v1/keys/" + encodeURIComponent(revoking.id));
    $("dlg-revoke").close();
    if (res.ok && revoking.id === me.key_id) return signedOut();
    loadKeys();
  }

  /* ---- signing in and out ---- */

  async function signIn(ev) {
    ev.preventDefault();
    say("signin-error", "");
    const key = $("signin-key").value.trim();
    const res = await api("POST", "/api/v1/session", { key });
    $("signin-key").value = "";
    if (!res.ok) {
      say("signin-error", errorOf(res).message);
      $("signin-key").focus();
      return;
    }
    signedIn(res.data);
  }

  async function signOut() {
    await api("DELETE", "/api/v1/session");
    signedOut();
  }

  /* ---- start ---- */

  document.addEventListener("DOMContentLoaded", async () => {
    $("signin-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", signOut);
    $("create-form").addEventListener("submit", create);
    $("search-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      query = $("search-q").value.trim();
      loadLinks(true);
    });
    $("links-more").addEventListener("click", () => loadLinks(false));
    $("edit-form").addEventListener("submit", saveEdit);
    $("delete-confirm").addEventListener("click", confirmDelete);
    $("revoke-confirm").addEventListener("click", confirmRevoke);
    $("key-form").addEventListener("submit", createKey);
    $("key-copy").addEventListener("click", () => copy($("key-new-value").textContent, "key-name-error"));
    $("stats-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadStats(); });
    $("stats-range").addEventListener("change", () => {
      if ($("stats-range").value !== "custom") return loadStats();
      const today = new Date().toISOString().slice(0, 10);
      if (!$("stats-to").value) $("stats-to").value = today;
      if (!$("stats-from").value)
        $("stats-from").value = new Date(Date.now() - 6 * 86400000).toISOString().slice(0, 10);
      statsQuery();
      $("stats-from").focus();
    });
    for (const b of document.querySelectorAll("[data-close]"))
      b.addEventListener("click", () => b.closest("dialog").close());
    window.addEventListener("hashchange", route);
    const res = await api("GET", "/api/v1/session");
    if (res.ok) signedIn(res.data);
    else signedOut();
  });
})();
