// The web console in Debian's headless Chromium, driven by playwright-core (no browser is
// downloaded: executablePath is the system's chromium). Started by tests/console.rs, which
// runs edgeyard, pushes an image with the real docker daemon and passes what to expect in
// the environment. Prints one `RESULT {...}` line for the Rust side and exits 0, or prints
// the failure and exits non-zero.
//
// Environment: EDGEYARD_URL, ADMIN_USER, ADMIN_PASSWORD, VIEWER_USER, VIEWER_PASSWORD, REPO,
// TAG (immutable), DIGEST, SCREENSHOT_DIR, DOWNLOAD_PATH, CHROMIUM (default /usr/bin/chromium).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, request as pwRequest } from 'playwright-core';

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const URL_ = env('EDGEYARD_URL');
const HOST = new URL(URL_).host;
const ADMIN = [env('ADMIN_USER'), env('ADMIN_PASSWORD')];
const VIEWER = [env('VIEWER_USER'), env('VIEWER_PASSWORD')];
const REPO = env('REPO');
const TAG = env('TAG');
const DIGEST = env('DIGEST');
const SHOTS = env('SCREENSHOT_DIR');
const DOWNLOAD = env('DOWNLOAD_PATH');

const result = { screenshots: [], checks: [], a11y_pages: 0 };
const check = (what) => { result.checks.push(what); console.log(`ok: ${what}`); };
const basic = ([u, p]) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

let browser;
// Bounded in time whatever happens: the Rust side also kills us after a while.
const watchdog = setTimeout(async () => {
  console.error('the browser test took longer than 200 s');
  try { await browser?.close(); } finally { process.exit(3); }
}, 200_000);

async function shot(page, name) {
  const vp = page.viewportSize();
  const file = path.join(SHOTS, `${name}-${vp.width}x${vp.height}.png`);
  // Without the passing "Copied"/"Saved" notice.
  await page.evaluate(() => { document.getElementById('status').textContent = ''; });
  await page.screenshot({ path: file });
  result.screenshots.push(file);
}

async function heading(page, text) {
  await page.getByRole('heading', { level: 1, name: text, exact: true }).waitFor({ timeout: 10_000 });
}

// Labels, names, alt texts, and text contrast (WCAG AA: 4.5:1, 3:1 for large text) of
// everything visible on the page.
async function a11y(page, where) {
  const problems = await page.evaluate(() => {
    const out = [];
    const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
    for (const el of document.querySelectorAll('input, select, textarea')) {
      if (!visible(el) || el.type === 'hidden') continue;
      if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label')) out.push(`unlabelled ${el.outerHTML.slice(0, 80)}`);
    }
    for (const el of document.querySelectorAll('button, a[href]')) {
      if (!visible(el)) continue;
      if (!el.textContent.trim() && !el.getAttribute('aria-label')) out.push(`nameless ${el.outerHTML.slice(0, 80)}`);
    }
    for (const img of document.querySelectorAll('img')) if (!img.hasAttribute('alt')) out.push('img without alt');
    if (!document.documentElement.lang) out.push('no lang');
    const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
      const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
      // The first opaque background up the tree, blending translucent ones over it.
      const layers = [];
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        const a = c.length === 4 ? c[3] : 1;
        if (a > 0) layers.push([c.slice(0, 3), a]);
        if (a >= 1) break;
      }
      let base = [255, 255, 255];
      for (const [c, a] of layers.reverse()) base = base.map((b, i) => c[i] * a + b * (1 - a));
      return base;
    };
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const seen = new Set();
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      if (!n.textContent.trim() || seen.has(el) || !visible(el) || el.closest('[disabled], .visually-hidden, .offscreen, dialog:not([open])')) continue;
      seen.add(el);
      const st = getComputedStyle(el);
      const fg = rgb(st.color);
      const bg = background(el);
      const [l1, l2] = [lum(fg.slice(0, 3)), lum(bg)].sort((a, b) => b - a);
      const ratio = (l1 + 0.05) / (l2 + 0.05);
      const size = parseFloat(st.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(st.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) out.push(`contrast ${ratio.toFixed(2)} for "${n.textContent.trim().slice(0, 30)}"`);
    }
    return out;
  });
  assert.deepEqual(problems, [], `accessibility problems on ${where}`);
  result.a11y_pages += 1;
}

async function noSideScroll(page, where) {
  const w = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(w <= page.viewportSize().width, `${where} scrolls sideways (${w} px)`);
}

