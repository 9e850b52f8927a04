// Self-test of the test OpenID provider (server.mjs): starts it with a temporary config and
// drives it over plain HTTP (a manual cookie jar, redirects followed by hand) through the code
// flow with PKCE, every tamper mode, the key rotation, the account switch, logout, the request
// counts and the outage modes.
//
//   node tests/oidc-provider/selftest.mjs

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import * as jose from 'jose';

const CLIENT = {
  client_id: 'renrakucho',
  client_secret: 'not-a-real-secret',
  redirect_uris: ['http://127.0.0.1:9/callback'],
  post_logout_redirect_uris: ['http://127.0.0.1:9/signed-out'],
};
const ACCOUNTS = [
  { sub: 'alice', email: 'alice@example.test', email_verified: true, preferred_username: 'alice', name: 'Alice Example' },
  { sub: 'bob', email: null, email_verified: false, preferred_username: 'bob', name: null },
];

// --- the provider process ------------------------------------------------------------------------

const dir = mkdtempSync(join(tmpdir(), 'oidc-selftest-'));
const configPath = join(dir, 'config.json');
writeFileSync(configPath, JSON.stringify({ clients: [CLIENT], accounts: ACCOUNTS }));
const child = spawn(process.execPath, [new URL('./server.mjs', import.meta.url).pathname, configPath], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
process.on('exit', () => { child.kill(); rmSync(dir, { recursive: true, force: true }); });

const issuer = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('no listening line within 30 s')), 30_000);
  child.on('exit', (code) => reject(new Error(`server.mjs exited (${code})`)));
  createInterface({ input: child.stdout }).on('line', (line) => {
    const match = /^oidc-provider listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(line);
    if (match) { clearTimeout(timer); resolve(match[1]); }
  });
});

