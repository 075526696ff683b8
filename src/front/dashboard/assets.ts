/**
 * The dashboard's only static files, served by aivaultd from memory: one stylesheet and one small
 * vanilla script (no framework, no build step, no external resource). The script opens the live-calls
 * WebSocket on the same listener (the session cookie authorises the upgrade) and reloads the approvals
 * page when a call starts waiting. Pure data; main thread.
 */

export const APP_CSS = `
:root { color-scheme: light dark; --bg:#f7f7f8; --fg:#1d1d22; --dim:#6b6b76; --line:#dcdce2; --card:#fff;
  --ok:#11763a; --okbg:#dcf3e4; --warn:#8a5a00; --warnbg:#fff1cf; --bad:#a1181e; --badbg:#fde0e0; --acc:#3a4bd8; }
@media (prefers-color-scheme: dark) { :root { --bg:#15151a; --fg:#e8e8ee; --dim:#9a9aa6; --line:#2c2c35;
  --card:#1d1d24; --okbg:#143523; --ok:#6fdc98; --warnbg:#3a2d0c; --warn:#f2c357; --badbg:#3d1518; --bad:#ff8c8c; --acc:#8e9bff; } }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--fg); }
header { display:flex; align-items:center; gap:1.5rem; padding:.6rem 1.2rem; background:var(--card); border-bottom:1px solid var(--line); }
.brand { font-weight:700; letter-spacing:.02em; }
nav { display:flex; gap:.2rem; flex:1; flex-wrap:wrap; }
nav a { color:var(--dim); text-decoration:none; padding:.3rem .7rem; border-radius:6px; }
nav a[aria-current="page"] { color:var(--fg); background:var(--bg); font-weight:600; }
main { padding:1rem 1.2rem 3rem; max-width:1200px; }
h1 { font-size:1.35rem; margin:.2rem 0 1rem; } h2 { font-size:1.05rem; margin:1.4rem 0 .5rem; }
table { border-collapse:collapse; width:100%; background:var(--card); border:1px solid var(--line); border-radius:8px; overflow:hidden; }
th, td { text-align:left; padding:.4rem .6rem; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:.78rem; text-transform:uppercase; letter-spacing:.04em; color:var(--dim); font-weight:600; }
tr.err td { background:var(--badbg); }
.mono, code { font-family:ui-monospace, SFMono-Regular, Menlo, monospace; font-size:.86em; }
code.cmd { background:var(--bg); border:1px solid var(--line); border-radius:4px; padding:.1rem .35rem; user-select:all; }
.dim { color:var(--dim); }
.badge { display:inline-block; padding:.05rem .5rem; border-radius:999px; font-size:.8em; background:var(--bg); border:1px solid var(--line); }
.badge.ok { background:var(--okbg); color:var(--ok); border-color:transparent; }
.badge.warn { background:var(--warnbg); color:var(--warn); border-color:transparent; }
.badge.bad { background:var(--badbg); color:var(--bad); border-color:transparent; }
.notice { background:var(--okbg); color:var(--ok); padding:.4rem .7rem; border-radius:6px; }
form.inline { display:inline; margin:0; }
form.filters { display:flex; gap:1rem; align-items:end; flex-wrap:wrap; margin-bottom:.8rem; }
label { display:flex; flex-direction:column; font-size:.8rem; color:var(--dim); gap:.15rem; }
input, select, button { font:inherit; padding:.3rem .55rem; border-radius:6px; border:1px solid var(--line); background:var(--card); color:var(--fg); }
button { cursor:pointer; background:var(--acc); color:#fff; border-color:transparent; }
button.quiet { background:transparent; color:var(--dim); border-color:var(--line); }
button.danger { background:var(--bad); } button.ok { background:var(--ok); }
details summary { cursor:pointer; color:var(--dim); font-size:.85em; }
meter { width:10rem; }
tr.running td.status { color:var(--dim); }
`;

export const APP_JS = `'use strict';
(function () {
  var page = document.body.getAttribute('data-page');
  var base = location.origin.replace(/^http/, 'ws');
  function cell(text, cls) {
    var td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }
  function connect(onEvent, onState) {
    var ws = new WebSocket(base + '/aivault/ui/live');
    ws.onopen = function () { onState('live'); };
    ws.onmessage = function (m) { try { onEvent(JSON.parse(m.data)); } catch (e) { /* ignore */ } };
    ws.onclose = function () { onState('disconnected'); setTimeout(function () { connect(onEvent, onState); }, 2000); };
  }
  if (page === 'calls') {
    var body = document.querySelector('#live tbody');
    var state = document.getElementById('live-state');
    var rows = new Map();
    connect(function (ev) {
      if (ev.type === 'start') {
        var tr = document.createElement('tr');
        tr.className = 'running';
        tr.setAttribute('data-call', String(ev.id));
        tr.append(cell(new Date(ev.at).toLocaleTimeString(), 'mono'), cell(ev.transport), cell(ev.capability, 'mono'),
          cell(ev.method), cell(ev.path, 'mono'), cell('…', 'status'), cell('', 'duration'));
        body.prepend(tr);
        rows.set(ev.id, tr);
        while (body.children.length > 200) { var last = body.lastElementChild; rows.delete(Number(last.getAttribute('data-call'))); last.remove(); }
      } else if (ev.type === 'end') {
        var row = rows.get(ev.id);
        if (!row) return;
        row.className = ev.error ? 'err' : '';
        row.querySelector('.status').textContent = ev.error ? (ev.status ? ev.status + ' ' : '') + ev.error : String(ev.status);
        row.querySelector('.duration').textContent = ev.durationMs + ' ms';
      }
    }, function (s) { state.textContent = s; state.className = 'badge ' + (s === 'live' ? 'ok' : 'warn'); });
  } else if (page === 'approvals') {
    connect(function (ev) { if (ev.type === 'approval') location.reload(); }, function () {});
  }
})();
`;
