// edgeyard web console: a small client of the registry's /api/v1, served by edgeyard itself.
// Plain JavaScript, no build step, nothing loaded from elsewhere. Every element is built with
// DOM calls (never innerHTML), so names, tags and descriptions cannot inject markup.
// Sessions: the server sets an HttpOnly cookie at sign-in and hands back a CSRF token, which
// goes in the X-CSRF-Token header of every request that changes something.
'use strict';

const state = { me: null, repos: null };
const ACTIONS = ['pull', 'push', 'delete', 'admin'];

// ---------------------------------------------------------------------------
// Small helpers

function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

const byId = (id) => document.getElementById(id);
let uid = 0;
const nextId = (p) => `${p}-${++uid}`;

function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)} ${units[i]}`;
}

function ago(t) {
  const s = Math.max(0, Date.now() / 1000 - t);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  if (s < 86400 * 60) return `${Math.floor(s / 86400)} days ago`;
  return new Date(t * 1000).toLocaleDateString();
}

function when(t) {
  if (!t) return h('span', { class: 'muted', text: 'never' });
  const d = new Date(t * 1000);
  return h('time', { datetime: d.toISOString(), title: d.toLocaleString() }, ago(t));
}

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
const shortDigest = (d) => (d || '').replace(/^(sha256:.{12}).*$/, '$1…');
const registryHost = () => location.host;
const repoHref = (name) => `#/r/${name}`;
const tagHref = (name, tag) => `#/t/${name}:${tag}`;

function say(text) {
  const s = byId('status');
  s.textContent = text;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => { s.textContent = ''; }, 4000);
}

class ApiError extends Error {
  constructor(status, message, detail) {
    super(message);
    this.status = status;
    this.detail = detail;
  }
}

async function api(method, path, body, headers) {
  const hdrs = Object.assign({ Accept: 'application/json' }, headers || {});
  if (body !== undefined) hdrs['Content-Type'] = 'application/json';
  if (method !== 'GET' && state.me && state.me.csrf_token) hdrs['X-CSRF-Token'] = state.me.csrf_token;
  const r = await fetch(path, {
    method,
    headers: hdrs,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  const text = await r.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (_) { data = text; }
  }
  if (!r.ok) {
    const e = data && data.errors && data.errors[0];
    if (r.status === 401 && path !== '/api/v1/session') {
      signInPage('Your session has ended. Please sign in again.');
    }
    throw new ApiError(r.status, e ? e.message : `the registry answered ${r.status}`, e && e.detail);
  }
  return data;
}

function alertBox(err) {
  return h('div', { class: 'alert', role: 'alert' }, err instanceof Error ? err.message : String(err));
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {
    // Fallback for browsers without the async clipboard (plain HTTP off localhost).
    const ta = h('textarea', { class: 'offscreen', 'aria-hidden': 'true' });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    document.execCommand('copy');
    ta.remove();
  }
  if (button) {
    const label = button.textContent;
    button.textContent = 'Copied';
    setTimeout(() => { button.textContent = label; }, 1500);
  }
  say('Copied to the clipboard');
}

function command(text, label) {
  const b = h('button', { type: 'button', class: 'quiet small', 'aria-label': `Copy: ${label}` }, 'Copy');
  b.addEventListener('click', () => copy(text, b));
  return h('div', { class: 'cmd' }, h('pre', { 'aria-label': label }, h('code', {}, text)), b);
}

function confirmDialog(title, text, okLabel) {
  const d = byId('confirm');
  byId('confirm-title').textContent = title;
  byId('confirm-text').textContent = text;
  byId('confirm-ok').textContent = okLabel || 'OK';
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.returnValue = '';
    d.showModal();
    byId('confirm-cancel').focus();
  });
}

function table(headers, rows, opts) {
  const head = h('tr', {}, headers.map((c) =>
    h('th', { scope: 'col', class: c.cls || null }, c.label !== undefined ? c.label : c)));
  return h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': (opts && opts.label) || 'Table' },
    h('table', {}, h('thead', {}, head), h('tbody', {}, rows)));
}

function field(labelText, input, hint) {
  const id = input.id || nextId('f');
  input.id = id;
  return h('div', {}, h('label', { for: id }, labelText), input, hint ? h('p', { class: 'muted' }, hint) : null);
}

function actionChecks(name, legend, checked) {
  return h('fieldset', {}, h('legend', {}, legend),
    ACTIONS.map((a) => h('label', { class: 'check' },
      h('input', { type: 'checkbox', name, value: a, checked: (checked || []).includes(a) }), a)));
}

const checkedValues = (form, name) =>
  Array.from(form.querySelectorAll(`input[name="${name}"]:checked`)).map((i) => i.value);

function page(title, ...kids) {
  const main = byId('main');
  const h1 = h('h1', { tabindex: '-1' }, title);
  main.replaceChildren(...kids.flat(Infinity).filter(Boolean).map((k) => (k === '$h1' ? h1 : k)));
  if (!main.contains(h1)) main.prepend(h1);
  document.title = `${typeof title === 'string' ? title : title.textContent} – edgeyard`;
  if (page.moveFocus) h1.focus();
  page.moveFocus = true;
  return main;
}

// ---------------------------------------------------------------------------
// Sign-in and the header

function showBar(on) {
  byId('bar').hidden = !on;
}

function renderBar(section) {
  const me = state.me;
  const links = [
    ['repos', '#/', 'Repositories'],
    ['storage', '#/storage', 'Storage'],
    ['cert', '#/certificate', 'Certificate'],
  ];
  if (me.admin) {
    links.push(['users', '#/users', 'Users'], ['access', '#/access', 'Access'], ['policies', '#/policies', 'Policies'], ['signing', '#/signing', 'Signing']);
  }
  byId('nav').replaceChildren(...links.map(([key, href, label]) =>
    h('a', { href, 'aria-current': key === section ? 'page' : null }, label)));
  byId('who').textContent = me.auth ? me.user + (me.admin ? ' (admin)' : '') : 'authentication off';
  byId('signout').hidden = !me.auth;
  showBar(true);
}

