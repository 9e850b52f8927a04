// A real OpenID Connect provider for the integration tests: panva's `oidc-provider`, configured
// for the authorization code flow with PKCE on an http loopback issuer, with no UI (logins and
// consents complete themselves) and a small `/__test/*` control API through which a test makes
// the provider misbehave (tampered ID tokens, key rotation, outages). Test-only.
//
//   node tests/oidc-provider/server.mjs <config.json>
//
// config.json: { "clients": [{ client_id, client_secret, redirect_uris, post_logout_redirect_uris }],
//                "accounts": [{ sub, email, email_verified, preferred_username, name }] }
//
// stdout carries exactly one line, `oidc-provider listening on <issuer>`, which the launcher
// (services/testkit/src/oidc.rs) waits for; everything else goes to stderr.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import * as jose from 'jose';
import Provider, { interactionPolicy } from 'oidc-provider';

// oidc-provider prints its notices with console.info, i.e. on stdout: keep stdout for the one
// line the launcher reads.
console.info = (...args) => console.error(...args);

const configPath = process.argv[2];
if (!configPath) {
  console.error('usage: node server.mjs <config.json>');
  process.exit(2);
}
const config = JSON.parse(readFileSync(configPath, 'utf8'));
const accounts = new Map(config.accounts.map((account) => [account.sub, account]));
if (accounts.size === 0) {
  console.error('the config lists no accounts');
  process.exit(2);
}

// Routes are spelled out (they are oidc-provider's defaults) because the middleware below
// matches on them.
const ROUTES = {
  authorization: '/auth',
  token: '/token',
  jwks: '/jwks',
  userinfo: '/me',
  end_session: '/session/end',
};
const DISCOVERY = '/.well-known/openid-configuration';

/** A fresh RS256 signing key as a private JWK with a random kid. */
async function newRsaKey() {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid: jose.base64url.encode(randomBytes(12)), alg: 'RS256', use: 'sig' };
}

// K1 signs every ID token. K2 is what `/__test/rotate-keys` "rotates to": it is in the provider's
// keystore from the start, marked verify-only so that the provider never signs with it but still
// accepts it (an `id_token_hint` signed with K2 at logout), and hidden from the JWKS until the
// rotation.
const k1 = await newRsaKey();
const k2 = await newRsaKey();

// --- state driven by the /__test API -------------------------------------------------------------

const state = {
  // Whom the automatic login signs in (sticky until changed).
  loginSub: config.accounts[0].sub,
  // A tamper mode for the next token-endpoint response, or null.
  tamper: null,
  rotated: false,
  // 'up' | 'down' | 'garbage'
  mode: 'up',
  stats: { discovery: 0, jwks: 0, token: 0, authorization: 0 },
};
const TAMPER_MODES = new Set([
  'wrong_issuer', 'wrong_audience', 'expired', 'bad_signature', 'alg_none',
  'hs256_public_key', 'nonce_mismatch', 'garbage', 'unknown_kid',
]);

// --- the provider --------------------------------------------------------------------------------

const server = createServer();
await new Promise((resolve) => { server.listen(0, '127.0.0.1', resolve); });
const issuer = `http://127.0.0.1:${server.address().port}`;

// When the test chose another account than the one the browser is signed in as, ask for a login
// again: otherwise the OP's session would silently keep the previous account. (oidc-provider then
// signs the previous account out through a self-submitting form: a browser needs JavaScript.)
const policy = interactionPolicy.base();
policy.get('login').checks.add(new interactionPolicy.Check(
  'test_account_switch',
  'the test chose another account',
  (ctx) => ctx.oidc.session.accountId !== undefined && ctx.oidc.session.accountId !== state.loginSub,
));

