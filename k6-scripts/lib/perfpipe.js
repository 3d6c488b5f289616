// perfpipe shared k6 library (runtime). Contract: docs/k6-script-contract.md
//
// Memory: k6 compiles every imported module in every VU, so this file is kept small.
// The run config is compiled ONCE per test by ./compile.js, which is require()d only inside
// the SharedArray callback (run by k6's first VU); the result is plain data shared by all VUs.
// Each VU reads it once in its init context and builds its request params / checks;
// iterations then only pick, render templates (only where the config has any) and call
// http.request().
//
// The run config is not validated here: perfpipe's Python side validated it before writing
// it (see the top of compile.js). A missing or unreadable config, or one perfpipe did not
// write for this script, throws a "perfpipe: ..." Error in the init context: k6 exits 107
// before sending any request.

import http from 'k6/http';
import { check, sleep } from 'k6';
import { SharedArray } from 'k6/data';
import { Counter } from 'k6/metrics';

// Counted once per VU that saw the stress limits crossed for stop_at_break.after_s (see noteForBreak).
const BREAK = new Counter('perfpipe_break');

let PLAN = null;

function fail(msg) {
  throw new Error('perfpipe: ' + msg);
}

function sharedPlan(testType) {
  let path = __ENV.PERFPIPE_RUN_CONFIG;
  if (!path) {
    fail('env PERFPIPE_RUN_CONFIG is not set; it must be the absolute path of the run-config JSON ' +
      '(see docs/k6-script-contract.md)');
  }
  if (path.charAt(0) !== '/') {
    // open() would resolve it against this library's directory: use the shell's cwd instead.
    if (!__ENV.PWD) fail('env PERFPIPE_RUN_CONFIG must be an absolute path, got ' + path);
    path = __ENV.PWD + '/' + path;
  }
  return new SharedArray('perfpipe-plan', function () {
    const c = require('./compile.js');
    let text;
    try {
      text = open(path);
    } catch (e) {
      c.fail('cannot read run config ' + path + ' (env PERFPIPE_RUN_CONFIG): ' + ((e && e.message) || e));
    }
    const cfg = c.checkRunConfig(text, path, testType);
    const headers = c.parseTargetHeaders(__ENV.PERFPIPE_TARGET_HEADERS);
    return [c.compileRunConfig(cfg, testType, headers)];
  })[0]; // each element access re-parses the JSON: read it once per VU
}

// Per-VU request object built from the shared (frozen) request data.
function vuRequest(r) {
  const exp = r.expect;
  const tags = { name: r.name };
  const params = { tags: tags, responseCallback: http.expectedStatuses.apply(http, exp) };
  if (r.headers !== null) params.headers = r.headers;
  const checks = {};
  checks[r.checkName] = function (res) { return exp.indexOf(res.status) !== -1; };
  const dynUrl = typeof r.url !== 'string';
  const dynBody = r.body !== null && typeof r.body !== 'string';
  return {
    name: r.name,
    method: r.method,
    url: dynUrl ? null : r.url,
    urlParts: dynUrl ? r.url : null,
    body: dynBody ? null : r.body,
    bodyParts: dynBody ? r.body : null,
    params: params,
    checks: checks,
    checkTags: tags,
  };
}

function vuGroup(g, reqs) {
  const out = [];
  for (let i = 0; i < g.idx.length; i++) out.push(reqs[g.idx[i]]);
  return { reqs: out, cum: g.cum, total: g.total };
}