function signInPage(message) {
  state.me = null;
  state.repos = null;
  showBar(false);
  const user = h('input', { id: 'username', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const pass = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const err = h('div', { id: 'signin-error', role: 'alert' }, message ? h('div', { class: 'notice' }, message) : null);
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'signin-form', 'aria-describedby': 'signin-error' },
    field('User name', user), field('Password', pass), submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    err.replaceChildren();
    try {
      // UTF-8, then base64: passwords are not limited to Latin-1.
      const raw = new TextEncoder().encode(`${user.value}:${pass.value}`);
      const b64 = btoa(String.fromCharCode(...raw));
      state.me = await api('POST', '/api/v1/session', undefined, { Authorization: `Basic ${b64}` });
      pass.value = '';
      page.moveFocus = true;
      route();
    } catch (e) {
      err.replaceChildren(h('div', { class: 'alert' }, e.status === 401 ? 'Incorrect user name or password.' : e.message));
      submit.disabled = false;
      pass.focus();
    }
  });
  const main = byId('main');
  main.replaceChildren(h('div', { class: 'signin' },
    h('div', { class: 'logo' }, h('img', { src: '/console/icon.svg', alt: '', width: 40, height: 40 }),
      h('h1', {}, 'Sign in to edgeyard')),
    h('p', { class: 'muted' }, 'Use your registry account: the same user name and password as for docker login.'),
    err, form,
    location.protocol === 'https:' ? h('p', {}, h('a', { href: '/ca.crt', download: 'edgeyard-ca.crt' }, 'Download the registry CA certificate')) : null));
  document.title = 'Sign in – edgeyard';
  user.focus();
}

async function signOut() {
  try { await api('DELETE', '/api/v1/session'); } catch (_) { /* signed out either way */ }
  location.hash = '#/';
  signInPage('You have signed out.');
}

// ---------------------------------------------------------------------------
// Repositories

async function loadRepos() {
  state.repos = await api('GET', '/api/v1/repositories');
  return state.repos;
}

function visibility(pub) {
  return h('span', { class: `badge ${pub ? 'public' : 'private'}` }, pub ? 'Public' : 'Private');
}

async function reposPage() {
  const repos = await loadRepos();
  const search = h('input', { type: 'search', id: 'repo-search', placeholder: 'Name or description', autocomplete: 'off' });
  const count = h('p', { class: 'muted', 'aria-live': 'polite' });
  const body = h('tbody');
  const draw = () => {
    const q = search.value.trim().toLowerCase();
    const shown = repos.filter((r) => !q || r.name.includes(q) || (r.description || '').toLowerCase().includes(q));
    count.textContent = `${shown.length} of ${plural(repos.length, 'repository').replace(/ys$/, 'ies')}`;
    body.replaceChildren(...shown.map((r) => h('tr', { 'data-repo': r.name },
      h('td', {}, h('a', { href: repoHref(r.name) }, r.name)),
      h('td', { class: 'num' }, r.tags),
      h('td', { class: 'num' }, bytes(r.size)),
      h('td', { class: 'nowrap' }, when(r.last_push)),
      h('td', {}, visibility(r.public)),
      h('td', { class: 'wide' }, h('span', { class: 'desc', title: r.description || '' }, r.description || '')))));
    if (!shown.length) {
      body.append(h('tr', {}, h('td', { colspan: 6, class: 'muted' },
        repos.length ? 'No repository matches.' : 'No repositories yet. Push an image: docker push ' + registryHost() + '/NAME:TAG')));
    }
  };
  search.addEventListener('input', draw);
  const heads = ['Name', { label: 'Tags', cls: 'num' }, { label: 'Size', cls: 'num' }, 'Last push', 'Visibility', { label: 'Description', cls: 'wide' }];
  const t = table(heads, [], { label: 'Repositories' });
  t.querySelector('table').replaceChild(body, t.querySelector('tbody'));
  page('Repositories', '$h1', field('Search repositories', search), count, t);
  draw();
}

async function repoActions(name) {
  if (!state.repos) await loadRepos();
  const r = state.repos.find((x) => x.name === name);
  return r ? r.actions : [];
}

async function repoPage(name) {
  const [info, tags, actions] = await Promise.all([
    api('GET', `/api/v1/repositories/${name}`),
    api('GET', `/api/v1/repositories/${name}/tags`),
    repoActions(name),
  ]);
  const admin = state.me.admin;
  const canDelete = admin || actions.includes('delete');
  const msg = h('div', { id: 'repo-message' });

  // Description, editable by administrators.
  const descView = h('div', { class: 'desc-text', id: 'description' }, info.description || h('span', { class: 'muted' }, 'No description.'));
  const descBox = h('section', { 'aria-labelledby': 'desc-h' }, h('h2', { id: 'desc-h' }, 'Description'), descView);
  if (admin) {
    const edit = h('button', { type: 'button', class: 'quiet', id: 'edit-description' }, 'Edit description');
    const area = h('textarea', { id: 'description-input', maxlength: 65536 });
    const form = h('form', { hidden: true, id: 'description-form' },
      field('Description (plain text)', area),
      h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Save description'),
        h('button', { type: 'button', class: 'quiet', onclick: () => { form.hidden = true; edit.hidden = false; descView.hidden = false; edit.focus(); } }, 'Cancel')));
    edit.addEventListener('click', () => {
      area.value = info.description || '';
      form.hidden = false; edit.hidden = true; descView.hidden = true;
      area.focus();
    });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        await api('PUT', `/api/v1/repositories/${name}/description`, { description: area.value });
        info.description = area.value;
        descView.replaceChildren(area.value || h('span', { class: 'muted' }, 'No description.'));
        form.hidden = true; edit.hidden = false; descView.hidden = false;
        state.repos = null;
        say('Description saved');
        edit.focus();
      } catch (e) {
        msg.replaceChildren(alertBox(e));
      }
    });
    const vis = h('button', { type: 'button', class: 'quiet', id: 'toggle-visibility' }, info.public ? 'Make private' : 'Make public');
    vis.addEventListener('click', async () => {
      try {
        await api('PATCH', `/api/v1/repositories/${name}`, { public: !info.public });
        state.repos = null;
        say(info.public ? 'The repository is private now' : 'The repository is public now');
        page.moveFocus = false;
        route();
      } catch (e) { msg.replaceChildren(alertBox(e)); }
    });
    descBox.append(h('div', { class: 'row' }, edit, vis), form);
  }

  const rows = tags.sort((a, b) => b.pushed_at - a.pushed_at).map((t) => {
    const del = canDelete ? h('button', { type: 'button', class: 'quiet small', 'aria-label': `Delete tag ${t.tag}`, 'data-delete': t.tag }, 'Delete') : null;
    if (del) del.addEventListener('click', () => deleteTag(name, t.tag, msg, () => { page.moveFocus = false; route(); }));
    return h('tr', { 'data-tag': t.tag },
      h('td', {}, h('a', { href: tagHref(name, t.tag) }, t.tag)),
      h('td', {}, h('code', { class: 'digest', title: t.digest, 'data-digest': t.digest }, shortDigest(t.digest))),
      h('td', { class: 'num' }, bytes(t.size)),
      h('td', { class: 'nowrap' }, when(t.pushed_at)),
      h('td', { class: 'wide' }, (t.platforms || []).join(', ') || h('span', { class: 'muted' }, 'single')),
      h('td', {}, badges(t)),
      canDelete ? h('td', {}, del) : null);
  });
  const heads = ['Tag', 'Digest', { label: 'Size', cls: 'num' }, 'Pushed', { label: 'Platforms', cls: 'wide' }, 'Flags'];
  if (canDelete) heads.push({ label: h('span', { class: 'visually-hidden' }, 'Actions') });
  page(name,
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Repositories'), ' / ', name),
    '$h1',
    h('p', {}, visibility(info.public), ' ', `${plural(info.tags, 'tag')} · ${bytes(info.size)} · last push `, when(info.last_push)),
    msg, descBox,
    h('h2', {}, `Tags (${tags.length})`),
    tags.length ? table(heads, rows, { label: `Tags of ${name}` }) : h('p', { class: 'muted' }, 'No tags.'));
}