const page = (title, body) => `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;

const provider = new Provider(issuer, {
  clients: config.clients.map((client) => ({
    client_id: client.client_id,
    client_secret: client.client_secret,
    redirect_uris: client.redirect_uris,
    post_logout_redirect_uris: client.post_logout_redirect_uris ?? [],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    // oidc-provider accepts client_secret_post for a client registered with client_secret_basic
    // (and the other way round): both work.
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  async findAccount(ctx, sub) {
    const account = accounts.get(sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      // The provider keeps only the claims of the granted scopes; absent values are left out.
      async claims() {
        return Object.fromEntries(
          ['sub', 'email', 'email_verified', 'preferred_username', 'name']
            .filter((claim) => account[claim] !== undefined && account[claim] !== null)
            .map((claim) => [claim, account[claim]]),
        );
      },
    };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name'],
  },
  // The scopes' claims go into the ID token itself, not only into userinfo.
  conformIdTokenClaims: false,
  responseTypes: ['code'],
  pkce: { methods: ['S256'], required: () => true },
  jwks: { keys: [k1, { ...k2, key_ops: ['verify'] }] },
  routes: ROUTES,
  cookies: {
    // Cookies do not tell ports apart: prefixed names keep clear of the relying party's cookies
    // on the same 127.0.0.1.
    names: { session: 'op_session', interaction: 'op_interaction', resume: 'op_interaction_resume' },
    // The default `SameSite=None` needs `Secure`, which browsers refuse on http: use Lax (the
    // relying party and the provider are the same site anyway, both on 127.0.0.1).
    long: { signed: true, httpOnly: true, sameSite: 'lax' },
    short: { signed: true, httpOnly: true, sameSite: 'lax' },
    keys: [randomBytes(32).toString('hex')],
  },
  interactions: {
    policy,
    url: (ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  features: {
    // The built-in login pages are replaced by the automatic interaction below.
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      // Confirms the logout by itself (a headless browser follows); the button is there for a
      // browser without JavaScript. `logout=yes` ends the whole session at the provider.
      async logoutSource(ctx, form) {
        ctx.body = page('Sign out', `${form}
<button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>
<script>
  const form = document.getElementById('op.logoutForm');
  const input = document.createElement('input');
  input.type = 'hidden'; input.name = 'logout'; input.value = 'yes';
  form.appendChild(input);
  form.submit();
</script>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = page('Signed out', '<h1>Signed out</h1>');
      },
    },
  },
  // No web fonts or other outside resources: the tests run offline.
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', `<h1>Error</h1><pre>${JSON.stringify(out, null, 2).replace(/</g, '&lt;')}</pre>`);
  },
});

provider.on('server_error', (ctx, err) => console.error('oidc-provider server_error:', err));

// --- middleware ----------------------------------------------------------------------------------

async function readJson(ctx) {
  const chunks = [];
  for await (const chunk of ctx.req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

// The /__test control API, request counting, and the outage modes (which spare /__test).
provider.use(async (ctx, next) => {
  if (ctx.path.startsWith('/__test/')) {
    const route = `${ctx.method} ${ctx.path}`;
    ctx.set('cache-control', 'no-store');
    if (route === 'GET /__test/stats') {
      ctx.body = state.stats;
    } else if (route === 'POST /__test/next-login') {
      const { sub } = await readJson(ctx);
      if (!accounts.has(sub)) ctx.throw(400, `unknown account ${sub}`);
      state.loginSub = sub;
      ctx.status = 204;
    } else if (route === 'POST /__test/tamper') {
      const { mode } = await readJson(ctx);
      if (!TAMPER_MODES.has(mode)) ctx.throw(400, `unknown tamper mode ${mode}`);
      state.tamper = mode;
      ctx.status = 204;
    } else if (route === 'POST /__test/rotate-keys') {
      state.rotated = true;
      ctx.body = { kid: k2.kid };
    } else if (route === 'POST /__test/down') {
      const { mode } = await readJson(ctx);
      if (!['up', 'down', 'garbage'].includes(mode)) ctx.throw(400, `unknown mode ${mode}`);
      state.mode = mode;
      ctx.status = 204;
    } else {
      ctx.throw(404, `no test route ${route}`);
    }
    return;
  }

  // Counted even while down, so that a test can see the relying party tried.
  const counted = {
    [DISCOVERY]: 'discovery',
    [ROUTES.jwks]: 'jwks',
    [ROUTES.token]: 'token',
    [ROUTES.authorization]: 'authorization',
  }[ctx.path];
  if (counted) state.stats[counted] += 1;

  if (state.mode === 'down') {
    ctx.status = 503;
    ctx.type = 'text/plain';
    ctx.body = 'service unavailable (test provider is down)';
    return;
  }
  if (state.mode === 'garbage') {
    ctx.status = 200;
    ctx.type = 'text/html';
    ctx.body = '<html>not json</html>';
    return;
  }
  await next();
});

// The automatic "UI": signs in the chosen account and grants whatever the client asked for.
provider.use(async (ctx, next) => {
  if (ctx.method !== 'GET' || !/^\/interaction\/[^/]+$/.test(ctx.path)) {
    await next();
    return;
  }
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { prompt, params, session } = details;
  let result;
  let merge = true;
  if (prompt.name === 'login') {
    result = { login: { accountId: state.loginSub } };
    merge = false;
  } else if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    result = { consent: { grantId: await grant.save() } };
  } else {
    result = { error: 'access_denied', error_description: `no automatic answer to ${prompt.name}` };
  }
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
    mergeWithLastSubmission: merge,
  });
  ctx.status = 303;
  ctx.redirect(returnTo);
});

