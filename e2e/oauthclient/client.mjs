// An MCP client that no one here wrote: the official TypeScript SDK's
// Client and StreamableHTTPClientTransport, authorized through the SDK's own
// OAuth flow (auth(): discovery from the 401, RFC 9728 and RFC 8414
// metadata, RFC 7591 registration, PKCE, the code exchange, refresh). What
// is ours is the OAuthClientProvider, whose redirectToAuthorization plays the
// browser's part in code: it loads the authorization URL, fills in and
// submits the login form, and takes the code from the redirect to our
// loopback redirect URI (no listener: the redirect is read, not followed).
//
// usage: node client.mjs --url MCP_URL --user NAME [--password PW] [--tokens-file F] [--steps JSON]
//        [--grant-types authorization_code,refresh_token] (registered; without refresh_token, no refresh token is issued)
//
// The password defaults to OAUTHCLIENT_PASSWORD, then to the user name (the
// development users are alice/alice and bob/bob). Steps are a JSON array
// (--steps), or JSON objects read one a line from stdin, each answered by
// one line on stdout before the next is read:
//
//	{"call": "tool_name", "arguments": {...}, "allowError": false}
//	                      (a step-up login the call needs is done, and the call made again)
//	{"listTools": true}
//	{"refresh": true}     refresh the tokens now (the SDK's auth() with the stored refresh token)
//	{"idle": MS}          do nothing for MS milliseconds, then report (idled) what the server's
//	                      GET streams did meanwhile: opened, ended, failed (with undici's error
//	                      code), comments received, and whether one is open
//
// --stream-body-timeout MS (or OAUTHCLIENT_STREAM_BODY_TIMEOUT) reads the GET
// streams with that body timeout instead of Node's 300 s: undici ends a
// response whose body stays silent that long (UND_ERR_BODY_TIMEOUT), which
// is how idle streams die under Node clients.
//
// --post-accept VALUE sends the POSTs to the MCP server with that Accept
// header instead of the SDK's (`application/json` alone, as clients seen in
// use do), and reports each answer's Content-Type (event http).
//
// --client-metadata-url URL makes URL the client's Client ID Metadata
// Document (the SDK's clientMetadataUrl): where the authorization server
// advertises client_id_metadata_document_supported, the client uses it as
// its client_id instead of registering.
//
// Everything printed on stdout is one JSON object a line with an "event":
// http (each request the SDK made: method, URL without query, status,
// WWW-Authenticate), oauth (each stage of the flow), initialized, tools,
// result (with the connections opened to the MCP server so far), refreshed,
// done; error, then exit status 1, on any failure. No
// token value is ever printed: only whether tokens exist and the access
// token's claims. The tokens themselves go to --tokens-file (mode 0600), for
// a test to check that they appear nowhere else.
//
// --client-file F keeps what a desktop client keeps between runs: its
// registration (client information) and its current tokens, read at start
// when the file exists (event "oauth" stage "loaded") and written (mode
// 0600) whenever they change.