async function signIn(page, [user, password]) {
  await page.goto(`${URL_}/`);
  await page.locator('#username').waitFor();
  // Keyboard only: the user name field has the focus, Tab moves to the password, Enter sends.
  assert.equal(await page.evaluate(() => document.activeElement.id), 'username');
  await page.keyboard.type(user);
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'password');
  await page.keyboard.type(password);
  await page.keyboard.press('Enter');
  await heading(page, 'Repositories');
}

async function apiFromPage(page, method, url, body, token) {
  return page.evaluate(async ([method, url, body, token]) => {
    const headers = { 'Content-Type': 'application/json' };
    if (token) headers['X-CSRF-Token'] = token;
    const r = await fetch(url, { method, headers, body: body === null ? undefined : JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  }, [method, url, body, token ?? null]);
}

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: env('CHROMIUM', '/usr/bin/chromium'),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: URL_ });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (/Content Security Policy|Refused to/.test(m.text())) pageErrors.push(m.text()); });
  page.on('dialog', (d) => { pageErrors.push(`unexpected native dialog: ${d.message()}`); d.dismiss(); });
  const api = await pwRequest.newContext({ ignoreHTTPSErrors: true, baseURL: URL_ });

  // --- Sign-in page and the session cookie.
  await page.goto(`${URL_}/`);
  await page.locator('#username').waitFor();
  await a11y(page, 'the sign-in page');
  await shot(page, 'signin');
  await signIn(page, ADMIN);
  const cookie = (await context.cookies()).find((c) => c.name === 'edgeyard_session');
  assert.ok(cookie, 'a session cookie is set');
  assert.deepEqual([cookie.httpOnly, cookie.secure, cookie.sameSite, cookie.path], [true, true, 'Strict', '/']);
  assert.ok(!(await page.evaluate(() => document.cookie)).includes('edgeyard_session'), 'scripts cannot read the cookie');
  check('signed in with the keyboard; the cookie is HttpOnly, Secure, SameSite=Strict');

  // --- Repositories: the pushed image is listed.
  const row = page.locator(`tr[data-repo="${REPO}"]`);
  await row.waitFor();
  await a11y(page, 'the repository list');
  await page.fill('#repo-search', REPO.split('/').pop());
  await row.waitFor();
  await page.fill('#repo-search', 'no-such-repository-here');
  await row.waitFor({ state: 'detached' });
  await page.fill('#repo-search', '');
  await shot(page, 'repositories');
  await row.getByRole('link', { name: REPO }).click();
  await heading(page, REPO);
  const tagRow = page.locator(`tr[data-tag="${TAG}"]`);
  assert.equal(await tagRow.locator('code.digest').getAttribute('title'), DIGEST);
  check('the pushed tag is listed with the digest docker recorded');
  assert.ok(await tagRow.getByText('Immutable').isVisible(), 'immutable badge');
  // An audit trust policy covers the repository and nobody signed the image.
  assert.ok(await tagRow.getByText('Not signed').isVisible(), 'unsigned badge');
  check('the tag is marked unsigned under the trust policy');

  // --- Edit the description, with the keyboard.
  const description = `Vision model for line 3, edited at ${new Date().toISOString()}`;
  let found = false;
  for (let i = 0; i < 40 && !found; i++) {
    await page.keyboard.press('Tab');
    found = await page.evaluate(() => document.activeElement.id === 'edit-description');
  }
  assert.ok(found, 'Edit description is reachable with Tab');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none', 'the focused button shows a focus outline');
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'description-input');
  await page.keyboard.type(description);
  await page.getByRole('button', { name: 'Save description' }).click();
  await page.locator('#description', { hasText: description }).waitFor();
  const info = await (await api.get(`/api/v1/repositories/${REPO}`, { headers: { Authorization: basic(ADMIN) } })).json();
  assert.equal(info.description, description);
  check('the description was edited (keyboard only) and the API returns it');
  await a11y(page, 'the repository page');
  await shot(page, 'repository');

  // --- Deleting the immutable tag is refused, with the rule shown.
  await page.locator(`button[data-delete="${TAG}"]`).click();
  await page.locator('dialog#confirm[open]').waitFor();
  await a11y(page, 'the confirmation dialog');
  await page.locator('#confirm-ok').click();
  const refusal = page.locator('#delete-refused');
  await refusal.waitFor();
  const refusalText = await refusal.innerText();
  assert.match(refusalText, /immutable/);
  assert.match(refusalText, /immutability rule \d+/);
  assert.ok(await tagRow.isVisible(), 'the tag is still listed');
  const tags = await (await api.get(`/api/v1/repositories/${REPO}/tags`, { headers: { Authorization: basic(ADMIN) } })).json();
  assert.ok(tags.some((t) => t.tag === TAG), 'the tag still exists');
  result.refusal = refusalText;
  check('deleting the immutable tag was refused and the rule is shown');
  await shot(page, 'delete-refused');

  // --- Tag detail: digest, layers, pull commands with working copy buttons.
  await tagRow.getByRole('link', { name: TAG }).click();
  await heading(page, `${REPO}:${TAG}`);
  assert.equal(await page.locator('#tag-digest').innerText(), DIGEST);
  assert.ok(await page.getByRole('heading', { name: 'Signatures' }).isVisible(), 'a Signatures section');
  assert.match(await page.locator('#tag-signers').innerText(), /No signature by an installed key/);
  const policyRow = page.getByRole('region', { name: 'Trust policies' }).locator('tbody tr');
  assert.match(await policyRow.innerText(), /audit[\s\S]*no: it has no signature/);
  check('the tag page shows its signatures and the trust policy it does not meet');
  const commands = await page.locator('.cmd pre').allInnerTexts();
  assert.deepEqual(commands, [`docker pull ${HOST}/${REPO}:${TAG}`, `docker pull ${HOST}/${REPO}@${DIGEST}`]);
  await page.getByRole('button', { name: 'Copy: Pull by digest' }).click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), commands[1]);
  const layerRows = await page.locator('table[data-layers] tbody tr').count();
  assert.ok(layerRows >= 1, 'layers are listed');
  await a11y(page, 'the tag page');
  await shot(page, 'tag');
  check('the tag page shows the digest, layers and pull commands; copy works');

  // --- Registry certificate: the download equals /ca.crt.
  await page.getByRole('link', { name: 'Certificate' }).click();
  await heading(page, 'Registry certificate');
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#download-ca').click()]);
  await download.saveAs(DOWNLOAD);
  const served = await (await api.get('/ca.crt')).body();
  assert.ok(fs.readFileSync(DOWNLOAD).equals(served), 'the downloaded CA equals /ca.crt');
  result.fingerprint = await page.locator('code.fingerprint').first().innerText();
  const trust = await page.locator('.cmd pre').first().innerText();
  assert.ok(trust.includes(`--registry ${HOST}`) && trust.includes(result.fingerprint), trust);
  await a11y(page, 'the certificate page');
  await shot(page, 'certificate');
  check('the CA download equals /ca.crt');

  // --- Storage and a garbage-collection preview.
  await page.getByRole('link', { name: 'Storage' }).click();
  await heading(page, 'Storage');
  await page.locator('#gc-preview').click();
  await page.locator('#gc-report').waitFor();
  await a11y(page, 'the storage page');
  await shot(page, 'storage');

  // --- Admin pages render and pass the checks.
  for (const [link, title, name] of [['Users', 'Users and robot accounts', 'users'], ['Access', 'Access rules', 'access'], ['Policies', 'Policies', 'policies']]) {
    await page.getByRole('link', { name: link, exact: true }).click();
    await heading(page, title);
    await a11y(page, `the ${name} page`);
    await shot(page, name);
  }

  // --- Image signing: keys with their fingerprints; a key and a policy added through the
  // forms; a key a policy names cannot go; the policy, then the key, deleted.
  await page.getByRole('link', { name: 'Signing', exact: true }).click();
  await heading(page, 'Image signing');
  result.release_fingerprint = await page.locator('tr[data-key="release"] code.fingerprint').innerText();
  await page.getByLabel('Name', { exact: true }).fill('second');
  await page.getByLabel('PEM public key or CA certificate').fill(process.env.SECOND_PEM);
  await page.getByRole('button', { name: 'Add key' }).click();
  const secondRow = page.locator('tr[data-key="second"]');
  await secondRow.waitFor();
  result.second_fingerprint = await secondRow.locator('code.fingerprint').innerText();
  await page.getByLabel('Repositories (glob)').fill('lab/**');
  await page.getByRole('checkbox', { name: 'second' }).check();
  await page.getByLabel('Mode').selectOption('audit');
  await page.getByRole('button', { name: 'Add policy' }).click();
  const labRow = page.locator('tr[data-policy]', { hasText: 'lab/**' });
  await labRow.waitFor();
  assert.match(await labRow.innerText(), /one by second[\s\S]*audit only/);
  await a11y(page, 'the signing page');
  await shot(page, 'signing');
  await secondRow.getByRole('button', { name: 'Delete key second' }).click();
  await page.locator('#confirm-ok').click();
  await page.locator('.alert', { hasText: 'is named by trust policy' }).waitFor();
  await labRow.getByRole('button').click();
  await page.locator('#confirm-ok').click();
  await labRow.waitFor({ state: 'detached' });
  await secondRow.getByRole('button', { name: 'Delete key second' }).click();
  await page.locator('#confirm-ok').click();
  await secondRow.waitFor({ state: 'detached' });
  check('the signing page shows fingerprints, adds and deletes keys and policies, and says why a key stays');

  // --- CSRF: the cookie alone changes nothing.
  for (const token of [undefined, 'wrong-token']) {
    const r = await apiFromPage(page, 'PUT', `/api/v1/repositories/${REPO}/description`, { description: 'forged' }, token);
    assert.equal(r.status, 403, `a request with ${token ? 'a wrong' : 'no'} CSRF token`);
    assert.equal(r.body.errors[0].code, 'DENIED');
    assert.match(r.body.errors[0].message, /CSRF/);
  }
  const after = await (await api.get(`/api/v1/repositories/${REPO}`, { headers: { Authorization: basic(ADMIN) } })).json();
  assert.equal(after.description, description, 'the forged requests changed nothing');
  check('requests without the right CSRF token are refused');

  // --- 800x480: the same pages on a 7-inch panel.
  await page.setViewportSize({ width: 800, height: 480 });
  for (const [hash, title, name] of [
    ['#/', 'Repositories', 'repositories'],
    [`#/r/${REPO}`, REPO, 'repository'],
    [`#/t/${REPO}:${TAG}`, `${REPO}:${TAG}`, 'tag'],
    ['#/certificate', 'Registry certificate', 'certificate'],
    ['#/storage', 'Storage', 'storage'],
    ['#/signing', 'Image signing', 'signing'],
  ]) {
    await page.goto(`${URL_}/${hash}`);
    await heading(page, title);
    await noSideScroll(page, `${name} at 800x480`);
    const bar = await page.locator('#bar').boundingBox();
    assert.ok(bar.height <= 60, `the header fits one row at 800 px (${bar.height} px)`);
    await a11y(page, `${name} at 800x480`);
    await shot(page, name);
  }
  check('every page fits 800x480 without sideways scrolling');

  // --- Sign out revokes the session.
  await page.locator('#signout').click();
  await page.locator('#username').waitFor();
  await shot(page, 'signin');
  const old = await api.get('/api/v1/session', { headers: { Cookie: `edgeyard_session=${cookie.value}` } });
  assert.equal(old.status(), 401, 'the old session cookie no longer works');
  check('signing out revokes the session');

  // --- A pull-only user: no admin actions shown, and the API refuses them anyway.
  await page.setViewportSize({ width: 1280, height: 800 });
  await signIn(page, VIEWER);
  const nav = await page.locator('nav a').allInnerTexts();
  assert.deepEqual(nav, ['Repositories', 'Storage', 'Certificate']);
  await page.locator(`tr[data-repo="${REPO}"]`).getByRole('link').click();
  await heading(page, REPO);
  assert.equal(await page.locator('#edit-description, #toggle-visibility, button[data-delete]').count(), 0);
  await shot(page, 'viewer-repository');
  await page.locator(`tr[data-tag="${TAG}"]`).getByRole('link', { name: TAG }).click();
  await heading(page, `${REPO}:${TAG}`);
  assert.equal(await page.locator('#delete-tag').count(), 0);
  await page.getByRole('link', { name: 'Storage' }).click();
  await heading(page, 'Storage');
  assert.equal(await page.locator('#gc-preview, #gc-run').count(), 0);
  const me = (await apiFromPage(page, 'GET', '/api/v1/session', null)).body;
  assert.deepEqual([me.user, me.admin], [VIEWER[0], false]);
  for (const [method, url, body] of [
    ['GET', '/api/v1/users', null],
    ['PUT', `/api/v1/repositories/${REPO}/description`, { description: 'by a viewer' }],
    ['DELETE', `/api/v1/repositories/${REPO}/tags/${TAG}`, null],
    ['POST', '/api/v1/gc', { dry_run: true }],
    ['POST', '/api/v1/users', { name: 'mallory', password: 'mallory-password' }],
  ]) {
    const r = await apiFromPage(page, method, url, body, me.csrf_token);
    assert.equal(r.status, 403, `${method} ${url} as a pull-only user`);
    assert.equal(r.body.errors[0].code, 'DENIED');
  }
  await page.goto(`${URL_}/#/users`);
  await page.getByRole('heading', { level: 1, name: 'Something went wrong' }).waitFor();
  check('a pull-only user sees no admin actions and the API refuses them');

  assert.deepEqual(pageErrors, [], 'no script errors or CSP violations');
  await api.dispose();
  await browser.close();
  clearTimeout(watchdog);
  console.log(`RESULT ${JSON.stringify(result)}`);
}

main().catch(async (e) => {
  console.error(e && e.stack ? e.stack : e);
  try { await browser?.close(); } catch (_) { /* already gone */ }
  process.exit(1);
});