// Loads the shared plan and builds this VU's view of it (init context only; cached per VU).
export function loadPlan(testType) {
  if (PLAN === null) {
    const s = sharedPlan(testType);
    const reqs = [];
    for (let i = 0; i < s.reqs.length; i++) reqs.push(vuRequest(s.reqs[i]));
    PLAN = {
      testType: s.testType,
      origin: originOf(s.baseUrl),
      options: s.options,
      reqs: reqs,
      all: vuGroup(s.all, reqs),
      reads: vuGroup(s.reads, reqs),
      writes: vuGroup(s.writes, reqs),
      readRatio: s.readRatio,
      think: s.think,
      stopAtBreak: s.stopAtBreak,
    };
  }
  if (PLAN.testType !== testType) fail('run config was compiled for ' + PLAN.testType + ', not ' + testType);
  return PLAN;
}

function plan() {
  if (PLAN === null) fail('the run config is not loaded: call buildOptions(testType) in the init context first');
  return PLAN;
}

// k6 options: one scenario named after the test type, summaryTrendStats, discardResponseBodies,
// and no-op per-request-name thresholds (so --summary-export has per-name stats).
// A fresh mutable object per call: k6 writes the consolidated options back into it per VU.
export function buildOptions(testType) {
  return JSON.parse(loadPlan(testType).options);
}

// Renders compiled template parts: strings are literal, arrays are generators
// ([0, A, span] int, [1] uuid, [2] vu, [3] iter).
export function render(parts) {
  let s = '';
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (typeof p === 'string') s += p;
    else if (p[0] === 0) s += p[1] + Math.floor(Math.random() * p[2]);
    else if (p[0] === 1) s += crypto.randomUUID();
    else if (p[0] === 2) s += __VU;
    else s += __ITER;
  }
  return s;
}

// Issues one request with its name tag, expected statuses and check.
export function issueRequest(req) {
  const url = req.urlParts === null ? req.url : render(req.urlParts);
  const body = req.bodyParts === null ? req.body : render(req.bodyParts);
  const res = followRedirects(req.method, url, body, req.params);
  const ok = check(res, req.checks, req.checkTags);
  if (PLAN.stopAtBreak) noteForBreak(PLAN.stopAtBreak, ok, res.timings.duration);
  return res;
}

// Redirects. perfpipe runs k6 with --max-redirects 0 (plugins/perfpipe/core/k6/command.py): k6 would follow a
// Location to any port of an allowed address, since its --blacklist-ip knows addresses, not ports. The script
// follows a redirect itself only within the target's own origin (scheme, host and port of base_url, which passed
// the allowlist and whose name k6 has pinned to the checked address); a Location anywhere else is not followed and
// the 3xx is the answer the checks see. Methods change as k6 (Go) changes them: 303, and 301/302 of a non-GET/HEAD,
// go on as a GET without body. As with k6's own following, every hop is a request of its own in the metrics.
const MAX_REDIRECTS = 10; // k6's default maxRedirects
const REDIRECT_STATUSES = [301, 302, 303, 307, 308];
const URL_RE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^#]*)/;
const AUTHORITY_RE = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?$/;

// 'scheme://host:port' with the default port written out, lower-case; null when not a plain http(s) URL.
export function originOf(url) {
  const m = URL_RE.exec(url);
  if (m === null) return null;
  const scheme = m[1].toLowerCase();
  const a = AUTHORITY_RE.exec(m[2]); // no userinfo, no odd characters: anything unusual is not followed
  if ((scheme !== 'http' && scheme !== 'https') || a === null) return null;
  const port = a[2] !== undefined ? parseInt(a[2], 10) : (scheme === 'https' ? 443 : 80);
  return scheme + '://' + a[1].toLowerCase() + ':' + port;
}

// The absolute URL a Location leads to from `current`, or null unless it stays in `origin`.
export function sameOriginLocation(current, location, origin) {
  if (typeof location !== 'string' || location === '' || /[\u0000-\u0020\u007f\\]/.test(location)) return null;
  const cur = URL_RE.exec(current);
  let next;
  if (URL_RE.test(location)) next = location;
  else if (location.slice(0, 2) === '//') next = cur[1] + ':' + location;
  else if (location.charAt(0) === '/') next = cur[1] + '://' + cur[2] + location;
  else if (location.charAt(0) === '?') next = cur[1] + '://' + cur[2] + cur[3].split('?')[0] + location;
  else {
    const path = cur[3].split('?')[0];
    next = cur[1] + '://' + cur[2] + path.slice(0, path.lastIndexOf('/') + 1) + location;
  }
  next = next.split('#')[0];
  return origin !== null && originOf(next) === origin ? next : null;
}