function badges(t) {
  const out = [];
  if (t.trusted === true) out.push(h('span', { class: 'badge trusted', title: "Signed as the repository's trust policy requires" }, 'Signed'));
  if (t.trusted === false) out.push(h('span', { class: 'badge untrusted', title: "Not signed as the repository's trust policy requires: pulls are refused (or, in audit mode, logged)" }, 'Not signed'));
  if (t.immutable) out.push(h('span', { class: 'badge immutable', title: 'Cannot be overwritten or deleted' }, 'Immutable'));
  if (t.referrers) out.push(h('span', { class: 'badge signed', title: 'Signatures, SBOMs or attestations refer to this image' }, `${t.referrers} referrer${t.referrers > 1 ? 's' : ''}`));
  if (t.platforms && t.platforms.length) out.push(h('span', { class: 'badge multi' }, 'Multi-arch'));
  return out;
}

async function deleteTag(name, tag, msg, done) {
  const ok = await confirmDialog(`Delete ${name}:${tag}?`,
    'The tag goes now; the image stays while other tags point at it, and its disk space is freed by the next garbage collection.',
    'Delete tag');
  if (!ok) return;
  try {
    await api('DELETE', `/api/v1/repositories/${name}/tags/${tag}`);
    state.repos = null;
    say(`Deleted ${name}:${tag}`);
    done();
  } catch (e) {
    msg.replaceChildren(h('div', { class: 'alert', role: 'alert', id: 'delete-refused' },
      h('strong', {}, `Not deleted. `), e.message));
    msg.scrollIntoView({ block: 'nearest' });
  }
}

// ---------------------------------------------------------------------------
// One tag

function configFacts(c) {
  if (!c) return null;
  const rows = [
    ['Platform', [c.os, c.architecture, c.variant].filter(Boolean).join('/')],
    ['Created', c.created],
    ['Entrypoint', c.entrypoint && JSON.stringify(c.entrypoint)],
    ['Command', c.cmd && JSON.stringify(c.cmd)],
    ['Working directory', c.working_dir],
    ['User', c.user],
    ['Exposed ports', (c.exposed_ports || []).join(', ')],
    ['History', c.history ? `${c.history} steps` : ''],
    ['Config', `${shortDigest(c.digest)} (${bytes(c.size)})`],
  ].filter(([, v]) => v);
  const labels = Object.entries(c.labels || {});
  return [
    h('dl', { class: 'facts' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, k === 'Entrypoint' || k === 'Command' ? h('code', {}, v) : v)])),
    labels.length ? [h('h3', {}, 'Labels'), h('dl', { class: 'facts' }, labels.map(([k, v]) => [h('dt', {}, h('code', {}, k)), h('dd', {}, v)]))] : null,
  ];
}

function layerTable(layers, label) {
  if (!layers || !layers.length) return h('p', { class: 'muted' }, 'No layers.');
  const total = layers.reduce((s, l) => s + l.size, 0);
  const rows = layers.map((l, i) => h('tr', {},
    h('td', { class: 'num' }, i + 1),
    h('td', {}, h('code', { title: l.digest }, shortDigest(l.digest))),
    h('td', { class: 'num' }, bytes(l.size)),
    h('td', { class: 'wide' }, h('code', {}, l.media_type))));
  rows.push(h('tr', {}, h('td', {}), h('td', {}, h('strong', {}, 'Total')), h('td', { class: 'num' }, h('strong', {}, bytes(total))), h('td', { class: 'wide' })));
  const t = table([{ label: '#', cls: 'num' }, 'Digest', { label: 'Size', cls: 'num' }, { label: 'Media type', cls: 'wide' }], rows, { label });
  t.querySelector('table').setAttribute('data-layers', '');
  return t;
}