const control = async (path, body) => {
  const res = await fetch(`${issuer}/__test/${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(res.ok, `/__test/${path}: ${res.status}`);
  return res.status === 204 ? undefined : res.json();
};

// --- a browser, by hand --------------------------------------------------------------------------

/** Cookies by name (paths ignored: the provider's cookie names are distinct). */
class CookieJar {
  cookies = new Map();

  store(res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';').map((part) => part.trim());
      const [name, value] = [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)];
      const expired = attributes.some((a) => /^expires=/i.test(a) && new Date(a.slice(8)) < new Date())
        || attributes.some((a) => /^max-age=(0|-)/i.test(a));
      if (expired || value === '') this.cookies.delete(name); else this.cookies.set(name, value);
    }
  }

  header() {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }
}

/** oidc-provider's self-submitting form (its form_post page, e.g. the logout of the previous
 * account on an account switch): what a browser's JavaScript would post, or undefined. */
function selfSubmittingForm(html) {
  if (!/document\.forms\[0\]\.submit\(\)/.test(html)) return undefined;
  const action = /<form method="post" action="([^"]+)"/.exec(html)[1];
  const inputs = [...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"\/>/g)];
  return {
    url: action,
    init: {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(inputs.map(([, name, value]) => [name, value])),
    },
  };
}

/** Follows redirects (and self-submitting forms) within the provider, as a browser would;
 * returns the first other response, or the first redirect that leaves the provider (to the
 * client). */
async function browse(jar, url, init = {}) {
  for (let hops = 0; hops < 20; hops += 1) {
    const res = await fetch(url, { ...init, redirect: 'manual', headers: { ...init.headers, cookie: jar.header() } });
    jar.store(res);
    const location = res.headers.get('location');
    if ([302, 303].includes(res.status) && location) {
      url = new URL(location, url).href;
      if (!url.startsWith(`${issuer}/`)) return { res, location: url };
      init = {};
    } else if (res.status === 200 && /html/.test(res.headers.get('content-type'))) {
      const html = await res.text();
      const form = selfSubmittingForm(html);
      if (!form) return { res, html };
      ({ url, init } = form);
    } else {
      return { res };
    }
  }
  throw new Error('redirect loop');
}

const b64url = (buffer) => buffer.toString('base64url');

/** The authorization code flow with PKCE, up to the callback. */
async function authorize(jar, extra = {}) {
  const verifier = b64url(randomBytes(32));
  const state = b64url(randomBytes(16));
  const nonce = b64url(randomBytes(16));
  const url = new URL(`${issuer}/auth`);
  for (const [key, value] of Object.entries({
    client_id: CLIENT.client_id,
    redirect_uri: CLIENT.redirect_uris[0],
    response_type: 'code',
    scope: 'openid email profile',
    state,
    nonce,
    code_challenge: b64url(createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
    ...extra,
  })) if (value !== undefined) url.searchParams.set(key, value);

  const { location } = await browse(jar, url.href);
  assert.ok(location?.startsWith(CLIENT.redirect_uris[0]), `back at the client, not ${location}`);
  return { callback: new URL(location).searchParams, verifier, state, nonce };
}

/** Exchanges the code; client_secret_basic or client_secret_post. */
async function token(callback, verifier, method = 'client_secret_basic') {
  const body = new URLSearchParams({
    grant_type: 'authorization_code',
    code: callback.get('code'),
    redirect_uri: CLIENT.redirect_uris[0],
    code_verifier: verifier,
  });
  const headers = { 'content-type': 'application/x-www-form-urlencoded' };
  if (method === 'client_secret_basic') {
    const credentials = `${encodeURIComponent(CLIENT.client_id)}:${encodeURIComponent(CLIENT.client_secret)}`;
    headers.authorization = `Basic ${Buffer.from(credentials).toString('base64')}`;
  } else {
    body.set('client_id', CLIENT.client_id);
    body.set('client_secret', CLIENT.client_secret);
  }
  return fetch(`${issuer}/token`, { method: 'POST', headers, body });
}

/** A whole login in a fresh browser: the token response's JSON and the flow's nonce. */
async function login(jar = new CookieJar(), method = undefined) {
  const { callback, verifier, state, nonce } = await authorize(jar);
  assert.equal(callback.get('state'), state);
  assert.equal(callback.get('iss'), issuer);
  const res = await token(callback, verifier, method);
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), text, nonce };
}

const jwks = jose.createRemoteJWKSet(new URL(`${issuer}/jwks`), { cooldownDuration: 0 });
const verify = (idToken, nonce) => jose.jwtVerify(idToken, jwks, {
  issuer, audience: CLIENT.client_id, algorithms: ['RS256'],
}).then(({ payload, protectedHeader }) => {
  assert.equal(payload.nonce, nonce);
  return { payload, protectedHeader };
});

let passed = 0;
async function check(name, fn) {
  await fn();
  passed += 1;
  console.log(`ok - ${name}`);
}

// --- the checks ----------------------------------------------------------------------------------

const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
let k1Kid;

await check('discovery: http loopback issuer, code flow, S256 only, both secret auth methods, logout', () => {
  assert.equal(discovery.issuer, issuer);
  assert.deepEqual(discovery.response_types_supported, ['code']);
  assert.deepEqual(discovery.code_challenge_methods_supported, ['S256']);
  assert.deepEqual(discovery.id_token_signing_alg_values_supported, ['RS256']);
  for (const method of ['client_secret_basic', 'client_secret_post']) {
    assert.ok(discovery.token_endpoint_auth_methods_supported.includes(method));
  }
  assert.equal(discovery.end_session_endpoint, `${issuer}/session/end`);
});

await check('code flow with PKCE (client_secret_basic): the ID token verifies and carries the claims', async () => {
  const { status, text, nonce } = await login();
  assert.equal(status, 200);
  const { payload, protectedHeader } = await verify(JSON.parse(text).id_token, nonce);
  assert.equal(protectedHeader.alg, 'RS256');
  assert.ok(protectedHeader.kid);
  k1Kid = protectedHeader.kid;
  assert.equal(payload.sub, 'alice');
  assert.equal(payload.email, 'alice@example.test');
  assert.equal(payload.email_verified, true);
  assert.equal(payload.preferred_username, 'alice');
  assert.equal(payload.name, 'Alice Example');
});

await check('code flow with client_secret_post', async () => {
  const { status, text, nonce } = await login(new CookieJar(), 'client_secret_post');
  assert.equal(status, 200);
  await verify(JSON.parse(text).id_token, nonce);
});

await check('PKCE is required, and S256 only', async () => {
  for (const extra of [{ code_challenge: undefined, code_challenge_method: undefined }, { code_challenge_method: 'plain' }]) {
    const { callback } = await authorize(new CookieJar(), extra);
    assert.equal(callback.get('error'), 'invalid_request');
  }
});

await check('a wrong code_verifier is refused', async () => {
  const { callback } = await authorize(new CookieJar());
  const res = await token(callback, b64url(randomBytes(32)));
  assert.equal(res.status, 400);
  assert.equal((await res.json()).error, 'invalid_grant');
});

// Each tamper mode: what changed, and that the signature is (or is not) still valid.
const signatureValid = (idToken) => jose.compactVerify(idToken, jwks).then(() => true, () => false);
const now = () => Math.floor(Date.now() / 1000);
const TAMPER = {
  wrong_issuer: async (idToken, { payload }) => {
    assert.notEqual(payload.iss, issuer);
    assert.ok(await signatureValid(idToken));
  },
  wrong_audience: async (idToken, { payload }) => {
    assert.notEqual(payload.aud, CLIENT.client_id);
    assert.ok(await signatureValid(idToken));
  },
  expired: async (idToken, { payload }) => {
    assert.ok(payload.exp <= now() - 3500 && payload.iat < payload.exp);
    assert.ok(await signatureValid(idToken));
  },
  nonce_mismatch: async (idToken, { payload }, nonce) => {
    assert.notEqual(payload.nonce, nonce);
    assert.ok(await signatureValid(idToken));
  },
  bad_signature: async (idToken, { header }) => {
    assert.equal(header.alg, 'RS256');
    assert.equal(header.kid, k1Kid);
    assert.ok(!(await signatureValid(idToken)));
  },
  alg_none: async (idToken, { header }) => {
    assert.equal(header.alg, 'none');
    assert.ok(idToken.endsWith('.'));
  },
  hs256_public_key: async (idToken, { header }) => {
    assert.equal(header.alg, 'HS256');
    assert.equal(header.kid, k1Kid);
    const { keys } = await (await fetch(`${issuer}/jwks`)).json();
    const pem = await jose.exportSPKI(await jose.importJWK(keys.find((k) => k.kid === k1Kid), 'RS256'));
    const [h, p, s] = idToken.split('.');
    assert.equal(createHmac('sha256', pem).update(`${h}.${p}`).digest('base64url'), s);
  },
  unknown_kid: async (idToken, { header }) => {
    assert.equal(header.alg, 'RS256');
    const { keys } = await (await fetch(`${issuer}/jwks`)).json();
    assert.ok(!keys.some((k) => k.kid === header.kid));
  },
};

for (const [mode, expect] of Object.entries(TAMPER)) {
  await check(`tamper ${mode}`, async () => {
    await control('tamper', { mode });
    const { status, text, nonce } = await login();
    assert.equal(status, 200);
    const idToken = JSON.parse(text).id_token;
    const payload = jose.decodeJwt(idToken);
    assert.equal(payload.sub, 'alice'); // the rest of the claims is intact
    await expect(idToken, { payload, header: jose.decodeProtectedHeader(idToken) }, nonce);
    // Once only: the next login is clean again.
    const clean = await login();
    await verify(JSON.parse(clean.text).id_token, clean.nonce);
  });
}

await check('tamper garbage: a 200 that is not JSON, once', async () => {
  await control('tamper', { mode: 'garbage' });
  const { status, text } = await login();
  assert.equal(status, 200);
  assert.throws(() => JSON.parse(text));
  const clean = await login();
  await verify(JSON.parse(clean.text).id_token, clean.nonce);
});

await check('an unknown tamper mode is refused', async () => {
  const res = await fetch(`${issuer}/__test/tamper`, { method: 'POST', body: '{"mode":"nope"}' });
  assert.equal(res.status, 400);
});

await check('next-login switches the account, even in a browser signed in as someone else', async () => {
  const jar = new CookieJar();
  const first = await login(jar);
  assert.equal(jose.decodeJwt(JSON.parse(first.text).id_token).sub, 'alice');
  await control('next-login', { sub: 'bob' });
  const second = await login(jar);
  const { payload } = await verify(JSON.parse(second.text).id_token, second.nonce);
  assert.equal(payload.sub, 'bob');
  assert.equal(payload.email, undefined); // bob has none
  assert.equal(payload.preferred_username, 'bob');
  await control('next-login', { sub: 'alice' });
});

await check('RP-initiated logout by client_id + post_logout_redirect_uri, auto-submitting form', async () => {
  const jar = new CookieJar();
  await login(jar);
  const url = new URL(`${issuer}/session/end`);
  url.searchParams.set('client_id', CLIENT.client_id);
  url.searchParams.set('post_logout_redirect_uri', CLIENT.post_logout_redirect_uris[0]);
  url.searchParams.set('state', 'bye');
  const { res, html } = await browse(jar, url.href);
  assert.equal(res.status, 200);
  assert.match(html, /form\.submit\(\)/);
  assert.match(html, /<button/);
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)[1];
  const action = /action="([^"]+)"/.exec(html)[1];
  const { location } = await browse(jar, new URL(action, issuer).href, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ xsrf, logout: 'yes' }),
  });
  assert.equal(location, `${CLIENT.post_logout_redirect_uris[0]}?state=bye`);
  // Signed out at the provider: a silent authorization now needs a login.
  const { callback } = await authorize(jar, { prompt: 'none' });
  assert.equal(callback.get('error'), 'login_required');
});

await check('rotate-keys: K2 joins the JWKS, ID tokens are signed with it, id_token_hint still works', async () => {
  const before = (await (await fetch(`${issuer}/jwks`)).json()).keys;
  assert.equal(before.length, 1);
  const { kid } = await control('rotate-keys', {});
  const after = (await (await fetch(`${issuer}/jwks`)).json()).keys;
  assert.deepEqual(after.map((k) => k.kid).sort(), [k1Kid, kid].sort());
  assert.ok(after.every((k) => k.d === undefined && k.key_ops === undefined));
  const jar = new CookieJar();
  const { text, nonce } = await login(jar);
  const idToken = JSON.parse(text).id_token;
  const { protectedHeader } = await verify(idToken, nonce);
  assert.equal(protectedHeader.kid, kid);
  // The provider itself accepts its K2-signed token back as a logout hint.
  const url = new URL(`${issuer}/session/end`);
  url.searchParams.set('id_token_hint', idToken);
  url.searchParams.set('post_logout_redirect_uri', CLIENT.post_logout_redirect_uris[0]);
  const { res, html } = await browse(jar, url.href);
  assert.equal(res.status, 200);
  assert.match(html, /name="xsrf"/);
  // A tamper mode after the rotation signs with K2 as well.
  await control('tamper', { mode: 'wrong_issuer' });
  const tampered = JSON.parse((await login()).text).id_token;
  assert.equal(jose.decodeProtectedHeader(tampered).kid, kid);
  assert.ok(await signatureValid(tampered));
});

await check('stats count discovery, jwks, token and authorization requests', async () => {
  const before = await control('stats');
  await fetch(`${issuer}/.well-known/openid-configuration`);
  await fetch(`${issuer}/jwks`);
  await login();
  const after = await control('stats');
  assert.equal(after.discovery, before.discovery + 1);
  assert.equal(after.jwks, before.jwks + 1);
  assert.equal(after.token, before.token + 1);
  assert.equal(after.authorization, before.authorization + 1);
});

await check('down / garbage / up', async () => {
  await control('down', { mode: 'down' });
  let res = await fetch(`${issuer}/.well-known/openid-configuration`);
  assert.equal(res.status, 503);
  assert.match(res.headers.get('content-type'), /^text\/plain/);
  res = await fetch(`${issuer}/token`, { method: 'POST' });
  assert.equal(res.status, 503);
  assert.ok((await control('stats')).discovery > 0); // /__test stays up

  await control('down', { mode: 'garbage' });
  res = await fetch(`${issuer}/jwks`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/html/);
  assert.equal(await res.text(), '<html>not json</html>');

  await control('down', { mode: 'up' });
  res = await fetch(`${issuer}/.well-known/openid-configuration`);
  assert.equal((await res.json()).issuer, issuer);
  const { text, nonce } = await login();
  await verify(JSON.parse(text).id_token, nonce);
});

console.log(`all ${passed} checks passed (${issuer})`);
process.exit(0);