export function followRedirects(method, url, body, params) {
  let res = http.request(method, url, body, params);
  for (let hops = 0; hops < MAX_REDIRECTS && REDIRECT_STATUSES.indexOf(res.status) !== -1; hops++) {
    const next = sameOriginLocation(url, res.headers.Location, PLAN.origin);
    if (next === null) break;
    if (res.status === 303 || (res.status <= 302 && method !== 'GET' && method !== 'HEAD')) {
      method = 'GET';
      body = null;
    }
    url = next;
    res = http.request(method, url, body, params);
  }
  return res;
}

// Stop-at-break (stress): this VU's requests per second of the last window_s; when the error rate or p95 of that
// window stays over the limits for after_s, the VU counts one perfpipe_break and k6's threshold stops the test.
// A VU only sees its own requests: a fair sample of a system-wide break, and no cross-VU state is needed.
let WIN = null;

function noteForBreak(b, ok, durationMs) {
  const now = Date.now();
  const sec = Math.floor(now / 1000);
  if (WIN === null) WIN = { slots: [], overSince: 0, fired: false };
  let slot = WIN.slots.length ? WIN.slots[WIN.slots.length - 1] : null;
  if (slot === null || slot.sec !== sec) {
    if (slot !== null) judgeWindow(b, now);  // a second completed: judge the window once per second
    slot = { sec: sec, n: 0, bad: 0, d: [] };
    WIN.slots.push(slot);
    while (WIN.slots[0].sec <= sec - Math.max(1, b.window_s) - 1) WIN.slots.shift();
  }
  slot.n++;
  if (!ok) slot.bad++;
  slot.d.push(durationMs);
}

function judgeWindow(b, now) {
  if (WIN.fired) return;
  let n = 0, bad = 0;
  const d = [];
  for (let i = 0; i < WIN.slots.length; i++) {
    n += WIN.slots[i].n;
    bad += WIN.slots[i].bad;
    for (let j = 0; j < WIN.slots[i].d.length; j++) d.push(WIN.slots[i].d[j]);
  }
  if (n < 5) return;  // too few requests to judge
  d.sort(function (x, y) { return x - y; });
  const p95 = d[Math.min(d.length - 1, Math.floor(0.95 * d.length))];
  if (bad / n > b.error_rate || p95 > b.p95_ms) {
    if (!WIN.overSince) WIN.overSince = now;
    if (now - WIN.overSince >= b.after_s * 1000) {
      WIN.fired = true;
      BREAK.add(1);
    }
  } else {
    WIN.overSince = 0;
  }
}

// Weighted pick; with read_ratio set, first reads (GET/HEAD) vs writes, then weighted.
export function pickRequest() {
  const p = plan();
  const g = p.readRatio === null ? p.all : (Math.random() < p.readRatio ? p.reads : p.writes);
  const cum = g.cum;
  const n = cum.length - 1;
  const x = Math.random() * g.total;
  let i = 0;
  while (i < n && x >= cum[i]) i++;
  return g.reqs[i];
}

// One iteration of load/stress/spike/soak/chaos: one weighted pick, then think time.
export function runWeighted() {
  const p = plan();
  issueRequest(pickRequest());
  if (p.think > 0) sleep(p.think);
}

// One iteration of smoke: every configured request once, in config order, then think time.
export function runSweep() {
  const p = plan();
  for (let i = 0; i < p.reqs.length; i++) issueRequest(p.reqs[i]);
  if (p.think > 0) sleep(p.think);
}