async function tagPage(name, tag) {
  const [d, actions] = await Promise.all([
    api('GET', `/api/v1/repositories/${name}/tags/${tag}`),
    repoActions(name),
  ]);
  const host = registryHost();
  const msg = h('div', { id: 'tag-message' });
  const canDelete = state.me.admin || actions.includes('delete');
  const flags = badges({ immutable: !!d.immutable, referrers: d.referrers.length, platforms: d.platforms.map((p) => p.platform), trusted: d.trust ? d.trust.met : undefined });
  const facts = [
    ['Digest', h('code', { id: 'tag-digest' }, d.digest)],
    ['Media type', h('code', {}, d.media_type)],
    ['Size', bytes(d.size)],
    ['Pushed', when(d.pushed_at)],
  ];
  if (d.immutable) facts.push(['Immutable', `rule ${d.immutable.id}: repositories ${d.immutable.repos}, tags ${d.immutable.tags}`]);
  if (d.artifact_type) facts.push(['Artifact type', h('code', {}, d.artifact_type)]);
  const sections = [
    h('h2', {}, 'Pull'),
    h('p', { class: 'muted' }, 'By tag (follows the tag when it moves) or by digest (always this exact image):'),
    command(`docker pull ${host}/${name}:${tag}`, 'Pull by tag'),
    command(`docker pull ${host}/${name}@${d.digest}`, 'Pull by digest'),
  ];
  if (d.platforms.length) {
    sections.push(h('h2', {}, `Platforms (${d.platforms.length})`));
    for (const p of d.platforms) {
      sections.push(h('details', {},
        h('summary', {}, p.platform, h('span', { class: 'muted' }, ` ${shortDigest(p.digest)} · ${bytes(p.size)}`),
          p.present ? null : h('span', { class: 'badge private' }, 'not here')),
        p.present ? [configFacts(p.config), h('h3', {}, 'Layers'), layerTable(p.layers, `Layers of ${p.platform}`)] : h('p', { class: 'muted' }, 'This image was not pushed to this registry.')));
    }
  } else {
    if (d.config) sections.push(h('h2', {}, 'Configuration'), configFacts(d.config));
    sections.push(h('h2', {}, `Layers (${d.layers.length})`), layerTable(d.layers, 'Layers'));
  }
  if (d.trust) {
    sections.push(h('h2', {}, 'Signatures'));
    sections.push(h('p', { id: 'tag-signers' }, d.trust.signed_by.length
      ? ['Signed by ', ...d.trust.signed_by.flatMap((k, i) => [i ? ', ' : '', h('strong', {}, k.key), ' ', h('code', { class: 'muted' }, k.fingerprint)])]
      : 'No signature by an installed key.'));
    sections.push(table(['Trust policy', 'Repositories', 'Mode', 'Met'], d.trust.policies.map((p) => h('tr', {},
      h('td', {}, String(p.id)), h('td', {}, h('code', {}, p.repos)), h('td', {}, p.mode),
      h('td', {}, p.met ? 'yes' : `no: ${p.why}`))), { label: 'Trust policies' }));
  }
  sections.push(h('h2', {}, `Referrers (${d.referrers.length})`));
  sections.push(d.referrers.length
    ? table(['Artifact type', 'Digest', { label: 'Size', cls: 'num' }], d.referrers.map((r) => h('tr', {},
      h('td', {}, h('code', {}, r.artifact_type || r.media_type)),
      h('td', {}, h('code', { title: r.digest }, shortDigest(r.digest))),
      h('td', { class: 'num' }, bytes(r.size)))), { label: 'Referrers' })
    : h('p', { class: 'muted' }, 'No signatures, SBOMs or attestations refer to this image.'));
  if (canDelete) {
    const del = h('button', { type: 'button', class: 'danger', id: 'delete-tag' }, 'Delete this tag');
    del.addEventListener('click', () => deleteTag(name, tag, msg, () => { location.hash = repoHref(name); }));
    sections.push(h('h2', {}, 'Delete'), h('p', { class: 'muted' }, d.immutable ? 'This tag is immutable: the registry will refuse.' : 'Removes the tag; the image stays while other tags point at it.'), del);
  }
  page(`${name}:${tag}`,
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Repositories'), ' / ', h('a', { href: repoHref(name) }, name), ' / ', tag),
    '$h1', h('p', {}, flags), msg,
    h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    sections);
}

// ---------------------------------------------------------------------------
// Storage and garbage collection

function gcSummary(r) {
  return h('dl', { class: 'facts', id: 'gc-report' },
    h('dt', {}, r.dry_run ? 'Would delete' : 'Deleted'), h('dd', {}, `${r.blobs_deleted} of ${r.blobs_total} blobs, ${r.manifests_deleted || 0} untagged manifests`),
    h('dt', {}, r.dry_run ? 'Would free' : 'Freed'), h('dd', {}, bytes(r.bytes_freed)),
    h('dt', {}, 'Kept (recent)'), h('dd', {}, `${r.blobs_recent} blobs and ${r.manifests_recent || 0} untagged manifests within the grace period`),
    h('dt', {}, 'Expired uploads'), h('dd', {}, String(r.uploads_expired)),
    h('dt', {}, 'Took'), h('dd', {}, `${r.duration_ms} ms`));
}

async function storagePage() {
  const s = await api('GET', '/api/v1/storage');
  const card = (label, value) => h('div', { class: 'card' }, h('span', { class: 'big' }, value), h('span', { class: 'label' }, label));
  const kids = [
    '$h1',
    h('div', { class: 'cards' },
      card('used by image data', bytes(s.blob_bytes)),
      card('blobs (layers and configs)', s.blobs === null ? '–' : String(s.blobs)),
      card('free on the disk', bytes(s.free_bytes)),
      card('pushes refused below', bytes(s.upload_floor_bytes))),
    h('h2', {}, 'Last garbage collection'),
    s.last_gc ? [h('p', {}, 'Ran ', when(s.last_gc.started_at), '.'), gcSummary(s.last_gc)] : h('p', { class: 'muted' }, 'No garbage collection has run yet.'),
  ];
  if (state.me.admin) {
    const out = h('div', { id: 'gc-output', 'aria-live': 'polite' });
    const preview = h('button', { type: 'button', id: 'gc-preview' }, 'Preview (dry run)');
    const run = h('button', { type: 'button', class: 'danger', id: 'gc-run' }, 'Run garbage collection');
    preview.addEventListener('click', async () => {
      out.replaceChildren(h('p', { class: 'muted' }, 'Looking for unreferenced data…'));
      try {
        const r = await api('POST', '/api/v1/gc', { dry_run: true });
        out.replaceChildren(h('h3', {}, 'Preview: nothing was deleted'), gcSummary(r));
      } catch (e) { out.replaceChildren(alertBox(e)); }
    });
    run.addEventListener('click', async () => {
      if (!await confirmDialog('Run garbage collection?', 'Deletes blobs and untagged manifests nothing refers to (older than the one-hour grace period). Pushes and pulls go on meanwhile.', 'Run')) return;
      out.replaceChildren(h('p', { class: 'muted' }, 'Collecting…'));
      try {
        const r = await api('POST', '/api/v1/gc', { dry_run: false });
        out.replaceChildren(h('h3', {}, 'Done'), gcSummary(r));
      } catch (e) { out.replaceChildren(alertBox(e)); }
    });
    kids.push(h('h2', {}, 'Run garbage collection'),
      h('p', { class: 'muted' }, 'Frees the space of deleted images and abandoned uploads. Preview first to see what would go.'),
      h('div', { class: 'row' }, preview, run), out);
  }
  page('Storage', ...kids);
}

