// raftsim ui: draws the frames the server pushes over one WebSocket, sends commands back.
// No framework, no build step. The simulation runs on the server; this page only draws,
// interpolating virtual time between frames so messages glide and timers count down.
'use strict';
(() => {
  const SPEEDS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100];
  const TERM_COLORS = ['#a5d8ff', '#b2f2bb', '#ffd8a8', '#d0bfff', '#99e9f2', '#fcc2d7',
    '#ffec99', '#c0eb75', '#eebefa', '#ffc9c9'];
  const TERM_EDGES = ['#4dabf7', '#51cf66', '#ff922b', '#845ef7', '#22b8cf', '#f06595',
    '#fcc419', '#82c91e', '#cc5de8', '#ff6b6b'];
  const SERVER_COLORS = ['#1971c2', '#c2255c', '#2b8a3e', '#e8590c', '#6741d9', '#0c8599',
    '#5c940d', '#862e9c', '#a61e4d'];
  const SVGNS = 'http://www.w3.org/2000/svg';
  const RING_R = 162;
  const NODE_R = 34;
  const TIMER_R = 42;
  const TIMER_C = 2 * Math.PI * TIMER_R;
  const LEAVE_MS = 140;
  const DROP_MS = 1600;

  const $ = (id) => document.getElementById(id);
  const termColor = (t) => TERM_COLORS[((t % 10) + 10) % 10];
  const termEdge = (t) => TERM_EDGES[((t % 10) + 10) % 10];

  function el(tag, attrs, ...kids) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') node.textContent = v; else node.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids) node.append(kid);
    return node;
  }
  function sv(tag, attrs, ...kids) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'text') node.textContent = v; else node.setAttribute(k, v);
    }
    for (const kid of kids) node.append(kid);
    return node;
  }
  const esc = (s) => String(s).replace(/[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  const speedText = (x) => (x >= 1 ? `${x}×` : `1/${Math.round(1 / x)}×`);

  const ui = {
    ws: null, req: 0, waiting: new Map(), hashTried: false,
    state: null, recvWall: 0, shownT: 0,
    selected: new Set(),
    layoutKey: '', pos: new Map(), nodes: new Map(), links: new Map(), rows: new Map(),
    msgs: new Map(), leaving: [], drops: new Map(), seenDrops: new Set(),
    logSig: '', cfgSig: '', respSig: '', peersKey: '',
    speedDragging: false, replayTarget: null, token: null, full: null,
    // a page without a link opens on the lesson list, its own session paused at t=0
    startPaused: !/^#session=/.test(location.hash), lessons: [],
    travelBusy: false, travelNext: null, historyDragging: false,
  };

  // ------------------------------------------------------------------ connection

  function connect() {
    // each page is a session of its own; the token brings it back after a network blip
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const query = ui.token ? `?resume=${encodeURIComponent(ui.token)}` : ui.startPaused ? '?start=lessons' : '';
    const ws = new WebSocket(`${scheme}://${location.host}/ws${query}`);
    ui.ws = ws;
    ui.full = null;
    ws.onmessage = (ev) => {
      const data = JSON.parse(ev.data);
      if (data.type === 'state') onState(data);
      else if (data.type === 'reply') onReply(data);
      else if (data.type === 'hello') onHello(data);
      else if (data.type === 'full') ui.full = data.error;
    };
    ws.onclose = () => {
      const box = $('offline');
      box.textContent = ui.full || 'connection to raftsim lost — retrying…';
      box.classList.toggle('full', !!ui.full);
      box.hidden = false;
      for (const resolve of ui.waiting.values()) resolve({ ok: false, error: 'connection lost' });
      ui.waiting.clear();
      setTimeout(connect, ui.full ? 15000 : 2000);
    };
  }

  function onHello(h) {
    $('offline').hidden = true;
    if (ui.token && !h.resumed) toast('Your earlier session was closed while you were away: this is a new one.', true);
    ui.token = h.session;
    ui.startPaused = false;
    document.body.dataset.session = h.session;
    ui.lessons = h.lessons || [];
    buildLessonList();
    $('open-lessons').hidden = !ui.lessons.length;
    if (h.show_lessons) $('lessons').hidden = false;
    if (!ui.hashTried) {
      ui.hashTried = true;
      const m = location.hash.match(/^#session=([A-Za-z0-9_-]+)$/);
      if (m) {
        command({ op: 'load', permalink: m[1] }).then((r) => {
          if (r.ok) ui.replayTarget = r.session;
          toast(r.ok ? `Replaying the linked session up to t = ${r.until.toFixed(3)} s…`
            : `Could not replay the link: ${r.error}`, !r.ok);
        });
      }
    }
  }

  function command(cmd) {
    return new Promise((resolve) => {
      if (!ui.ws || ui.ws.readyState !== WebSocket.OPEN) {
        resolve({ ok: false, error: 'not connected' });
        return;
      }
      const req = ++ui.req;
      ui.waiting.set(req, resolve);
      ui.ws.send(JSON.stringify({ ...cmd, req }));
    });
  }

  function onReply(r) {
    const resolve = ui.waiting.get(r.req);
    if (resolve) { ui.waiting.delete(r.req); resolve(r); } else if (!r.ok) toast(r.error, true);
  }

  async function act(action) {
    const r = await command({ op: 'action', action });
    if (!r.ok) toast(r.error, true);
    return r;
  }

  let toastTimer = 0;
  function toast(text, error, node) {
    const box = $('toast');
    box.textContent = text;
    if (node) box.append(node);
    box.className = `toast show${error ? ' error' : ''}`;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.className = 'toast'; }, node ? 12000 : 4500);
  }

  // ------------------------------------------------------------------ time

  function virtualNow() {
    const s = ui.state;
    if (!s) return 0;
    let t = s.t;
    // between frames, time runs on at the set speed, but never far past what the last
    // frame knew (at high speed a frame is a whole heartbeat or more behind)
    if (s.playing) t += Math.min((performance.now() - ui.recvWall) / 1000 * s.speed, 0.06 * s.speed, 0.05);
    if (t > ui.shownT) ui.shownT = t;
    return ui.shownT;
  }

  // ------------------------------------------------------------------ frames

  function onState(s) {
    const fresh = !ui.state || ui.state.session !== s.session || s.reset;
    if (fresh) resetPicture(s);
    ui.state = s;
    ui.recvWall = performance.now();
    $('clock').dataset.t = String(s.t);  // the exact virtual time of this frame
    if (fresh || s.t < ui.shownT - 1e-9 && !s.playing) ui.shownT = s.t;
    if (!s.playing) ui.shownT = s.t;
    ensureLayout(s);
    updateHeader(s);
    updateServers(s);
    updateRing(s);
    updateConfigs(s);
    updateResponses(s);
    updateLog(s);
    appendFeed(s.lines || [], fresh, s.skipped_lines);
    syncMessages(s, fresh);
  }

  function resetPicture(s) {
    for (const m of ui.msgs.values()) m.g.remove();
    ui.msgs.clear();
    for (const l of ui.leaving) l.g.remove();
    ui.leaving = [];
    for (const d of ui.drops.values()) d.g.remove();
    ui.drops.clear();
    ui.seenDrops = new Set();
    ui.shownT = s.t;
    ui.logSig = ''; ui.cfgSig = ''; ui.respSig = '';
    if (ui.state && ui.state.session !== s.session) ui.selected.clear();
  }

  function updateHeader(s) {
    $('play').textContent = s.playing ? '❚❚ Pause' : '▶ Play';
    $('play').classList.toggle('paused', !s.playing);
    if (!ui.speedDragging) {
      let best = 0;
      SPEEDS.forEach((x, i) => { if (Math.abs(Math.log(x / s.speed)) < Math.abs(Math.log(SPEEDS[best] / s.speed))) best = i; });
      $('speed').value = String(best);
      $('speed-out').textContent = speedText(s.speed);
    }
    $('pre-vote').checked = s.settings.pre_vote;
    $('check-quorum').checked = s.settings.check_quorum;
    if (document.activeElement !== $('seed')) $('seed').value = String(s.seed);
    updateScenario(s);
    updateHistory(s);
    if (ui.replayTarget === s.session && !s.replaying) {
      ui.replayTarget = null;
      toast(`Replayed the linked session up to t = ${s.t.toFixed(3)} s. Press Play to go on.`);
    }
    $('settings-note').textContent = `timing: election timeout ${ms(s.timing.election_min)}–${ms(s.timing.election_max)}, heartbeat ${ms(s.timing.heartbeat)}, latency ${ms(s.timing.latency[0])}–${ms(s.timing.latency[1])}`;
    if (s.error) toast(s.error, true);
  }
  const ms = (x) => `${Math.round(x * 1000)} ms`;

  function updateScenario(s) {
    const box = $('scenario-box');
    const sc = s.scenario;
    box.hidden = !sc;
    if (!sc) { ui.named = new Set(); return; }
    $('scenario-title').textContent = sc.title;
    $('scenario-title').title = `scenario file ${sc.name}.toml`;
    // TOML text wraps at 80-odd columns: join the lines, keep the paragraphs
    $('scenario-desc').textContent = (sc.description || '').trim().replace(/([^\n])\n(?!\n)/g, '$1 ');
    updateLesson(s);
    const verdict = $('scenario-verdict');
    verdict.textContent = sc.verdict || (s.lesson ? '' : 'playing…');
    verdict.className = `verdict ${sc.verdict ? (sc.verdict.includes('FAILED') ? 'bad' : 'ok') : ''}`;
  }

  // ------------------------------------------------------------------ time travel

  function updateHistory(s) {
    const travel = s.travel;
    const now = travel ? travel.now : s.t;
    document.body.classList.toggle('travel', !!travel);
    document.body.dataset.travel = travel ? String(travel.t) : '';
    const slider = $('history');
    slider.max = String(now);
    if (!ui.historyDragging && !ui.travelBusy) slider.value = String(travel ? travel.t : now);
    $('history-out').textContent = travel
      ? `t = ${travel.t.toFixed(3)} s of ${now.toFixed(3)}` : 'now';
    $('history-now').hidden = !travel;
  }

  // one jump at a time; while one is on its way, only the latest wish waits
  async function travelTo(t) {
    if (ui.travelBusy) { ui.travelNext = t; return; }
    ui.travelBusy = true;
    let next = t;
    while (next !== null) {
      ui.travelNext = null;
      const r = await command({ op: 'travel', t: next });
      if (!r.ok) { toast(r.error, true); break; }
      next = ui.travelNext;
    }
    ui.travelBusy = false;
  }

  // ------------------------------------------------------------------ lessons

  function buildLessonList() {
    const list = $('lesson-list');
    list.textContent = '';
    for (const lesson of ui.lessons) {
      list.append(el('li', {}, el('button', { 'data-lesson': lesson.name, title: lesson.description },
        el('span', { class: 'lt', text: lesson.title }),
        el('span', { class: 'ld', text: lesson.description }),
        el('span', { class: 'ls', text: `${lesson.stops} explanations · ${lesson.name}.toml` }))));
    }
  }

  async function startLesson(name) {
    $('lessons').hidden = true;
    const r = await command({ op: 'lesson', name });
    if (!r.ok) toast(r.error, true);
    else if (location.hash) history.replaceState(null, '', location.pathname);
  }

  function updateLesson(s) {
    const box = $('lesson-box');
    const lesson = s.lesson;
    box.hidden = !lesson;
    $('scenario-box').classList.toggle('lesson', !!lesson);
    ui.named = new Set(lesson && lesson.holding ? lesson.names : []);
    if (!lesson) return;
    const done = !!(s.scenario && s.scenario.verdict);
    box.classList.toggle('moving', !lesson.holding);
    box.dataset.stop = String(lesson.stop);
    box.dataset.holding = lesson.holding ? 'yes' : 'no';
    $('lesson-text').textContent = lesson.stop ? lesson.text
      : 'The lesson is about to start: press Next.';
    $('lesson-stop').textContent = done ? 'the end' : `${lesson.stop} of ${lesson.stops}`;
    $('lesson-next').disabled = done || (s.playing && !lesson.holding);
    $('lesson-next').textContent = lesson.holding || !s.playing ? 'Next ▸' : 'playing…';
    $('lesson-back').disabled = lesson.stop === 0 || (lesson.stop === 1 && lesson.holding) || s.replaying;
  }

  // ------------------------------------------------------------------ the ring

  function ensureLayout(s) {
    const key = s.servers.map((x) => x.id).join(',');
    if (key === ui.layoutKey) return;
    ui.layoutKey = key;
    const svg = $('ring');
    svg.textContent = '';
    ui.pos.clear(); ui.nodes.clear(); ui.links.clear(); ui.rows.clear();
    const n = s.servers.length;
    s.servers.forEach((srv, k) => {
      const a = -Math.PI / 2 + (2 * Math.PI * k) / n;
      ui.pos.set(srv.id, { x: RING_R * Math.cos(a), y: RING_R * Math.sin(a),
        color: SERVER_COLORS[k % SERVER_COLORS.length] });
    });
    const links = sv('g', { class: 'links' });
    const ids = s.servers.map((x) => x.id);
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const a = ui.pos.get(ids[i]); const b = ui.pos.get(ids[j]);
        const line = sv('line', { class: 'link', x1: a.x, y1: a.y, x2: b.x, y2: b.y });
        links.append(line);
        ui.links.set(`${ids[i]}|${ids[j]}`, line);
      }
    }
    const center = sv('g', { class: 'center' },
      sv('text', { class: 'center-note big', id: 'center-1', y: -6 }),
      sv('text', { class: 'center-note', id: 'center-2', y: 12 }));
    const servers = sv('g', { class: 'servers' });
    for (const srv of s.servers) {
      const p = ui.pos.get(srv.id);
      const timer = sv('circle', { class: 'timer', r: TIMER_R, transform: 'rotate(-90)',
        'stroke-dasharray': `0 ${TIMER_C}` });
      const g = sv('g', { class: 'srv', transform: `translate(${p.x.toFixed(1)},${p.y.toFixed(1)})`,
        'data-id': srv.id },
      sv('title', { text: srv.id }),
      sv('circle', { class: 'select-ring', r: TIMER_R + 7 }),
      sv('circle', { class: 'timer-bg', r: TIMER_R }),
      timer,
      sv('circle', { class: 'body', r: NODE_R }),
      sv('text', { class: 'name', y: -3, text: srv.id }),
      sv('text', { class: 'termnum', y: 13 }),
      sv('text', { class: 'crown', y: -NODE_R - 13 }),
      sv('text', { class: 'caption', y: NODE_R + 22 }),
      sv('text', { class: 'caption2', y: NODE_R + 35 }));
      g.addEventListener('click', () => toggleSelect(srv.id));
      servers.append(g);
      ui.nodes.set(srv.id, { g, timer, term: g.querySelector('.termnum'),
        crown: g.querySelector('.crown'), caption: g.querySelector('.caption'),
        caption2: g.querySelector('.caption2'), title: g.querySelector('title') });
    }
    const msgs = sv('g', { id: 'msgs' });
    // click a message on its way to lose it (pause first: they move fast)
    msgs.addEventListener('click', (ev) => {
      const g = ev.target.closest('.msg');
      if (g && g.dataset.id) { ev.stopPropagation(); act({ op: 'drop', message: Number(g.dataset.id) }); }
    });
    svg.append(links, center, servers, msgs, sv('g', { id: 'drops' }));
    buildServerRows(s);
    const peer = $('peer');
    peer.textContent = '';
    for (const id of ids) peer.append(el('option', { value: id, text: id }));
    peer.value = ids[ids.length - 1];
    const via = $('kv-via');
    via.textContent = '';
    via.append(el('option', { value: '', text: 'the leader' }));
    for (const id of ids) via.append(el('option', { value: id, text: id }));
  }

  function roleWords(srv, s) {
    if (srv.status === 'crashed') return 'crashed';
    const base = srv.role === 'leader' ? 'LEADER'
      : srv.role === 'follower' ? (srv.leader ? `follows ${srv.leader}` : 'follower')
        : srv.role;
    return srv.status === 'frozen' ? `frozen · ${base}` : base;
  }

  function memberOf(s) {
    const leader = s.leader && s.servers.find((x) => x.id === s.leader);
    if (!leader || !leader.config) return null;
    return new Set([...leader.config.voters, ...leader.config.nonvoters]);
  }

  function updateRing(s) {
    const members = memberOf(s);
    for (const srv of s.servers) {
      const node = ui.nodes.get(srv.id);
      if (!node) continue;
      const role = srv.status === 'crashed' ? 'none' : srv.role;
      node.g.setAttribute('class', `srv role-${role} status-${srv.status}` +
        `${ui.selected.has(srv.id) ? ' selected' : ''}` +
        `${ui.named && ui.named.has(srv.id) ? ' named' : ''}` +
        `${members && !members.has(srv.id) ? ' removed' : ''}`);
      node.g.setAttribute('data-term', srv.term);
      node.g.setAttribute('data-role', srv.status === 'crashed' ? 'crashed' : srv.role);
      node.term.textContent = `term ${srv.term}`;
      node.crown.textContent = srv.role === 'leader' && srv.status !== 'crashed' ? '★' : '';
      node.crown.setAttribute('fill', '#2b8a3e');
      node.caption.textContent = members && !members.has(srv.id) && srv.status !== 'crashed'
        ? `removed · ${roleWords(srv, s)}` : roleWords(srv, s);
      node.caption2.textContent = srv.status === 'crashed'
        ? `disk: term ${srv.term}, log ${srv.last_index}`
        : `vote ${srv.voted_for || '–'} · commit ${srv.commit}`;
      node.title.textContent = `${srv.id}: ${roleWords(srv, s)}, term ${srv.term}, ` +
        `voted for ${srv.voted_for || 'nobody'}, commit index ${srv.commit}, last index ${srv.last_index}` +
        ' (click to select for a partition)';
    }
    const blocked = new Set(s.blocked.map(([a, b]) => `${a}|${b}`));
    for (const [key, line] of ui.links) {
      const [a, b] = key.split('|');
      line.setAttribute('class', blocked.has(`${a}|${b}`) || blocked.has(`${b}|${a}`) ? 'link blocked' : 'link');
    }
    const leader = s.leader && s.servers.find((x) => x.id === s.leader);
    const c1 = document.getElementById('center-1');
    const c2 = document.getElementById('center-2');
    if (c1 && c2) {
      if (leader) {
        c1.textContent = `${leader.id} leads term ${leader.term}`;
        c2.textContent = `committed up to index ${leader.commit}`;
      } else {
        const running = s.servers.filter((x) => x.status !== 'crashed');
        const top = Math.max(0, ...running.map((x) => x.term));
        c1.textContent = 'no leader';
        c2.textContent = running.some((x) => x.role === 'candidate' || x.role === 'pre-candidate')
          ? `election under way (term ${top})` : 'waiting for an election timeout';
      }
    }
    const groups = components(s);
    $('partition-note').textContent = groups.length > 1
      ? `split: ${groups.map((g) => g.join(',')).join(' | ')}` : 'no partition';
  }

  function components(s) {
    const ids = s.servers.map((x) => x.id);
    const blocked = new Set(s.blocked.map(([a, b]) => `${a}|${b}`));
    const seen = new Set();
    const out = [];
    for (const id of ids) {
      if (seen.has(id)) continue;
      const group = [];
      const stack = [id];
      seen.add(id);
      while (stack.length) {
        const a = stack.pop();
        group.push(a);
        for (const b of ids) {
          if (!seen.has(b) && !blocked.has(`${a}|${b}`) && !blocked.has(`${b}|${a}`)) {
            seen.add(b); stack.push(b);
          }
        }
      }
      out.push(group.sort());
    }
    return out;
  }

  function toggleSelect(id) {
    if (ui.selected.has(id)) ui.selected.delete(id); else ui.selected.add(id);
    if (ui.state) { updateRing(ui.state); updateServers(ui.state); }
  }

  // ------------------------------------------------------------------ messages

  function msgKind(m) {
    if (m.type === 'RequestVote' || m.type === 'RequestVoteResponse') return m.pre ? 'prevote' : 'vote';
    if (m.type === 'AppendEntries' || m.type === 'AppendEntriesResponse') return 'append';
    if (m.type === 'InstallSnapshot' || m.type === 'InstallSnapshotResponse') return 'snap';
    if (m.type === 'TimeoutNow') return 'timeout';
    return 'append';
  }

  function msgGlyph(m) {
    const kind = msgKind(m);
    const reply = m.type.endsWith('Response');
    let label = '';
    let yes = null;
    if (reply) {
      yes = m.type === 'RequestVoteResponse' ? m.granted : m.type === 'AppendEntriesResponse' ? m.ok : true;
      label = yes ? '✓' : '✗';
    } else if (kind === 'append') label = m.n ? String(m.n) : '';
    else if (kind === 'vote') label = 'V';
    else if (kind === 'prevote') label = 'P';
    else if (kind === 'snap') label = 'S';
    else if (kind === 'timeout') label = 'T';
    const r = kind === 'append' && !reply ? (m.n ? 8.5 : 6) : 7.5;
    const g = sv('g', { class: `msg ${reply ? 'rep' : 'req'} t-${kind}`, 'data-id': m.id },
      sv('title', { text: `${describe(m)} (click to drop it)` }),
      sv('circle', { r }),
      sv('text', { class: yes === null ? '' : yes ? 'yes' : 'no', text: label }));
    return g;
  }

  function describe(m) {
    const parts = [`${m.type}${m.pre ? ' (pre-vote)' : ''} ${m.from} → ${m.to}, term ${m.term}`];
    if (m.type === 'AppendEntries') parts.push(m.n ? `${m.n} entries after index ${m.prev}` : 'heartbeat', `leader commit ${m.commit}`);
    if (m.type === 'AppendEntriesResponse') parts.push(m.ok ? `ok, matches up to ${m.match}` : 'rejected');
    if (m.type === 'RequestVoteResponse') parts.push(m.granted ? 'vote granted' : 'vote refused');
    return parts.join(', ');
  }

  function syncMessages(s, fresh) {
    const layer = document.getElementById('msgs');
    if (!layer) return;
    const now = performance.now();
    const live = new Set();
    for (const m of s.messages) {
      live.add(m.id);
      if (!ui.msgs.has(m.id) && ui.pos.has(m.from) && ui.pos.has(m.to)) {
        const g = msgGlyph(m);
        layer.append(g);
        ui.msgs.set(m.id, { m, g, p: 0 });
      }
    }
    const dropped = new Map();
    for (const d of s.drops) dropped.set(d.id, d);
    for (const [id, item] of ui.msgs) {
      if (live.has(id)) continue;
      ui.msgs.delete(id);
      if (dropped.has(id)) { item.g.remove(); continue; }
      item.g.removeAttribute('data-id');  // arrived: no longer on its way, nothing to drop
      item.g.classList.add('leaving');
      ui.leaving.push({ ...item, from: item.p, start: now });
    }
    const est = s.timing.latency[1] || 0.01;
    const dropLayer = document.getElementById('drops');
    for (const d of s.drops) {
      if (ui.seenDrops.has(d.drop)) continue;
      ui.seenDrops.add(d.drop);
      if (fresh && d.at < s.t - 4 * est) continue;
      if (!ui.pos.has(d.from) || !ui.pos.has(d.to)) continue;
      const p = d.at > d.t ? Math.min(0.8, (d.at - d.t) / est) : 0.14;
      const link = `${d.from}>${d.to}`;
      for (const [key, old] of ui.drops) {
        if (old.link === link) { old.g.remove(); ui.drops.delete(key); }
      }
      const g = sv('g', { class: 'drop' },
        sv('title', { text: `${describe(d)}: dropped (${d.reason})` }),
        sv('line', { x1: -5, y1: -5, x2: 5, y2: 5 }), sv('line', { x1: -5, y1: 5, x2: 5, y2: -5 }));
      dropLayer.append(g);
      ui.drops.set(d.drop, { d, g, p, seen: now, link });
    }
  }

  function place(g, from, to, p, lane) {
    const a = ui.pos.get(from); const b = ui.pos.get(to);
    if (!a || !b) return;
    const dx = b.x - a.x; const dy = b.y - a.y;
    const len = Math.hypot(dx, dy) || 1;
    const ux = dx / len; const uy = dy / len;
    const off = TIMER_R + 4;
    const span = Math.max(len - 2 * off, 1);
    const x = a.x + ux * (off + span * p) - uy * lane;
    const y = a.y + uy * (off + span * p) + ux * lane;
    g.setAttribute('transform', `translate(${x.toFixed(1)},${y.toFixed(1)})`);
  }

  // ------------------------------------------------------------------ animation

  function frame() {
    requestAnimationFrame(frame);
    const s = ui.state;
    if (!s) return;
    const vt = virtualNow();
    $('clock').textContent = vt.toFixed(3);
    const est = s.timing.latency[1] || 0.01;
    const now = performance.now();
    for (const item of ui.msgs.values()) {
      item.p = Math.max(0, Math.min(0.97, (vt - item.m.t) / est));
      place(item.g, item.m.from, item.m.to, item.p, 5);
    }
    ui.leaving = ui.leaving.filter((item) => {
      const k = (now - item.start) / LEAVE_MS;
      if (k >= 1) { item.g.remove(); return false; }
      place(item.g, item.m.from, item.m.to, item.from + (1 - item.from) * k, 5);
      return true;
    });
    for (const [key, item] of ui.drops) {
      const wallAge = (now - item.seen) / DROP_MS;
      const simAge = (vt - item.d.at) / (4 * est);
      const age = Math.min(wallAge, simAge);
      if (age >= 1) { item.g.remove(); ui.drops.delete(key); continue; }
      item.g.setAttribute('opacity', (1 - Math.max(0, age) * 0.8).toFixed(2));
      place(item.g, item.d.from, item.d.to, item.p, 5);
    }
    for (const srv of s.servers) {
      const node = ui.nodes.get(srv.id);
      const row = ui.rows.get(srv.id);
      let frac = 0;
      let text = '';
      if (srv.status === 'up' && srv.deadline !== null) {
        const left = Math.max(0, srv.deadline - vt);
        frac = Math.min(1, left / s.timing.election_max);
        text = `${Math.round(left * 1000)} ms`;
      } else if (srv.status === 'up' && srv.role === 'leader') {
        text = 'leads';
      } else if (srv.status === 'frozen') {
        text = '—';
      }
      if (node) {
        node.timer.setAttribute('stroke-dasharray', `${(frac * TIMER_C).toFixed(1)} ${TIMER_C.toFixed(1)}`);
        node.timer.setAttribute('class', frac > 0 && frac < 0.25 ? 'timer low' : 'timer');
      }
      if (row) {
        row.timerText.textContent = text;
        row.timerBar.style.width = `${(frac * 100).toFixed(0)}%`;
      }
    }
  }

  // ------------------------------------------------------------------ servers table

  function buildServerRows(s) {
    const body = $('servers').tBodies[0];
    body.textContent = '';
    for (const srv of s.servers) {
      const roleSpan = el('span');
      const timerBar = el('i');
      const timerText = el('span');
      const crash = el('button', { 'data-act': 'crash', 'data-id': srv.id, class: 'danger' });
      const freeze = el('button', { 'data-act': 'pause', 'data-id': srv.id });
      const tr = el('tr', { 'data-id': srv.id },
        el('td', { class: 'sid', style: `color:${ui.pos.get(srv.id).color}`, text: srv.id,
          'data-select': srv.id, title: `click to select ${srv.id} for a partition` }),
        el('td', { class: 'role' }, roleSpan),
        el('td', { class: 'term' }),
        el('td', { class: 'vote' }),
        el('td', { class: 'commit' }),
        el('td', { class: 'progress' }),
        el('td', { class: 'timer' }, el('span', { class: 'timerbar' }, timerBar), timerText),
        el('td', { class: 'acts' }, crash, ' ', freeze));
      body.append(tr);
      ui.rows.set(srv.id, { tr, roleSpan, crash, freeze, timerBar, timerText,
        term: tr.querySelector('.term'), vote: tr.querySelector('.vote'),
        commit: tr.querySelector('.commit'), progress: tr.querySelector('.progress') });
    }
  }

  function updateServers(s) {
    const leader = s.servers.find((x) => x.id === s.leader && x.progress);
    for (const srv of s.servers) {
      const row = ui.rows.get(srv.id);
      if (!row) continue;
      const crashed = srv.status === 'crashed';
      const frozen = srv.status === 'frozen';
      row.tr.classList.toggle('selected', ui.selected.has(srv.id));
      row.tr.classList.toggle('named', !!(ui.named && ui.named.has(srv.id)));
      const cls = crashed ? 'crashed' : frozen ? 'frozen' : srv.role;
      row.roleSpan.className = `r-${cls}`;
      row.roleSpan.textContent = crashed ? 'crashed' : frozen ? 'frozen' : srv.role;
      row.roleSpan.title = frozen ? `frozen while ${srv.role}: it handles nothing until thawed` : '';
      row.tr.setAttribute('data-role', crashed ? 'crashed' : srv.role);
      row.term.textContent = srv.term;
      row.vote.textContent = srv.voted_for || '–';
      row.commit.textContent = `${srv.commit}/${srv.last_index}`;
      // the leader's nextIndex and matchIndex for this follower (paper Figure 2)
      const pr = leader && leader.progress[srv.id];
      row.progress.textContent = pr ? `${pr.next} / ${pr.match}` : srv === leader ? 'leads' : '';
      row.progress.dataset.next = pr ? String(pr.next) : '';
      row.progress.dataset.match = pr ? String(pr.match) : '';
      row.progress.title = pr ? `the leader ${leader.id} will send ${srv.id} entries from index ${pr.next} on; it knows ${srv.id} holds its log up to index ${pr.match} (${pr.state})` : '';
      row.crash.dataset.act = crashed ? 'restart' : 'crash';
      row.crash.textContent = crashed ? 'Restart' : 'Crash';
      row.crash.className = crashed ? '' : 'danger';
      row.crash.title = crashed ? 'start it again from its disk' : 'lose everything in memory; the disk survives';
      row.freeze.dataset.act = frozen ? 'resume' : 'pause';
      row.freeze.textContent = frozen ? 'Thaw' : 'Freeze';
      row.freeze.disabled = crashed;
      row.freeze.title = frozen ? 'resume it (SIGCONT)' : 'pause the process (SIGSTOP): it handles nothing';
    }
  }

  // ------------------------------------------------------------------ API panel

  function updateConfigs(s) {
    const sig = JSON.stringify(s.config_answers);
    if (sig === ui.cfgSig) return;
    ui.cfgSig = sig;
    const body = $('configs').tBodies[0];
    body.textContent = '';
    for (const srv of s.servers) {
      const a = s.config_answers[srv.id];
      const tr = el('tr', { 'data-id': srv.id });
      tr.append(el('td', { class: 'sid', text: srv.id }));
      if (!a) {
        tr.append(el('td', { class: 'status', text: '…' }), el('td', {}), el('td', {}));
      } else if (a.status === 200) {
        const chips = el('td', { class: 'members' });
        for (const m of a.servers) {
          chips.append(el('span', { class: `chip${m.leader ? ' leader' : ''}${m.voter ? '' : ' nonvoter'}`,
            'data-id': m.id, title: `${m.id}: ${m.voter ? 'voter' : 'non-voter'}${m.leader ? ', leader' : ''}`,
            text: m.leader ? `${m.id} ★` : m.id }));
        }
        tr.append(el('td', { class: 'status', text: '200' }),
          el('td', { class: 'index', text: `index ${a.index}`,
            title: 'the log index of the configuration entry this answer comes from' }), chips);
      } else {
        tr.append(el('td', { class: 'status bad', text: a.status ? String(a.status) : '—' }),
          el('td', {}), el('td', { class: 'err', text: a.error || '' }));
      }
      body.append(tr);
    }
  }

  function updateResponses(s) {
    const sig = JSON.stringify(s.api_log);
    if (sig === ui.respSig) return;
    ui.respSig = sig;
    const list = $('responses');
    if (!s.api_log.length) return;
    list.textContent = '';
    for (const r of [...s.api_log].reverse()) {
      const status = r.status === null ? 'wait' : r.status >= 200 && r.status < 300 ? 'ok' : 'bad';
      const shown = r.status === null ? '…' : r.status === 0 ? 'error' : String(r.status);
      const took = r.done !== undefined ? ` after ${Math.round((r.done - r.t) * 1000)} ms` : '';
      const li = el('li', { title: `${r.method} ${r.path} sent to ${r.server} at t=${r.t.toFixed(3)}${took}\n${r.body}` },
        el('code', { text: `${r.method} ${r.path}` }),
        el('span', { class: 'muted', text: ` → ${r.server}` }),
        el('span', { class: `st ${status}`, text: shown }),
        el('span', { class: 'body', text: r.body || (r.status === null ? 'waiting for the cluster…' : '') }));
      li.dataset.status = r.status === null ? '' : String(r.status);
      list.append(li);
    }
  }

  // ------------------------------------------------------------------ logs

  function updateLog(s) {
    const [lo, hi] = s.log_window;
    const sig = JSON.stringify([s.log_window, s.leader,
      s.servers.map((x) => [x.status, x.commit, x.snapshot_index, x.log])]);
    if (sig === ui.logSig) return;
    ui.logSig = sig;
    const parts = ['<thead><tr><th class="sid">index</th>'];
    for (let i = lo; i <= hi; i++) parts.push(`<th>${i}</th>`);
    parts.push('</tr></thead><tbody>');
    for (const srv of s.servers) {
      const byIndex = new Map(srv.log.map((e) => [e[0], e]));
      const cls = srv.status === 'crashed' ? 'sid crashed' : srv.id === s.leader ? 'sid leader' : 'sid';
      parts.push(`<tr data-id="${esc(srv.id)}"><td class="${cls}" title="commit index ${srv.commit}">${esc(srv.id)}<span class="ci">c${srv.commit}</span></td>`);
      for (let i = lo; i <= hi; i++) {
        const e = byIndex.get(i);
        if (e) {
          const [index, term, kind, label, committed] = e;
          const classes = ['cell', committed ? 'committed' : 'pending'];
          if (kind === 'g') classes.push('cfg');
          if (kind === 'n') classes.push('noop');
          const style = committed
            ? `background:${termColor(term)};border-color:${termEdge(term)}`
            : `border-color:${termEdge(term)}`;
          const tip = `index ${index}, term ${term}: ${label}${committed ? ' (committed)' : ' (not committed yet)'}`;
          parts.push(`<td><i class="${classes.join(' ')}" data-index="${index}" style="${style}" title="${esc(tip)}">${term}</i></td>`);
        } else if (i <= srv.snapshot_index) {
          parts.push('<td><i class="cell gone" title="compacted into a snapshot"></i></td>');
        } else {
          parts.push('<td class="empty"><i class="cell"></i></td>');
        }
      }
      parts.push('</tr>');
    }
    parts.push('</tbody>');
    $('log').innerHTML = parts.join('');
  }

  // ------------------------------------------------------------------ feed

  function appendFeed(lines, fresh, skipped) {
    const feed = $('feed');
    if (fresh) feed.textContent = '';
    const stick = feed.scrollHeight - feed.scrollTop - feed.clientHeight < 40;
    if (skipped) feed.append(el('li', { class: 'muted' }, el('span'), el('span'), el('span', { class: 'text', text: `… ${skipped} more events …` })));
    const colors = new Map([...ui.pos].map(([id, p]) => [id, p.color]));
    for (const line of lines) {
      const who = line.server || '';
      const li = el('li', { class: `${line.tone || ''}${fresh || lines.length > 6 ? '' : ' fresh'}`, 'data-kind': line.kind },
        el('span', { class: 't', text: Number(line.t).toFixed(3) }),
        el('span', { class: 'who', text: who, style: who && colors.has(who) ? `color:${colors.get(who)}` : null }),
        el('span', { class: 'text', text: line.text }));
      feed.append(li);
    }
    while (feed.childElementCount > 400) feed.firstElementChild.remove();
    if (stick || fresh) feed.scrollTop = feed.scrollHeight;
  }

  // ------------------------------------------------------------------ controls

  function wire() {
    $('play').addEventListener('click', () => command({ op: ui.state && ui.state.playing ? 'pause' : 'play' }));
    $('step').addEventListener('click', async () => {
      const r = await command({ op: 'step' });
      if (r.ok && !r.stepped) toast('nothing happened for 10 virtual seconds');
    });
    $('speed').addEventListener('input', () => {
      ui.speedDragging = true;
      const x = SPEEDS[Number($('speed').value)];
      $('speed-out').textContent = speedText(x);
      command({ op: 'speed', speed: x }).then(() => { ui.speedDragging = false; });
    });
    const settings = () => act({ op: 'settings', pre_vote: $('pre-vote').checked,
      check_quorum: $('check-quorum').checked });
    $('pre-vote').addEventListener('change', settings);
    $('check-quorum').addEventListener('change', settings);
    $('reset').addEventListener('click', async () => {
      const r = await command({ op: 'reset', seed: Number($('seed').value) || 0,
        servers: Number($('nservers').value) });
      if (!r.ok) toast(r.error, true);
      else if (location.hash) history.replaceState(null, '', location.pathname);
    });
    $('open-scenario').addEventListener('click', () => $('scenario-file').click());
    $('open-lessons').addEventListener('click', () => { $('lessons').hidden = false; });
    $('lesson-list').addEventListener('click', (ev) => {
      const b = ev.target.closest('button[data-lesson]');
      if (b) startLesson(b.dataset.lesson);
    });
    $('explore').addEventListener('click', () => {
      $('lessons').hidden = true;
      if (ui.state && !ui.state.playing && ui.state.t === 0 && !ui.state.scenario) command({ op: 'play' });
    });
    $('lesson-next').addEventListener('click', () => command({ op: 'play' }));
    $('history').addEventListener('input', () => {
      ui.historyDragging = true;
      const t = Number($('history').value);
      $('history-out').textContent = `t = ${t.toFixed(3)} s…`;
      travelTo(t);
    });
    $('history').addEventListener('change', () => { ui.historyDragging = false; });
    $('history-now').addEventListener('click', () => { ui.historyDragging = false; command({ op: 'travel', t: null }); });
    $('lesson-back').addEventListener('click', async () => {
      const r = await command({ op: 'back' });
      if (!r.ok) toast(r.error, true);
    });
    $('scenario-file').addEventListener('change', async () => {
      const file = $('scenario-file').files[0];
      if (!file) return;
      const text = await file.text();
      $('scenario-file').value = '';
      const r = await command({ op: 'scenario', text, name: file.name.replace(/\.toml$/, '') });
      toast(r.ok ? `Playing the scenario “${r.title}”` : r.error, !r.ok);
      if (r.ok && location.hash) history.replaceState(null, '', location.pathname);
    });
    $('permalink').addEventListener('click', copyPermalink);
    $('servers').addEventListener('click', (ev) => {
      const target = ev.target;
      if (target.dataset.select) { toggleSelect(target.dataset.select); return; }
      if (target.tagName === 'BUTTON' && target.dataset.act) {
        act({ op: target.dataset.act, server: target.dataset.id });
      }
    });
    $('write').addEventListener('click', () => {
      const action = { op: 'write', key: $('kv-key').value || 'x', value: $('kv-value').value };
      if ($('kv-via').value) action.via = $('kv-via').value;
      act(action);
    });
    $('remove-peer').addEventListener('click', () => act({ op: 'remove', peer: $('peer').value }));
    $('transfer').addEventListener('click', () => act({ op: 'transfer', target: $('peer').value }));
    $('partition').addEventListener('click', () => {
      const s = ui.state;
      if (!s) return;
      const ids = s.servers.map((x) => x.id);
      const side = ids.filter((id) => ui.selected.has(id));
      const rest = ids.filter((id) => !ui.selected.has(id));
      if (!side.length || !rest.length) {
        toast('Select some servers first (click them in the ring): they go on one side, the rest on the other.', true);
        return;
      }
      act({ op: 'partition', groups: [side, rest] });
    });
    $('heal').addEventListener('click', () => { ui.selected.clear(); act({ op: 'heal' }); });
    document.addEventListener('keydown', (ev) => {
      const t = ev.target;
      if (t instanceof HTMLInputElement || t instanceof HTMLSelectElement || t instanceof HTMLButtonElement) return;
      if (ev.key === 'Escape' && !$('lessons').hidden) { $('explore').click(); return; }
      if (ev.key === ' ') { ev.preventDefault(); $('play').click(); }
      if (ev.key === 'ArrowRight') { ev.preventDefault(); $('step').click(); }
    });
  }

  async function copyPermalink() {
    const r = await command({ op: 'permalink' });
    if (!r.ok) { toast(r.error, true); return; }
    const url = `${location.origin}${location.pathname}#session=${r.permalink}`;
    $('permalink').dataset.url = url;
    try {
      if (!navigator.clipboard) throw new Error('no clipboard');
      await navigator.clipboard.writeText(url);
      toast('Link copied: it replays this session exactly, up to this moment.');
    } catch (err) {
      const box = el('input', { value: url, readonly: true });
      toast('Copy this link (it replays this session exactly):', false, box);
      box.focus(); box.select();
    }
  }

  wire();
  connect();
  requestAnimationFrame(frame);
})();