import { randomBytes } from 'node:crypto';
import { subscribe } from 'node:diagnostics_channel';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { auth, UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const SCOPE = 'openid offline_access todo_api:read todo_api:write';
const REQUEST_TIMEOUT_MS = 15_000;

function emit(event, fields = {}) {
    process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

// where names a URL without its query and fragment: authorization URLs and
// redirects carry codes and state there.
function where(u) {
    const url = new URL(u);
    return url.origin + url.pathname;
}

// jwtClaims decodes a JWT's payload (not verified: for display only), or
// returns undefined for an opaque token.
function jwtClaims(token) {
    const parts = typeof token === 'string' ? token.split('.') : [];
    if (parts.length !== 3) {
        return undefined;
    }
    try {
        return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    } catch {
        return undefined;
    }
}

// connections counts the connections fetch opened to the MCP server's host
// and port (undici's diagnostics channel), reported with each result: a
// test sees whether the client kept its connection between two calls.
let connections = 0;
function countConnections(serverUrl) {
    const port = serverUrl.port || (serverUrl.protocol === 'https:' ? '443' : '80');
    subscribe('undici:client:connected', ({ connectParams }) => {
        if (connectParams?.hostname === serverUrl.hostname && String(connectParams?.port) === port) {
            connections++;
        }
    });
}

// streams counts what the server's GET streams did (see watchStream).
const streams = { opened: 0, ended: 0, comments: 0, failures: [] };

// streamDispatcher is undici's Agent (the class of Node's global dispatcher,
// which exists once fetch has run) with the body timeout of
// --stream-body-timeout, or undefined for Node's own.
let streamAgent;
function streamDispatcher(bodyTimeout) {
    const global = globalThis[Symbol.for('undici.globalDispatcher.1')];
    if (!bodyTimeout || !global) {
        return undefined;
    }
    streamAgent ??= new global.constructor({ bodyTimeout });
    return streamAgent;
}

// watchStream passes a GET stream's body through unchanged, counting its
// comment lines and noting how it ends.
function watchStream(res) {
    streams.opened++;
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let partial = '';
    const body = new ReadableStream({
        async pull(controller) {
            try {
                const { done, value } = await reader.read();
                if (done) {
                    streams.ended++;
                    controller.close();
                    return;
                }
                const lines = (partial + decoder.decode(value, { stream: true })).split('\n');
                partial = lines.pop();
                streams.comments += lines.filter(l => l.startsWith(':')).length;
                controller.enqueue(value);
            } catch (err) {
                streams.failures.push(String(err?.cause?.code ?? err?.name ?? err));
                controller.error(err);
            }
        },
        cancel(reason) {
            return reader.cancel(reason);
        }
    });
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
}

// loggingFetch returns the transport's fetch: every request the SDK makes,
// the OAuth ones included, is reported (never a header or a body: they hold
// tokens), and bounded in time except the GET of the server's SSE stream,
// which stays open (watched by watchStream, read with streamBodyTimeout).
//
// With postAccept, the POSTs to the MCP server carry that Accept header
// instead of the SDK's (as clients seen in use do: `application/json`
// alone), and each report names the answer's Content-Type.
function loggingFetch(serverUrl, streamBodyTimeout, postAccept) {
    return (input, init) => {
        const method = init?.method ?? (input instanceof Request ? input.method : 'GET');
        const url = input instanceof Request ? input.url : String(input);
        if (postAccept && method === 'POST' && where(url) === where(serverUrl)) {
            const headers = new Headers(init?.headers);
            headers.set('accept', postAccept);
            init = { ...init, headers };
        }
        const stream = method === 'GET' && where(url) === where(serverUrl);
        const signals = [init?.signal, stream ? undefined : AbortSignal.timeout(REQUEST_TIMEOUT_MS)].filter(Boolean);
        const dispatcher = stream ? streamDispatcher(streamBodyTimeout) : undefined;
        return fetch(input, { ...init, signal: AbortSignal.any(signals), ...(dispatcher ? { dispatcher } : {}) }).then(
            res => {
                const www = res.headers.get('www-authenticate');
                const contentType = postAccept ? res.headers.get('content-type') : null;
                emit('http', { method, url: where(url), status: res.status, ...(www ? { wwwAuthenticate: www } : {}), ...(contentType ? { contentType } : {}) });
                return stream && res.ok && res.body ? watchStream(res) : res;
            },
            err => {
                emit('http', { method, url: where(url), failed: String(err?.message ?? err) });
                throw err;
            }
        );
    };
}

// The browser's part, for the development authorization server's login
// form or any plain HTML form with username and password fields.

const entities = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", '#39': "'" };

function decodeEntities(s) {
    return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, e) => {
        if (e[0] === '#') {
            const code = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
            return String.fromCodePoint(code);
        }
        return entities[e.toLowerCase()] ?? m;
    });
}