// ---------------------------------------------------------------------------
// Registry certificate

async function certPage() {
  const ca = await api('GET', '/api/v1/ca');
  const host = registryHost();
  if (!ca.available) {
    page('Registry certificate', '$h1', h('div', { class: 'notice' },
      state.me.tls ? 'This registry serves a certificate of its own choosing (not from its built-in CA): trust that certificate’s issuer on each client.'
        : 'This registry serves plain HTTP, so there is no certificate to trust. Docker clients must list it under "insecure-registries" in /etc/docker/daemon.json.'));
    return;
  }
  const fps = ca.certificates.map((c) => c.fingerprint_sha256);
  const fpArgs = fps.map((f) => `--fingerprint ${f}`).join(' \\\n  ');
  const dl = h('a', { class: 'button', href: ca.download, download: 'edgeyard-ca.crt', id: 'download-ca' }, 'Download CA certificate');
  const certs = ca.certificates.map((c, i) => h('dl', { class: 'facts', 'data-ca': i },
    h('dt', {}, 'Subject'), h('dd', {}, c.subject),
    h('dt', {}, 'Valid until'), h('dd', {}, new Date(c.not_after * 1000).toLocaleDateString()),
    h('dt', {}, 'SHA-256 fingerprint'), h('dd', {}, h('code', { class: 'fingerprint' }, c.fingerprint_sha256))));
  const fetchCa = (dir) => `sudo mkdir -p ${dir}\ncurl -fsSk https://${host}/ca.crt | sudo tee ${dir}/ca.crt >/dev/null\nopenssl x509 -in ${dir}/ca.crt -noout -fingerprint -sha256`;
  const cd = `/etc/containerd/certs.d/${host}`;
  page('Registry certificate',
    '$h1',
    h('p', {}, 'Clients pull over HTTPS and must trust this registry’s certificate authority (CA). Download it, or run one of the commands below on each client; check that the fingerprint printed matches the one shown here.'),
    h('div', { class: 'row' }, dl),
    ca.certificates.length > 1 ? h('div', { class: 'notice' }, 'A CA rotation is under way: both CAs are served and clients should trust both.') : null,
    certs,
    h('h2', {}, 'edgeyard (docker, containerd and podman at once)'),
    h('p', { class: 'muted' }, 'Downloads the CA, checks its fingerprint and installs it for every runtime on the client:'),
    command(`sudo edgeyard cert trust --registry ${host} \\\n  --from https://${host} \\\n  ${fpArgs}`, 'edgeyard cert trust'),
    h('h2', {}, 'Docker (certs.d)'),
    command(fetchCa(`/etc/docker/certs.d/${host}`), 'Docker certs.d'),
    h('h2', {}, 'containerd (hosts.toml)'),
    h('p', { class: 'muted' }, 'containerd reads these when its CRI registry config_path is /etc/containerd/certs.d (the default in k3s).'),
    command(`${fetchCa(cd)}\nsudo tee ${cd}/hosts.toml <<'EOF'\nserver = "https://${host}"\n\n[host."https://${host}"]\n  capabilities = ["pull", "resolve", "push"]\n  ca = "${cd}/ca.crt"\nEOF`, 'containerd hosts.toml'),
    h('h2', {}, 'Podman, Skopeo, CRI-O'),
    command(fetchCa(`/etc/containers/certs.d/${host}`), 'Podman certs.d'));
}

// ---------------------------------------------------------------------------
// Administration: users, robots, access rules, policies

function deleteButton(label, what, doIt, msg) {
  const b = h('button', { type: 'button', class: 'quiet small', 'aria-label': label }, 'Delete');
  b.addEventListener('click', async () => {
    if (!await confirmDialog(`${label}?`, what, 'Delete')) return;
    try { await doIt(); say('Deleted'); page.moveFocus = false; route(); } catch (e) { msg.replaceChildren(alertBox(e)); }
  });
  return b;
}

function submitter(form, msg, doIt) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    msg.replaceChildren();
    try {
      const done = await doIt();
      say('Saved');
      page.moveFocus = false;
      await route();
      if (done) byId('main').prepend(done);
    } catch (e) { msg.replaceChildren(alertBox(e)); }
  });
  return form;
}

