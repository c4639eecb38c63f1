//! The web UI's only style sheet (inlined in every page) and its only script (served at
//! [`SCRIPT_PATH`], so the pages' Content-Security-Policy can forbid inline scripts). No build
//! step: both are written here as they are sent.

/// Where the script is served.
pub const SCRIPT_PATH: &str = "/assets/live.js";

/// Plain, readable without colour (every state is also a word), dark from the system setting,
/// one column on a phone.
pub const CSS: &str = r#"
:root { color-scheme: light dark; --fg: #1b1f24; --bg: #ffffff; --muted: #57606a; --line: #d0d7de;
  --card: #f6f8fa; --bad: #b3261e; --good: #1a7f37; --warn: #9a6700; --link: #0550ae; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --bg: #0d1117; --muted: #9198a1; --line: #30363d; --card: #161b22;
    --bad: #ff7b72; --good: #3fb950; --warn: #d29922; --link: #79c0ff; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--link); }
header.top { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: center;
  padding: .6rem 1rem; border-bottom: 1px solid var(--line); }
header.top nav a { margin-right: 1rem; }
header.top .who { margin-left: auto; color: var(--muted); }
main { padding: 1rem; max-width: 80rem; margin: 0 auto; }
h1 { font-size: 1.4rem; margin: .2rem 0 1rem; }
h2 { font-size: 1.15rem; margin: 1.5rem 0 .5rem; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em; }
.muted { color: var(--muted); }
.pipeline { display: flex; gap: .75rem; align-items: stretch; list-style: none; padding: 0; margin: 0;
  flex-wrap: wrap; }
.pipeline > li { flex: 1 1 14rem; min-width: 14rem; background: var(--card); border: 1px solid var(--line);
  border-radius: 8px; padding: .75rem; }
.pipeline dl { display: grid; grid-template-columns: auto 1fr; gap: .15rem .75rem; margin: .5rem 0; }
.pipeline dt { color: var(--muted); }
.pipeline dd { margin: 0; overflow-wrap: anywhere; }
.badge { display: inline-block; border: 1px solid currentColor; border-radius: 4px; padding: 0 .35rem;
  font-size: .85em; font-weight: 600; white-space: nowrap; }
time { white-space: nowrap; }
.pipeline h3 { margin: 0; }
.bad { color: var(--bad); } .good { color: var(--good); } .warn { color: var(--warn); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .4rem .5rem; border-bottom: 1px solid var(--line); }
th { font-weight: 600; color: var(--muted); }
tr.rollback td:first-child { border-left: 4px solid var(--warn); }
ul.outcomes { margin: .25rem 0 0; padding-left: 1.1rem; font-size: .9em; }
form.inline { display: inline; }
form.filters { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; margin-bottom: 1rem; }
form.filters label { display: flex; flex-direction: column; font-size: .85em; color: var(--muted); }
input, select, button { font: inherit; padding: .3rem .5rem; border: 1px solid var(--line); border-radius: 6px;
  background: var(--bg); color: var(--fg); }
button, .button { cursor: pointer; background: var(--card); font-weight: 600; text-decoration: none;
  display: inline-block; padding: .3rem .6rem; border: 1px solid var(--line); border-radius: 6px; color: var(--fg); }
button.danger, .button.danger { color: var(--bad); border-color: var(--bad); }
.notice { border: 1px solid var(--line); border-left: 4px solid var(--warn); padding: .5rem .75rem;
  background: var(--card); margin-bottom: 1rem; }
.error { border-left-color: var(--bad); }
.scroll { overflow-x: auto; }
@media (max-width: 40rem) {
  .pipeline { flex-direction: column; }
  .pipeline > li { min-width: 0; }
  th.wide, td.wide { display: none; }
}
"#;

/// Live updates: follows the session's event stream and, when an event of the page's app (any
/// app on the pipeline page) arrives, fetches the page again and swaps its `#live` part in:
/// no reload, the scroll position and any open form kept. `data-updated` on `<body>` counts
/// the swaps and `data-updated-at` says when the last one was (ms since the epoch): the
/// end-to-end test and the bench wait on them.
pub const SCRIPT: &str = r#""use strict";
(function () {
  var live = document.getElementById("live");
  if (!live || !window.EventSource || live.dataset.static !== undefined) return;
  var app = live.dataset.app || null;
  var pending = false;
  var again = false;
  function refresh() {
    if (pending) { again = true; return; }
    pending = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html) {
          var next = new DOMParser().parseFromString(html, "text/html").getElementById("live");
          if (next) {
            live.innerHTML = next.innerHTML;
            document.body.dataset.updated = String(Number(document.body.dataset.updated || "0") + 1);
            document.body.dataset.updatedAt = String(Date.now());
          }
        }
      })
      .catch(function () {})
      .then(function () {
        pending = false;
        if (again) { again = false; refresh(); }
      });
  }
  var events = new EventSource("/live");
  events.onmessage = function (message) {
    try {
      var event = JSON.parse(message.data);
      if (app && event.app !== app) return;
    } catch (e) { /* refresh anyway */ }
    refresh();
  };
  events.onopen = function () { document.body.dataset.live = "open"; };
})();
"#;