/** The JWK's public part, as published. */
function publicJwk({ kty, n, e, kid, alg, use }) {
  return { kty, n, e, kid, alg, use };
}

// The JWKS: K2 is published only once rotated (and without its verify-only marker).
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path !== ROUTES.jwks || ctx.status !== 200) return;
  ctx.body = {
    keys: ctx.body.keys
      .filter((key) => key.kid !== k2.kid)
      .concat(state.rotated ? [publicJwk(k2)] : []),
  };
});

const signWith = (jwk, header, claims) => jose.importJWK(jwk, 'RS256')
  .then((key) => new jose.SignJWT(claims).setProtectedHeader({ ...header, alg: 'RS256', kid: jwk.kid }).sign(key));

// Flips one byte in the middle of a JWS's signature.
function flipSignatureByte(jws) {
  const [header, payload, signature] = jws.split('.');
  const bytes = jose.base64url.decode(signature);
  bytes[bytes.length >> 1] ^= 0x01;
  return `${header}.${payload}.${jose.base64url.encode(bytes)}`;
}

const encodeSegment = (value) => jose.base64url.encode(JSON.stringify(value));

// The token endpoint: re-signs the ID token with K2 once rotated, and applies a pending tamper
// mode (once: it resets when applied).
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path !== ROUTES.token) return;
  const mode = state.tamper;
  if (mode === 'garbage') {
    state.tamper = null;
    ctx.status = 200;
    // Promises JSON, delivers none.
    ctx.body = '<html>not json</html>';
    ctx.type = 'application/json';
    return;
  }
  const idToken = ctx.status === 200 && ctx.body?.id_token;
  if (!idToken || (!mode && !state.rotated)) return;
  state.tamper = null;

  const header = jose.decodeProtectedHeader(idToken);
  const claims = jose.decodeJwt(idToken);
  const signingKey = state.rotated ? k2 : k1;
  const now = Math.floor(Date.now() / 1000);
  let token;
  switch (mode) {
    case 'wrong_issuer':
      token = await signWith(signingKey, header, { ...claims, iss: 'http://127.0.0.1:1/not-the-issuer' });
      break;
    case 'wrong_audience':
      token = await signWith(signingKey, header, { ...claims, aud: 'not-this-client' });
      break;
    case 'expired':
      // Expired an hour ago (well past any clock-skew leeway), issued an hour before that.
      token = await signWith(signingKey, header, { ...claims, iat: now - 7200, exp: now - 3600 });
      break;
    case 'nonce_mismatch':
      token = await signWith(signingKey, header, { ...claims, nonce: `${claims.nonce ?? ''}-not-the-nonce` });
      break;
    case 'bad_signature':
      token = flipSignatureByte(await signWith(signingKey, header, claims));
      break;
    case 'alg_none':
      token = `${encodeSegment({ ...header, alg: 'none' })}.${encodeSegment(claims)}.`;
      break;
    case 'hs256_public_key': {
      // The algorithm-confusion attack: an HMAC keyed with the (public) RSA key's PEM.
      const pem = await jose.exportSPKI(await jose.importJWK(publicJwk(signingKey), 'RS256'));
      token = await new jose.SignJWT(claims)
        .setProtectedHeader({ ...header, alg: 'HS256', kid: signingKey.kid })
        .sign(new TextEncoder().encode(pem));
      break;
    }
    case 'unknown_kid':
      token = await signWith(await newRsaKey(), header, claims);
      break;
    default: // no tamper: only the rotation
      token = await signWith(signingKey, header, claims);
  }
  ctx.body = { ...ctx.body, id_token: token };
});

server.on('request', provider.callback());
process.stdout.write(`oidc-provider listening on ${issuer}\n`);

// The launcher kills the process; end cleanly on the usual signals too.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
