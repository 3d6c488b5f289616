// perfpipe run-config compiler (see docs/k6-script-contract.md).
//
// Loaded with require() from inside the SharedArray callback in perfpipe.js, so it is parsed
// and run ONCE per test (in k6's first, options-reading VU) instead of once per VU: k6 compiles
// every imported module in every VU, and each function / regex literal costs memory per VU.
//
// compileRunConfig() validates the run config and turns it into plain JSON data (no functions)
// that all VUs share. Every problem throws an Error starting with "perfpipe:" (k6 exit 107).
//
// Template parts in the output: a string is literal text, an array is a generator:
//   [0, A, span] random int A..A+span-1 | [1] uuid | [2] __VU | [3] __ITER

export const TEST_TYPES = ['smoke', 'load', 'stress', 'spike', 'soak', 'chaos'];
export const EXECUTORS = ['ramping-vus', 'constant-vus'];
export const SUMMARY_TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'count'];

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
const READ_METHODS = ['GET', 'HEAD'];
// k6 durations: "30s", "1m30s", "500ms", "2h", "1d" ...
const DURATION_RE = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h|d))+$/;
const TEMPLATE_RE = /\{\{(.*?)\}\}/g;
const INT_TOKEN_RE = /^\s*int\s*:\s*(-?\d+)\s*:\s*(-?\d+)\s*$/;
// Names that can safely appear inside a threshold selector `metric{name:<name>}`.
const SAFE_TAG_VALUE_RE = /^[^{}:,"'\s][^{}:,"']*$/;

export function fail(msg) {
  throw new Error('perfpipe: ' + msg);
}

function isInt(v) {
  return typeof v === 'number' && isFinite(v) && Math.floor(v) === v;
}

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

// ---------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------

export function parseRunConfig(text, path) {
  let cfg;
  try {
    cfg = JSON.parse(text);
  } catch (e) {
    fail('run config ' + path + ' is not valid JSON: ' + ((e && e.message) || e));
  }
  if (!isObject(cfg)) fail('run config ' + path + ' must hold a JSON object');
  return cfg;
}

export function parseTargetHeaders(raw) {
  if (raw === undefined || raw === '') return {};
  let h;
  try {
    h = JSON.parse(raw);
  } catch (e) {
    // Never echo the value: it may hold secrets.
    fail('env PERFPIPE_TARGET_HEADERS is not valid JSON (value not shown, it may hold secrets)');
  }
  if (h === null) return {};
  if (!isObject(h)) fail('env PERFPIPE_TARGET_HEADERS must be a JSON object of header name -> string value');
  const out = {};
  for (const k in h) {
    const v = h[k];
    if (typeof v === 'string') out[k] = v;
    else if (typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
    else fail('env PERFPIPE_TARGET_HEADERS: header "' + k + '" must have a string value');
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Templates: {{int:A:B}}, {{uuid}}, {{vu}}, {{iter}}
// ---------------------------------------------------------------------------------------

// Returns {gen, numeric} for one template token, or throws.
function compileToken(token, where) {
  const t = token.trim();
  if (t === 'uuid') return { gen: [1], numeric: false };
  if (t === 'vu') return { gen: [2], numeric: true };
  if (t === 'iter') return { gen: [3], numeric: true };
  const m = INT_TOKEN_RE.exec(t);
  if (m) {
    const a = parseInt(m[1], 10);
    const b = parseInt(m[2], 10);
    if (a > b) fail(where + ': template {{' + token + '}} has A > B');
    return { gen: [0, a, b - a + 1], numeric: true };
  }
  return fail(where + ': unknown template {{' + token + '}} (supported: {{int:A:B}}, {{uuid}}, {{vu}}, {{iter}})');
}

// Splits a string into literal strings and generators; `escape` transforms literal pieces.
function splitTemplate(s, where, escape, out) {
  let last = 0;
  let m;
  TEMPLATE_RE.lastIndex = 0;
  while ((m = TEMPLATE_RE.exec(s)) !== null) {
    if (m.index > last) out.push(escape(s.slice(last, m.index)));
    out.push(compileToken(m[1], where).gen);
    last = m.index + m[0].length;
  }
  if (last < s.length) out.push(escape(s.slice(last)));
  for (let i = 0; i < out.length; i++) {
    if (typeof out[i] === 'string' && out[i].indexOf('{{') !== -1) {
      fail(where + ': unterminated template in "' + s + '"');
    }
  }
  return out;
}

function identity(s) { return s; }
function jsonEscape(s) { const j = JSON.stringify(s); return j.slice(1, j.length - 1); }

// Merges adjacent literals; returns a plain string when nothing is dynamic.
function finishParts(parts) {
  const out = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (typeof p === 'string' && out.length && typeof out[out.length - 1] === 'string') out[out.length - 1] += p;
    else out.push(p);
  }
  if (out.length === 0) return '';
  if (out.length === 1 && typeof out[0] === 'string') return out[0];
  return out;
}

// Compiles a string template: a plain string (static) or a parts array.
export function compileTemplate(s, where) {
  return finishParts(splitTemplate(s, where || 'template', identity, []));
}

// Compiles a JSON value into JSON text pieces, templating string values recursively.
// A string that is exactly one numeric template ({{int:..}}, {{vu}}, {{iter}}) becomes a number.
function compileJsonInto(v, out, where) {
  if (typeof v === 'string') {
    const whole = /^\{\{(.*?)\}\}$/.exec(v);
    if (whole && whole[1].indexOf('}}') === -1) {
      const tok = compileToken(whole[1], where);
      if (tok.numeric) { out.push(tok.gen); return; }
    }
    out.push('"');
    splitTemplate(v, where, jsonEscape, out);
    out.push('"');
    return;
  }
  if (Array.isArray(v)) {
    out.push('[');
    for (let i = 0; i < v.length; i++) {
      if (i) out.push(',');
      compileJsonInto(v[i], out, where + '[' + i + ']');
    }
    out.push(']');
    return;
  }
  if (isObject(v)) {
    out.push('{');
    let first = true;
    for (const k in v) {
      if (!first) out.push(',');
      first = false;
      out.push(JSON.stringify(k) + ':');
      compileJsonInto(v[k], out, where + '.' + k);
    }
    out.push('}');
    return;
  }
  out.push(JSON.stringify(v === undefined ? null : v));
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

function compileRequest(r, i, baseUrl, targetHeaders) {
  const where = 'target.requests[' + i + ']';
  if (!isObject(r)) fail(where + ' must be an object');

  const method = String(r.method == null ? 'GET' : r.method).toUpperCase();
  if (METHODS.indexOf(method) === -1) fail(where + '.method "' + r.method + '" is not one of ' + METHODS.join(', '));

  if (typeof r.path !== 'string') fail(where + '.path must be a string');
  const path = r.path === '' ? '/' : (r.path.charAt(0) === '/' ? r.path : '/' + r.path);

  const name = r.name == null || r.name === '' ? method + ' ' + path : String(r.name);

  let weight = 1;
  if (r.weight != null) {
    if (typeof r.weight !== 'number' || !isFinite(r.weight) || r.weight < 0) {
      fail(where + '.weight must be a number >= 0');
    }
    weight = r.weight;
  }

  // null = k6's default expectation, 200..399
  let expect = null;
  if (r.expect_status != null) {
    const es = Array.isArray(r.expect_status) ? r.expect_status : [r.expect_status];
    if (es.length === 0) fail(where + '.expect_status must not be empty');
    for (let j = 0; j < es.length; j++) {
      if (!isInt(es[j]) || es[j] < 100 || es[j] > 599) fail(where + '.expect_status must hold HTTP status integers');
    }
    expect = es.slice();
  }

  const url = compileTemplate(baseUrl + path, where + '.path');

  let body = null;
  let json = false;
  if (r.body !== undefined && r.body !== null) {
    if (typeof r.body === 'string') {
      body = compileTemplate(r.body, where + '.body'); // raw text, sent as-is
    } else {
      const out = [];
      compileJsonInto(r.body, out, where + '.body');
      body = finishParts(out);
      json = true;
    }
  }

  const headers = {};
  let nHeaders = 0;
  let hasCT = false;
  for (const k in targetHeaders) {
    headers[k] = targetHeaders[k];
    nHeaders++;
    if (k.toLowerCase() === 'content-type') hasCT = true;
  }
  if (json && !hasCT) { headers['Content-Type'] = 'application/json'; nHeaders++; }

  return {
    name: name,
    method: method,
    weight: weight,
    read: READ_METHODS.indexOf(method) !== -1,
    url: url, // string, or parts array when templated
    body: body, // null, string, or parts array when templated
    headers: nHeaders ? headers : null,
    expect: expect,
    checkName: name + ' status ' + (expect === null ? '200-399' : expect.join('|')),
  };
}

function makeGroup(reqs, filter) {
  const g = { idx: [], cum: [], total: 0 };
  for (let i = 0; i < reqs.length; i++) {
    if (reqs[i].weight > 0 && filter(reqs[i])) {
      g.total += reqs[i].weight;
      g.idx.push(i);
      g.cum.push(g.total);
    }
  }
  return g;
}

// ---------------------------------------------------------------------------------------
// Shape -> scenario
// ---------------------------------------------------------------------------------------

function validateDuration(v, where, optional) {
  if (v === undefined || v === null) {
    if (optional) return null;
    fail(where + ' is required (a k6 duration such as "30s" or "1m30s")');
  }
  if (typeof v !== 'string' || !DURATION_RE.test(v)) {
    fail(where + ' must be a k6 duration string such as "30s" or "1m30s", got ' + JSON.stringify(v));
  }
  return v;
}

function compileScenario(shape, testType) {
  if (!isObject(shape)) fail('run config: "shape" object is missing');
  const ex = shape.executor;
  const sc = { executor: ex };
  if (ex === 'ramping-vus') {
    const start = shape.start_vus == null ? 0 : shape.start_vus;
    if (!isInt(start) || start < 0) fail('shape.start_vus must be an integer >= 0');
    if (!Array.isArray(shape.stages) || shape.stages.length === 0) {
      fail('shape.stages must be a non-empty list of {duration, target} for executor ramping-vus');
    }
    sc.startVUs = start;
    sc.stages = shape.stages.map(function (s, i) {
      if (!isObject(s)) fail('shape.stages[' + i + '] must be an object {duration, target}');
      if (!isInt(s.target) || s.target < 0) fail('shape.stages[' + i + '].target must be an integer >= 0');
      return { duration: validateDuration(s.duration, 'shape.stages[' + i + '].duration', false), target: s.target };
    });
    const grd = validateDuration(shape.graceful_ramp_down, 'shape.graceful_ramp_down', true);
    if (grd !== null) sc.gracefulRampDown = grd;
  } else if (ex === 'constant-vus') {
    if (!isInt(shape.vus) || shape.vus < 1) fail('shape.vus must be an integer >= 1 for executor constant-vus');
    sc.vus = shape.vus;
    sc.duration = validateDuration(shape.duration, 'shape.duration', false);
  } else {
    fail('shape.executor ' + JSON.stringify(ex) + ' is not supported for test type ' + testType +
      '; use one of: ' + EXECUTORS.join(', '));
  }
  const gs = validateDuration(shape.graceful_stop, 'shape.graceful_stop', true);
  if (gs !== null) sc.gracefulStop = gs;
  return sc;
}

// ---------------------------------------------------------------------------------------
// Whole config -> shared plan (plain data)
// ---------------------------------------------------------------------------------------

function compileStopAtBreak(c) {
  if (c === undefined || c === null) return null;
  if (!isObject(c)) fail('run config: stop_at_break must be an object');
  const out = {};
  ['error_rate', 'p95_ms', 'window_s', 'after_s'].forEach(function (k) {
    if (typeof c[k] !== 'number' || !isFinite(c[k]) || c[k] < 0) fail('stop_at_break.' + k + ' must be a number >= 0');
    out[k] = c[k];
  });
  return out;
}

export function compileRunConfig(cfg, testType, targetHeaders, envBaseUrl) {
  if (TEST_TYPES.indexOf(testType) === -1) {
    fail('unknown test type ' + JSON.stringify(testType) + '; use one of: ' + TEST_TYPES.join(', '));
  }
  if (cfg.test_type != null && cfg.test_type !== testType) {
    fail('run config test_type is "' + cfg.test_type + '" but this script is ' + testType + '.js');
  }
  const target = cfg.target;
  if (!isObject(target)) fail('run config: "target" object is missing');
  let base = target.base_url || envBaseUrl;
  if (typeof base !== 'string' || !/^https?:\/\/[^/]+/.test(base)) {
    fail('target.base_url must be an http(s) URL, got ' + JSON.stringify(base));
  }
  base = base.replace(/\/+$/, '');
  if (!Array.isArray(target.requests) || target.requests.length === 0) {
    fail('target.requests must be a non-empty list');
  }
  const reqs = target.requests.map(function (r, i) { return compileRequest(r, i, base, targetHeaders); });

  const shape = cfg.shape;
  const scenario = compileScenario(shape, testType);

  const think = shape.think_time_s == null ? 0 : shape.think_time_s;
  if (typeof think !== 'number' || !isFinite(think) || think < 0) fail('shape.think_time_s must be a number >= 0');

  let readRatio = shape.read_ratio == null ? null : shape.read_ratio;
  if (readRatio !== null && (typeof readRatio !== 'number' || !(readRatio >= 0 && readRatio <= 1))) {
    fail('shape.read_ratio must be a number in [0, 1] or null');
  }

  const all = makeGroup(reqs, function () { return true; });
  if (all.total <= 0) fail('target.requests: at least one request needs weight > 0');
  const reads = makeGroup(reqs, function (r) { return r.read; });
  const writes = makeGroup(reqs, function (r) { return !r.read; });
  // "If one group is empty, the other is used": equivalent to a plain pick over all.
  if (readRatio !== null && (reads.total <= 0 || writes.total <= 0)) readRatio = null;

  const scenarios = {};
  scenarios[testType] = scenario;
  // No-op thresholds on per-name sub-metrics, so that --summary-export carries per-request stats.
  const thresholds = {};
  const seen = {};
  for (let i = 0; i < reqs.length; i++) {
    const n = reqs[i].name;
    if (seen[n] || !SAFE_TAG_VALUE_RE.test(n)) continue;
    seen[n] = true;
    thresholds['http_req_duration{name:' + n + '}'] = ['max>=0'];
    thresholds['http_reqs{name:' + n + '}'] = ['count>=0'];
    thresholds['http_req_failed{name:' + n + '}'] = ['rate>=0'];
  }

  const stopAtBreak = compileStopAtBreak(cfg.stop_at_break);
  if (stopAtBreak !== null) {
    // Crossed once a VU has seen the stress limits exceeded for after_s: k6 then stops the ramp (exit 99).
    thresholds.perfpipe_break = [{ threshold: 'count<1', abortOnFail: true }];
  }

  return {
    testType: testType,
    stopAtBreak: stopAtBreak,
    // A string: k6 writes the consolidated options back into every VU's exported `options`
    // object, so each VU needs its own mutable (not SharedArray-frozen) copy.
    options: JSON.stringify({
      scenarios: scenarios,
      thresholds: thresholds,
      summaryTrendStats: SUMMARY_TREND_STATS.slice(),
      discardResponseBodies: true,
    }),
    reqs: reqs,
    all: all,
    reads: reads,
    writes: writes,
    readRatio: readRatio,
    think: think,
  };
}