function attributes(tag) {
    const attrs = {};
    const re = /([^\s"'<>\/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
    const inner = tag.replace(/^<\w+/, '').replace(/\/?>$/, '');
    for (const m of inner.matchAll(re)) {
        attrs[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
    }
    return attrs;
}

// loginForm finds the form with a password field, as a user would, and
// returns where it posts and the fields a browser would send: its hidden
// inputs and the first submit button (what pressing Enter submits).
function loginForm(html, pageURL) {
    for (const [, formTag, body] of html.matchAll(/(<form\b[^>]*>)([\s\S]*?)<\/form>/gi)) {
        const form = attributes(formTag);
        const fields = new URLSearchParams();
        let userField, passwordField, submitted = false;
        for (const [tag, kind] of body.matchAll(/<(input|button)\b[^>]*>/gi)) {
            const a = attributes(tag);
            const type = (a.type ?? (kind.toLowerCase() === 'button' ? 'submit' : 'text')).toLowerCase();
            if (type === 'password') {
                passwordField = a.name;
            } else if (type === 'hidden' && a.name) {
                fields.append(a.name, a.value ?? '');
            } else if ((type === 'text' || type === 'email') && a.name && !userField) {
                userField = a.name;
            } else if (type === 'submit' && !submitted) {
                submitted = true;
                if (a.name) {
                    fields.append(a.name, a.value ?? '');
                }
            }
        }
        if (passwordField && userField) {
            const method = (form.method ?? 'get').toLowerCase();
            return { action: new URL(form.action || pageURL, pageURL), method, fields, userField, passwordField };
        }
    }
    return undefined;
}

// pageError is the error a login page shows, for the report.
function pageError(html) {
    const m = html.match(/<p class="error"[^>]*>([\s\S]*?)<\/p>/i);
    return m ? decodeEntities(m[1].replace(/<[^>]+>/g, '')).trim() : undefined;
}

function isRedirectTo(target, redirectUrl) {
    const r = new URL(redirectUrl);
    return target.origin === r.origin && target.pathname === r.pathname;
}

// browse follows the authorization URL through the login form to the
// redirect back to redirectUrl and returns that redirect's query.
async function browse(authorizationUrl, redirectUrl, user, password) {
    let url = new URL(authorizationUrl);
    let init = { method: 'GET' };
    let loggedIn = false;
    for (let hop = 0; hop < 10; hop++) {
        const res = await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
        const location = res.headers.get('location');
        if (res.status >= 300 && res.status < 400 && location) {
            await res.body?.cancel();
            const next = new URL(location, url);
            emit('oauth', { stage: 'browser', method: init.method, url: where(url), status: res.status, to: where(next) });
            if (isRedirectTo(next, redirectUrl)) {
                return next.searchParams;
            }
            // 301, 302 and 303 turn a POST into a GET, as browsers do.
            init = res.status === 307 || res.status === 308 ? init : { method: 'GET' };
            url = next;
            continue;
        }
        const html = await res.text();
        emit('oauth', { stage: 'browser', method: init.method, url: where(url), status: res.status });
        if (loggedIn) {
            throw new Error(`login as ${user} refused (${res.status}): ${pageError(html) ?? 'no message'}`);
        }
        const form = res.ok && /html/i.test(res.headers.get('content-type') ?? '') ? loginForm(html, url) : undefined;
        if (!form) {
            throw new Error(`${where(url)} answered ${res.status} without a login form: ${pageError(html) ?? html.slice(0, 200)}`);
        }
        form.fields.set(form.userField, user);
        form.fields.set(form.passwordField, password);
        emit('oauth', {
            stage: 'login form',
            action: where(form.action),
            method: form.method,
            fields: [...new Set(form.fields.keys())],
            user
        });
        loggedIn = true;
        if (form.method === 'post') {
            url = form.action;
            init = { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.fields.toString() };
        } else {
            url = new URL(form.action);
            url.search = form.fields.toString();
            init = { method: 'GET' };
        }
    }
    throw new Error('too many redirects on the way to the login');
}

// HeadlessProvider keeps everything in memory for one run, as the SDK's
// example provider does, and reports each step without its secrets.
class HeadlessProvider {
    constructor({ redirectUrl, user, password, tokensFile, grantTypes }) {
        this._redirectUrl = redirectUrl;
        this._grantTypes = grantTypes;
        this._user = user;
        this._password = password;
        this._tokensFile = tokensFile;
        this._issued = [];
        this.authorizationCode = undefined;
    }

    // keepIn makes clientFile (--client-file) where the client information
    // and tokens are kept between runs, reading them when it exists.
    keepIn(clientFile) {
        this._clientFile = clientFile;
        if (clientFile && existsSync(clientFile)) {
            const saved = JSON.parse(readFileSync(clientFile, 'utf8'));
            this._client = saved.client;
            this._tokens = saved.tokens;
            emit('oauth', {
                stage: 'loaded',
                clientId: saved.client?.client_id,
                hasAccessToken: Boolean(saved.tokens?.access_token),
                hasRefreshToken: Boolean(saved.tokens?.refresh_token)
            });
        }
    }

    // _keep writes the client information and tokens to --client-file.
    _keep() {
        if (this._clientFile) {
            writeFileSync(this._clientFile, JSON.stringify({ client: this._client, tokens: this._tokens }) + '\n', { mode: 0o600 });
        }
    }

    get redirectUrl() {
        return this._redirectUrl;
    }

    get clientMetadata() {
        return {
            client_name: 'pingmcp e2e: official MCP TypeScript SDK client',
            redirect_uris: [this._redirectUrl],
            grant_types: this._grantTypes,
            response_types: ['code'],
            token_endpoint_auth_method: 'none',
            scope: SCOPE
        };
    }

    state() {
        this._state = randomBytes(16).toString('base64url');
        return this._state;
    }

    clientInformation() {
        return this._client;
    }

    saveClientInformation(info) {
        const fresh = !this._client;
        this._client = info;
        this._keep();
        if (fresh) {
            emit('oauth', {
                stage: 'registered',
                clientId: info.client_id,
                issuer: info.issuer,
                hasClientSecret: Boolean(info.client_secret),
                tokenEndpointAuthMethod: info.token_endpoint_auth_method,
                grantTypes: info.grant_types,
                redirectUris: info.redirect_uris,
                scope: info.scope
            });
        }
    }

    tokens() {
        return this._tokens;
    }

    saveTokens(tokens) {
        this._tokens = tokens;
        this._keep();
        for (const kind of ['access_token', 'refresh_token', 'id_token']) {
            if (tokens[kind]) {
                this._issued.push({ kind, value: tokens[kind] });
            }
        }
        if (this._tokensFile) {
            writeFileSync(this._tokensFile, JSON.stringify({ tokens: this._issued }) + '\n', { mode: 0o600 });
        }
        const claims = jwtClaims(tokens.access_token);
        emit('oauth', {
            stage: 'tokens',
            issuer: tokens.issuer,
            tokenType: tokens.token_type,
            scope: tokens.scope,
            expiresIn: tokens.expires_in,
            hasAccessToken: Boolean(tokens.access_token),
            hasRefreshToken: Boolean(tokens.refresh_token),
            hasIdToken: Boolean(tokens.id_token),
            accessTokenClaims: claims && {
                iss: claims.iss,
                sub: claims.sub,
                aud: claims.aud,
                client_id: claims.client_id,
                scope: claims.scope,
                act: claims.act
            }
        });
    }

    saveCodeVerifier(verifier) {
        this._verifier = verifier;
        emit('oauth', { stage: 'pkce', codeVerifierLength: verifier.length });
    }

    codeVerifier() {
        if (!this._verifier) {
            throw new Error('no PKCE code verifier saved');
        }
        return this._verifier;
    }

    invalidateCredentials(scope) {
        emit('oauth', { stage: 'invalidate', scope });
        if (scope === 'all' || scope === 'client') this._client = undefined;
        if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
        if (scope === 'all' || scope === 'verifier') this._verifier = undefined;
        this._keep();
    }

    async redirectToAuthorization(authorizationUrl) {
        const p = authorizationUrl.searchParams;
        emit('oauth', {
            stage: 'authorize',
            endpoint: where(authorizationUrl),
            responseType: p.get('response_type'),
            clientId: p.get('client_id'),
            codeChallengeMethod: p.get('code_challenge_method'),
            hasCodeChallenge: Boolean(p.get('code_challenge')),
            hasState: Boolean(p.get('state')),
            scope: p.get('scope'),
            resource: p.get('resource'),
            redirectUri: p.get('redirect_uri'),
            prompt: p.getAll('prompt')
        });
        const back = await browse(authorizationUrl, this._redirectUrl, this._user, this._password);
        if (back.get('error')) {
            throw new Error(`authorization refused: ${back.get('error')}: ${back.get('error_description') ?? ''}`);
        }
        if (back.get('state') !== this._state) {
            throw new Error('the authorization response does not carry the state sent');
        }
        if (!back.get('code')) {
            throw new Error('the authorization response carries no code');
        }
        this.authorizationCode = back.get('code');
        emit('oauth', { stage: 'code', stateMatches: true, iss: back.get('iss') ?? undefined });
    }
}

function toolResultFields(result) {
    return {
        isError: Boolean(result.isError),
        content: result.content,
        ...(result.structuredContent !== undefined ? { structuredContent: result.structuredContent } : {})
    };
}

async function* stepsFrom(option) {
    if (option !== undefined) {
        const steps = JSON.parse(option);
        if (!Array.isArray(steps)) {
            throw new Error('--steps must be a JSON array');
        }
        yield* steps;
        return;
    }
    const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
    for await (const line of lines) {
        if (line.trim() !== '') {
            yield JSON.parse(line);
        }
    }
}

async function main() {
    const { values } = parseArgs({
        options: {
            'client-metadata-url': { type: 'string' },
            url: { type: 'string' },
            user: { type: 'string', default: process.env.OAUTHCLIENT_USER },
            password: { type: 'string', default: process.env.OAUTHCLIENT_PASSWORD },
            'tokens-file': { type: 'string' },
            'client-file': { type: 'string' },
            'redirect-url': { type: 'string', default: 'http://127.0.0.1:33418/oauth/callback' },
            steps: { type: 'string' },
            'grant-types': { type: 'string', default: 'authorization_code,refresh_token' },
            'stream-body-timeout': { type: 'string', default: process.env.OAUTHCLIENT_STREAM_BODY_TIMEOUT },
            'post-accept': { type: 'string' }
        }
    });
    if (!values.url || !values.user) {
        throw new Error('usage: client.mjs --url MCP_URL --user NAME [--password PW] [--tokens-file F] [--steps JSON]');
    }
    const serverUrl = new URL(values.url);
    countConnections(serverUrl);
    const provider = new HeadlessProvider({
        redirectUrl: values['redirect-url'],
        user: values.user,
        password: values.password ?? values.user,
        tokensFile: values['tokens-file'],
        grantTypes: values['grant-types'].split(',')
    });
    // Read by the SDK's auth(), as a provider's clientMetadataUrl.
    provider.clientMetadataUrl = values['client-metadata-url'];
    const client = new Client({ name: 'pingmcp-e2e-oauthclient', version: '1.0.0' }, { capabilities: {} });
    const fetchFn = loggingFetch(serverUrl, Number(values['stream-body-timeout'] ?? 0), values['post-accept']);
    const newTransport = () => new StreamableHTTPClientTransport(serverUrl, { authProvider: provider, fetch: fetchFn });
    provider.keepIn(values['client-file']);

    // As the SDK documents: connect; on UnauthorizedError the provider has
    // been sent to the authorization URL; finishAuth with the code it came
    // back with, then connect again on a new transport.
    let transport = newTransport();
    try {
        await client.connect(transport);
    } catch (err) {
        if (!(err instanceof UnauthorizedError) || !provider.authorizationCode) {
            throw err;
        }
        const code = provider.authorizationCode;
        provider.authorizationCode = undefined;
        await transport.finishAuth(code);
        emit('oauth', { stage: 'finished' });
        transport = newTransport();
        await client.connect(transport);
    }
    emit('initialized', {
        protocolVersion: transport.protocolVersion,
        hasSessionId: Boolean(transport.sessionId),
        serverInfo: client.getServerVersion(),
        capabilities: client.getServerCapabilities()
    });
    const tools = await client.listTools();
    emit('tools', { names: tools.tools.map(t => t.name) });

    let n = 0;
    for await (const step of stepsFrom(values.steps)) {
        n++;
        if (step.listTools) {
            const listed = await client.listTools();
            emit('tools', { step: n, names: listed.tools.map(t => t.name) });
        } else if (step.refresh) {
            const result = await auth(provider, { serverUrl, fetchFn });
            if (result !== 'AUTHORIZED') {
                throw new Error(`refresh: auth() answered ${result}`);
            }
            emit('refreshed', { step: n });
        } else if (typeof step.idle === 'number') {
            const before = { ...streams, failures: streams.failures.length };
            await new Promise(resolve => setTimeout(resolve, step.idle));
            emit('idled', {
                step: n,
                ms: step.idle,
                streamsOpened: streams.opened - before.opened,
                streamsEnded: streams.ended - before.ended,
                streamFailures: streams.failures.slice(before.failures),
                comments: streams.comments - before.comments,
                streamOpen: streams.opened > streams.ended + streams.failures.length
            });
        } else if (typeof step.call === 'string') {
            const call = () => client.callTool({ name: step.call, arguments: step.arguments ?? {} });
            let result;
            try {
                result = await call();
            } catch (err) {
                // A step-up (403 insufficient_scope) that needed a login: the
                // SDK sent the provider to the authorization URL; finish as
                // after connect, on the same transport (the same session),
                // and call again.
                if (!(err instanceof UnauthorizedError) || !provider.authorizationCode) {
                    throw err;
                }
                const code = provider.authorizationCode;
                provider.authorizationCode = undefined;
                await transport.finishAuth(code);
                emit('oauth', { stage: 'finished', step: n });
                result = await call();
            }
            emit('result', { step: n, tool: step.call, sessionId: transport.sessionId, connections, ...toolResultFields(result) });
            if (result.isError && !step.allowError) {
                throw new Error(`tool ${step.call} answered with an error`);
            }
        } else {
            throw new Error(`step ${n}: want call, listTools, refresh or idle: ${JSON.stringify(step)}`);
        }
    }
    await transport.terminateSession();
    await client.close();
    emit('done', { steps: n });
}

// Exit explicitly: after an error the transport's SSE stream would keep the
// process alive. Writes to a pipe or a file are synchronous, so nothing
// printed is lost.
main().then(
    () => process.exit(0),
    err => {
        emit('error', { message: String(err?.message ?? err), name: err?.name });
        process.exit(1);
    }
);