async function usersPage() {
  const [users, robots] = await Promise.all([api('GET', '/api/v1/users'), api('GET', '/api/v1/robots')]);
  const msg = h('div');
  const pwForm = h('form', { hidden: true, id: 'password-form' });
  const userRows = users.map((u) => {
    const pw = h('button', { type: 'button', class: 'quiet small', 'aria-label': `Set a new password for ${u.name}` }, 'Password');
    pw.addEventListener('click', () => {
      const input = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
      pwForm.replaceChildren(h('h2', {}, `New password for ${u.name}`), field('New password', input, 'Also signs the user out everywhere.'),
        h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Set password'),
          h('button', { type: 'button', class: 'quiet', onclick: () => { pwForm.hidden = true; } }, 'Cancel')));
      pwForm.onsubmit = async (ev) => {
        ev.preventDefault();
        try { await api('PUT', `/api/v1/users/${encodeURIComponent(u.name)}/password`, { password: input.value }); pwForm.hidden = true; say('Password changed'); } catch (e) { msg.replaceChildren(alertBox(e)); }
      };
      pwForm.hidden = false;
      input.focus();
    });
    return h('tr', {}, h('td', {}, u.name), h('td', {}, u.admin ? 'yes' : 'no'), h('td', {}, (u.groups || []).join(', ')),
      h('td', { class: 'nowrap' }, pw, ' ', deleteButton(`Delete user ${u.name}`, 'The user can no longer log in; their stored docker logins and console sessions end.', () => api('DELETE', `/api/v1/users/${encodeURIComponent(u.name)}`), msg)));
  });
  const robotRows = robots.map((r) => h('tr', {}, h('td', {}, h('code', {}, r.name)),
    h('td', {}, r.grants.map((g) => `${g.repos} = ${g.actions.join(',')}`).join('; ')),
    h('td', {}, r.expires_at ? new Date(r.expires_at * 1000).toLocaleDateString() : 'never'),
    h('td', {}, deleteButton(`Revoke robot ${r.name}`, 'Its secret stops working at once.', () => api('DELETE', `/api/v1/robots/${encodeURIComponent(r.name)}`), msg))));

  const nu = { name: h('input', { autocomplete: 'off', required: true }), pw: h('input', { type: 'password', autocomplete: 'new-password', required: true }), groups: h('input', { placeholder: 'ci, line3' }) };
  const adminBox = h('input', { type: 'checkbox', name: 'admin' });
  const userForm = submitter(h('form', { 'aria-labelledby': 'add-user-h' },
    h('h2', { id: 'add-user-h' }, 'Add a user'),
    h('div', { class: 'fields' }, field('User name', nu.name), field('Password', nu.pw), field('Groups (comma separated)', nu.groups)),
    h('label', { class: 'check' }, adminBox, 'Administrator'),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Add user'))), msg, async () => {
    await api('POST', '/api/v1/users', { name: nu.name.value.trim(), password: nu.pw.value, admin: adminBox.checked, groups: nu.groups.value.split(',').map((s) => s.trim()).filter(Boolean) });
  });

  const nr = { name: h('input', { autocomplete: 'off', required: true, placeholder: 'line3' }), repos: h('input', { required: true, placeholder: 'edge/**' }), days: h('input', { type: 'number', min: 1, placeholder: 'never' }) };
  const robotForm = h('form', { 'aria-labelledby': 'add-robot-h' },
    h('h2', { id: 'add-robot-h' }, 'Add a robot account'),
    h('div', { class: 'fields' }, field('Name', nr.name), field('Repositories (glob)', nr.repos), field('Expires after (days)', nr.days)),
    actionChecks('robot-actions', 'Actions', ['pull']),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Add robot')));
  submitter(robotForm, msg, async () => {
    const r = await api('POST', '/api/v1/robots', {
      name: nr.name.value.trim(),
      grants: [{ repos: nr.repos.value.trim(), actions: checkedValues(robotForm, 'robot-actions') }],
      expires_days: nr.days.value ? Number(nr.days.value) : undefined,
    });
    return h('div', { class: 'notice', role: 'alert' }, h('p', {}, `Robot ${r.name} created. Its secret is shown only now:`), command(r.secret, 'Robot secret'),
      h('p', {}, `docker login -u '${r.name}' ${registryHost()}`));
  });

  page('Users and robot accounts', '$h1', msg,
    table(['Name', 'Admin', 'Groups', { label: 'Actions' }], userRows, { label: 'Users' }), pwForm, userForm,
    h('h2', {}, 'Robot accounts'),
    robots.length ? table(['Name', 'Grants', 'Expires', { label: 'Actions' }], robotRows, { label: 'Robot accounts' }) : h('p', { class: 'muted' }, 'No robot accounts.'),
    robotForm);
}

async function accessPage() {
  const rules = await api('GET', '/api/v1/rules');
  const msg = h('div');
  const rows = rules.map((r) => h('tr', {}, h('td', { class: 'num' }, r.id), h('td', {}, h('code', {}, r.subject)), h('td', {}, h('code', {}, r.repos)), h('td', {}, r.actions.join(', ')),
    h('td', {}, deleteButton(`Delete access rule ${r.id}`, 'The rights it grants end at once.', () => api('DELETE', `/api/v1/rules/${r.id}`), msg))));
  const subject = h('input', { required: true, placeholder: 'user:alice, group:ci, authenticated, anonymous' });
  const repos = h('input', { required: true, placeholder: 'team/**' });
  const form = h('form', { 'aria-labelledby': 'add-rule-h' }, h('h2', { id: 'add-rule-h' }, 'Add an access rule'),
    h('div', { class: 'fields' }, field('Subject', subject), field('Repositories (glob)', repos)),
    actionChecks('rule-actions', 'Actions', ['pull']), h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Add rule')));
  submitter(form, msg, () => api('POST', '/api/v1/rules', { subject: subject.value.trim(), repos: repos.value.trim(), actions: checkedValues(form, 'rule-actions') }));
  page('Access rules', '$h1',
    h('p', { class: 'muted' }, 'Administrators may do everything; everyone else only what these rules grant. * stays within a path segment, ** crosses them.'),
    msg, rules.length ? table([{ label: 'Id', cls: 'num' }, 'Subject', 'Repositories', 'Actions', { label: 'Actions on the rule' }], rows, { label: 'Access rules' }) : h('p', { class: 'muted' }, 'No rules: only administrators have access.'),
    form);
}

async function policiesPage() {
  const [imm, ret] = await Promise.all([api('GET', '/api/v1/immutability'), api('GET', '/api/v1/retention')]);
  const msg = h('div');
  const immRows = imm.map((r) => h('tr', {}, h('td', { class: 'num' }, r.id), h('td', {}, h('code', {}, r.repos)), h('td', {}, h('code', {}, r.tags)),
    h('td', {}, deleteButton(`Delete immutability rule ${r.id}`, 'Matching tags can be overwritten and deleted again.', () => api('DELETE', `/api/v1/immutability/${r.id}`), msg))));
  const ir = { repos: h('input', { required: true, placeholder: 'prod/**' }), tags: h('input', { required: true, placeholder: 'v*' }) };
  const immForm = submitter(h('form', { 'aria-labelledby': 'add-imm-h' }, h('h3', { id: 'add-imm-h' }, 'Add an immutability rule'),
    h('div', { class: 'fields' }, field('Repositories (glob)', ir.repos), field('Tags (glob)', ir.tags)),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Add rule'))), msg,
  () => api('POST', '/api/v1/immutability', { repos: ir.repos.value.trim(), tags: ir.tags.value.trim() }));

  const retRows = ret.map((r) => h('tr', {}, h('td', { class: 'num' }, r.id), h('td', {}, h('code', {}, r.repos)),
    h('td', { class: 'num' }, r.keep_last ?? '–'), h('td', { class: 'num' }, r.keep_days ?? '–'),
    h('td', {}, deleteButton(`Delete retention rule ${r.id}`, 'Tags it would expire are kept.', () => api('DELETE', `/api/v1/retention/${r.id}`), msg))));
  const rr = { repos: h('input', { required: true, placeholder: 'ci/**' }), last: h('input', { type: 'number', min: 0, placeholder: '10' }), days: h('input', { type: 'number', min: 0, placeholder: '30' }) };
  const retForm = submitter(h('form', { 'aria-labelledby': 'add-ret-h' }, h('h3', { id: 'add-ret-h' }, 'Add a retention rule'),
    h('div', { class: 'fields' }, field('Repositories (glob)', rr.repos), field('Keep the newest', rr.last), field('Keep pushed within (days)', rr.days)),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Add rule'))), msg,
  () => api('POST', '/api/v1/retention', { repos: rr.repos.value.trim(), keep_last: rr.last.value ? Number(rr.last.value) : undefined, keep_days: rr.days.value ? Number(rr.days.value) : undefined }));

  const out = h('div', { 'aria-live': 'polite' });
  const showExpired = (list, dry) => out.replaceChildren(list.length
    ? [h('h3', {}, dry ? `Would expire ${list.length} tags` : `Expired ${list.length} tags`),
      table(['Repository', 'Tag', 'Digest', { label: 'Rule', cls: 'num' }], list.map((e) => h('tr', {}, h('td', {}, e.repository), h('td', {}, e.tag), h('td', {}, h('code', { title: e.digest }, shortDigest(e.digest))), h('td', { class: 'num' }, e.rule))), { label: 'Expired tags' })]
    : h('p', { class: 'muted' }, dry ? 'Nothing would expire.' : 'Nothing expired.'));
  const preview = h('button', { type: 'button', class: 'quiet' }, 'Preview (dry run)');
  preview.addEventListener('click', async () => { try { showExpired(await api('POST', '/api/v1/retention/apply', { dry_run: true }), true); } catch (e) { out.replaceChildren(alertBox(e)); } });
  const apply = h('button', { type: 'button', class: 'danger' }, 'Apply retention now');
  apply.addEventListener('click', async () => {
    if (!await confirmDialog('Apply retention now?', 'Deletes the tags the rules let go (pinned and immutable tags stay).', 'Apply')) return;
    try { showExpired(await api('POST', '/api/v1/retention/apply', { dry_run: false }), false); } catch (e) { out.replaceChildren(alertBox(e)); }
  });

  page('Policies', '$h1', msg,
    h('h2', {}, 'Immutable tags'),
    h('p', { class: 'muted' }, 'Matching tags can be pushed once and then never overwritten or deleted.'),
    imm.length ? table([{ label: 'Id', cls: 'num' }, 'Repositories', 'Tags', { label: 'Actions' }], immRows, { label: 'Immutability rules' }) : h('p', { class: 'muted' }, 'No immutability rules.'),
    immForm,
    h('h2', {}, 'Retention'),
    h('p', { class: 'muted' }, 'Tags kept: the newest N, and those pushed within D days; a tag either keeps is kept.'),
    ret.length ? table([{ label: 'Id', cls: 'num' }, 'Repositories', { label: 'Keep newest', cls: 'num' }, { label: 'Keep days', cls: 'num' }, { label: 'Actions' }], retRows, { label: 'Retention rules' }) : h('p', { class: 'muted' }, 'No retention rules.'),
    retForm,
    h('div', { class: 'row' }, preview, apply), out);
}

// Image signing: the keys trusted to sign images and the policies that require them.

function signersText(p) {
  return p.require === 'each' ? `one by each of ${p.keys.join(', ')}` : `one by ${p.keys.join(' or ')}`;
}

function choice(values, selected) {
  return h('select', {}, values.map(([v, label]) => h('option', { value: v, selected: v === selected }, label)));
}

function fromConfig() {
  return h('span', { class: 'muted' }, 'configuration file');
}

async function signingPage() {
  const [keys, policies] = await Promise.all([api('GET', '/api/v1/trust/keys'), api('GET', '/api/v1/trust/policies')]);
  const msg = h('div');
  const origin = (o) => (o.source === 'config' ? fromConfig() : o.source === 'bundle' ? h('span', { class: 'muted' }, 'bundle') : null);
  const keyRows = keys.map((k) => h('tr', { 'data-key': k.name }, h('td', {}, k.name), h('td', {}, k.kind),
    h('td', {}, k.purpose === 'trust-updates' ? 'trust updates' : 'images'),
    h('td', {}, h('code', { class: 'fingerprint' }, k.fingerprint)),
    h('td', {}, origin(k) || when(k.added_at)),
    h('td', {}, k.source === 'config' ? fromConfig() : deleteButton(`Delete key ${k.name}`, 'Images signed only by this key are refused where a policy needs it.', () => api('DELETE', `/api/v1/trust/keys/${encodeURIComponent(k.name)}`), msg))));
  const nk = {
    name: h('input', { autocomplete: 'off', required: true, placeholder: 'release' }),
    pem: h('textarea', { required: true, spellcheck: 'false', placeholder: '-----BEGIN PUBLIC KEY-----' }),
    purpose: choice([['images', 'images'], ['trust-updates', 'trust updates in bundles']], 'images'),
  };
  const pick = h('input', { type: 'file', accept: '.pub,.pem,.crt' });
  pick.addEventListener('change', async () => { if (pick.files[0]) nk.pem.value = await pick.files[0].text(); });
  const keyForm = submitter(h('form', { 'aria-labelledby': 'add-key-h' }, h('h3', { id: 'add-key-h' }, 'Add a key'),
    h('div', { class: 'fields' }, field('Name', nk.name), field('It signs', nk.purpose), field('Key file', pick, 'Fills the box below.')),
    field('PEM public key or CA certificate', nk.pem, 'cosign.pub (ECDSA, RSA or Ed25519), or the CA certificate of a notation trust store.'),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Add key'))), msg, async () => {
    const k = await api('POST', '/api/v1/trust/keys', { name: nk.name.value.trim(), pem: nk.pem.value, purpose: nk.purpose.value });
    return h('div', { class: 'notice', role: 'alert' }, h('p', {}, `Key ${k.name} trusted (${k.kind}). Compare its fingerprint with the signer's:`), command(k.fingerprint, 'Key fingerprint'));
  });

  const policyRows = policies.map((p) => h('tr', { 'data-policy': p.id }, h('td', { class: 'num' }, p.id), h('td', {}, h('code', {}, p.repos)),
    h('td', {}, signersText(p)), h('td', {}, p.mode === 'audit' ? 'audit only' : 'enforced'),
    h('td', {}, p.index === 'platforms' ? 'each platform' : 'whole index'),
    h('td', {}, (p.identities || []).join('; ') || h('span', { class: 'muted' }, 'any')),
    h('td', {}, p.source === 'config' ? fromConfig() : deleteButton(`Delete trust policy ${p.id}`, 'Its repositories serve unsigned images again.', () => api('DELETE', `/api/v1/trust/policies/${p.id}`), msg))));
  const np = {
    repos: h('input', { required: true, placeholder: 'prod/**' }),
    require: choice([['any', 'any listed key'], ['each', 'each listed key']], 'any'),
    mode: choice([['enforce', 'enforce (refuse)'], ['audit', 'audit (serve, log, count)']], 'enforce'),
    index: choice([['whole', 'signed as a whole'], ['platforms', 'each platform signed']], 'whole'),
    identities: h('textarea', { spellcheck: 'false', placeholder: 'x509.subject: C=DE, ST=Bavaria, O=Factory' }),
  };
  const imageKeys = keys.filter((k) => k.purpose !== 'trust-updates');
  const keyChecks = h('fieldset', {}, h('legend', {}, 'Keys'), imageKeys.length
    ? imageKeys.map((k) => h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'policy-keys', value: k.name }), k.name))
    : h('p', { class: 'muted' }, 'Add a key first.'));
  const policyForm = h('form', { 'aria-labelledby': 'add-policy-h' }, h('h3', { id: 'add-policy-h' }, 'Add a trust policy'),
    h('div', { class: 'fields' }, field('Repositories (glob)', np.repos), field('A signature by', np.require), field('Mode', np.mode), field('Multi-platform images', np.index)),
    keyChecks,
    field('Notation signers trusted (one per line; none: any the CA vouches for)', np.identities),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Add policy')));
  submitter(policyForm, msg, () => api('POST', '/api/v1/trust/policies', {
    repos: np.repos.value.trim(), keys: checkedValues(policyForm, 'policy-keys'), require: np.require.value, mode: np.mode.value, index: np.index.value,
    identities: np.identities.value.split('\n').map((l) => l.trim()).filter(Boolean),
  }));

  page('Image signing', '$h1',
    h('p', { class: 'muted' }, 'Repositories a policy covers serve only images signed by its keys (cosign) or by certificates its CAs issued (notation), verified here with no network. Keys and policies from the configuration file are changed there; those a bundle brought are replaced by the next bundle signed by a trust-updates key.'),
    msg,
    h('h2', {}, 'Trusted keys'),
    keys.length ? table(['Name', 'Kind', 'Signs', 'Fingerprint', 'Added', { label: 'Actions' }], keyRows, { label: 'Trusted keys' }) : h('p', { class: 'muted' }, 'No trusted keys.'),
    keyForm,
    h('h2', {}, 'Trust policies'),
    policies.length ? table([{ label: 'Id', cls: 'num' }, 'Repositories', 'Signatures needed', 'Mode', 'Indexes', 'Notation signers', { label: 'Actions' }], policyRows, { label: 'Trust policy list' }) : h('p', { class: 'muted' }, 'No trust policies: every repository serves unsigned images.'),
    policyForm);
}

// ---------------------------------------------------------------------------
// Routing

function parseHash() {
  const raw = decodeURIComponent(location.hash.replace(/^#/, '')) || '/';
  let m;
  if ((m = raw.match(/^\/r\/(.+)$/))) return { section: 'repos', view: () => repoPage(m[1]) };
  if ((m = raw.match(/^\/t\/(.+):([^:/]+)$/))) return { section: 'repos', view: () => tagPage(m[1], m[2]) };
  const simple = {
    '/': ['repos', reposPage],
    '/storage': ['storage', storagePage],
    '/certificate': ['cert', certPage],
    '/users': ['users', usersPage],
    '/access': ['access', accessPage],
    '/policies': ['policies', policiesPage],
    '/signing': ['signing', signingPage],
  }[raw];
  if (simple) return { section: simple[0], view: simple[1] };
  return { section: '', view: () => page('Not found', '$h1', h('p', {}, h('a', { href: '#/' }, 'Back to the repositories'))) };
}

async function route() {
  if (!state.me) {
    try {
      state.me = await api('GET', '/api/v1/session');
    } catch (e) {
      if (e.status === 401) { signInPage(); return; }
      byId('main').replaceChildren(alertBox(e));
      return;
    }
  }
  const { section, view } = parseHash();
  renderBar(section);
  try {
    await view();
  } catch (e) {
    if (e.status === 401) return;
    page('Something went wrong', '$h1', alertBox(e), h('p', {}, h('a', { href: '#/' }, 'Back to the repositories')));
  }
}

document.addEventListener('DOMContentLoaded', () => {
  byId('signout').addEventListener('click', signOut);
  byId('skip').addEventListener('click', (ev) => { ev.preventDefault(); byId('main').focus(); });
  window.addEventListener('hashchange', () => { page.moveFocus = true; route(); });
  page.moveFocus = false;
  route();
});
