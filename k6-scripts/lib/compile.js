// perfpipe run-config compiler (see docs/k6-script-contract.md).
//
// Loaded with require() from inside the SharedArray callback in perfpipe.js, so it is parsed
// and run ONCE per test (in k6's first, options-reading VU) instead of once per VU: k6 compiles
// every imported module in every VU, and each function / regex literal costs memory per VU.
//
// compileRunConfig() turns the run config into plain JSON data (no functions) that all VUs share:
// the k6 options (scenario, thresholds), prebuilt URLs and bodies, template parts, cumulative weights.
//
// Why nothing here validates the run config: its only writer is perfpipe's Python side
// (write_run_config in plugins/perfpipe/core/k6/command.py), and it writes it from a plan that was
// validated before any load and refused naming the bad field: requests, paths, weights, expected
// statuses, bodies and templates in perfpipe.app.targets; executors, VUs, stages, durations, think
// time, read ratio and the stress stop-at-break limits in perfpipe.app.config. A second rule set here
// could only drift from that one (it did: weight 0, paths without '/', ns/us/d durations and think
// time over 60 s passed here and were refused there), and its verdict came from `k6 inspect`, later
// than the Python check and without a field name. What stays is one guard, checkRunConfig(): the
// file must be a config perfpipe wrote in the format this compiler reads (`schema`, RUN_CONFIG_SCHEMA
// in command.py) for this script (`test_type`), so a hand-written or stale config fails loudly
// instead of being half understood. A problem found here throws an Error starting with "perfpipe:"
// (k6 exit 107, before any request).
//
// Template parts in the output: a string is literal text, an array is a generator:
//   [0, A, span] random int A..A+span-1 | [1] uuid | [2] __VU | [3] __ITER

export const RUN_CONFIG_SCHEMA = 'perfpipe-run-config/1';
export const SUMMARY_TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'count'];

const READ_METHODS = ['GET', 'HEAD'];
const TEMPLATE_RE = /\{\{(.*?)\}\}/g;
const INT_TOKEN_RE = /^\s*int\s*:\s*(-?\d+)\s*:\s*(-?\d+)\s*$/;
// Names that can safely appear inside a threshold selector `metric{name:<name>}`.
const SAFE_TAG_VALUE_RE = /^[^{}:,"'\s][^{}:,"']*$/;

export function fail(msg) {
  throw new Error('perfpipe: ' + msg);
}

// ---------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------

// The one guard: the config is perfpipe's, in this compiler's format, for this script.
export function checkRunConfig(text, path, testType) {
  let cfg;
  try {
    cfg = JSON.parse(text);
  } catch (e) {
    fail('run config ' + path + ' is not valid JSON: ' + ((e && e.message) || e));
  }
  const schema = cfg !== null && typeof cfg === 'object' ? cfg.schema : undefined;
  if (schema !== RUN_CONFIG_SCHEMA) {
    fail('run config ' + path + (schema === undefined ? ' has no "schema"' : ' has schema ' + JSON.stringify(schema)) +
      ', not "' + RUN_CONFIG_SCHEMA +
      '": the k6 scripts do not validate their run config, so it must be one perfpipe wrote for this version ' +
      '(write_run_config in plugins/perfpipe/core/k6/command.py, e.g. the run-config.json of a ' +
      '`perfpipe run`), not a hand-written or older one');
  }
  if (cfg.test_type !== testType) {
    fail('run config ' + path + ' is for test type "' + cfg.test_type + '" but this script is ' + testType + '.js');
  }
  return cfg;
}

export function parseTargetHeaders(raw) {
  if (raw === undefined || raw === '') return {};
  try {
    return JSON.parse(raw) || {};
  } catch (e) {
    // Never echo the value (nor the parser's message about it): it may hold secrets.
    return fail('env PERFPIPE_TARGET_HEADERS is not valid JSON (value not shown, it may hold secrets)');
  }
}

// ---------------------------------------------------------------------------------------
// Templates: {{int:A:B}}, {{uuid}}, {{vu}}, {{iter}} (checked by perfpipe.app.targets)
// ---------------------------------------------------------------------------------------

// Returns {gen, numeric} for one template token.
function compileToken(token) {
  const t = token.trim();
  if (t === 'uuid') return { gen: [1], numeric: false };
  if (t === 'vu') return { gen: [2], numeric: true };
  if (t === 'iter') return { gen: [3], numeric: true };
  const m = INT_TOKEN_RE.exec(t);
  // Not reachable from a config perfpipe wrote; there is nothing to compile it into.
  if (!m) return fail('cannot compile template {{' + token + '}}');
  const a = parseInt(m[1], 10);
  return { gen: [0, a, parseInt(m[2], 10) - a + 1], numeric: true };
}

// Splits a string into literal strings and generators; `escape` transforms literal pieces.
function splitTemplate(s, escape, out) {
  let last = 0;
  let m;
  TEMPLATE_RE.lastIndex = 0;
  while ((m = TEMPLATE_RE.exec(s)) !== null) {
    if (m.index > last) out.push(escape(s.slice(last, m.index)));
    out.push(compileToken(m[1]).gen);
    last = m.index + m[0].length;
  }
  if (last < s.length) out.push(escape(s.slice(last)));
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
export function compileTemplate(s) {
  return finishParts(splitTemplate(s, identity, []));
}

// Compiles a JSON value into JSON text pieces, templating string values recursively.
// A string that is exactly one numeric template ({{int:..}}, {{vu}}, {{iter}}) becomes a number.
function compileJsonInto(v, out) {
  if (typeof v === 'string') {
    const whole = /^\{\{(.*?)\}\}$/.exec(v);
    if (whole && whole[1].indexOf('}}') === -1) {
      const tok = compileToken(whole[1]);
      if (tok.numeric) { out.push(tok.gen); return; }
    }
    out.push('"');
    splitTemplate(v, jsonEscape, out);
    out.push('"');
    return;
  }
  if (Array.isArray(v)) {
    out.push('[');
    for (let i = 0; i < v.length; i++) {
      if (i) out.push(',');
      compileJsonInto(v[i], out);
    }
    out.push(']');
    return;
  }
  if (v !== null && typeof v === 'object') {
    out.push('{');
    let first = true;
    for (const k in v) {
      if (!first) out.push(',');
      first = false;
      out.push(JSON.stringify(k) + ':');
      compileJsonInto(v[k], out);
    }
    out.push('}');
    return;
  }
  out.push(JSON.stringify(v));
}

// ---------------------------------------------------------------------------------------
// Requests (perfpipe.app.targets writes them normalised: method upper-case, name set, path
// starting with '/', weight > 0, expect_status a list, body null / string / JSON value)
// ---------------------------------------------------------------------------------------

function compileRequest(r, baseUrl, targetHeaders) {
  let body = null;
  let json = false;
  if (typeof r.body === 'string') {
    body = compileTemplate(r.body); // raw text, sent as-is
  } else if (r.body !== null) {
    const out = [];
    compileJsonInto(r.body, out);
    body = finishParts(out);
    json = true;
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
    name: r.name,
    method: r.method,
    weight: r.weight,
    read: READ_METHODS.indexOf(r.method) !== -1,
    url: compileTemplate(baseUrl + r.path), // string, or parts array when templated
    body: body, // null, string, or parts array when templated
    headers: nHeaders ? headers : null,
    expect: r.expect_status.slice(),
    checkName: r.name + ' status ' + r.expect_status.join('|'),
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
// Shape -> scenario (perfpipe.app.config.validate_shape writes every field the executor uses)
// ---------------------------------------------------------------------------------------

function compileScenario(shape) {
  const sc = { executor: shape.executor };
  if (shape.executor === 'ramping-vus') {
    sc.startVUs = shape.start_vus;
    sc.stages = shape.stages.map(function (s) { return { duration: s.duration, target: s.target }; });
    sc.gracefulRampDown = shape.graceful_ramp_down;
  } else { // constant-vus
    sc.vus = shape.vus;
    sc.duration = shape.duration;
  }
  sc.gracefulStop = shape.graceful_stop;
  return sc;
}

// ---------------------------------------------------------------------------------------
// Whole config -> shared plan (plain data)
// ---------------------------------------------------------------------------------------

export function compileRunConfig(cfg, testType, targetHeaders) {
  const reqs = cfg.target.requests.map(function (r) { return compileRequest(r, cfg.target.base_url, targetHeaders); });
  const shape = cfg.shape;

  let readRatio = shape.read_ratio;
  const all = makeGroup(reqs, function () { return true; });
  const reads = makeGroup(reqs, function (r) { return r.read; });
  const writes = makeGroup(reqs, function (r) { return !r.read; });
  // "If one group is empty, the other is used": equivalent to a plain pick over all.
  if (readRatio !== null && (reads.total <= 0 || writes.total <= 0)) readRatio = null;

  const scenarios = {};
  scenarios[testType] = compileScenario(shape);
  // No-op thresholds on per-name sub-metrics, so that --summary-export carries per-request stats.
  const thresholds = {};
  for (let i = 0; i < reqs.length; i++) {
    const n = reqs[i].name;
    if (!SAFE_TAG_VALUE_RE.test(n)) continue;
    thresholds['http_req_duration{name:' + n + '}'] = ['max>=0'];
    thresholds['http_reqs{name:' + n + '}'] = ['count>=0'];
    thresholds['http_req_failed{name:' + n + '}'] = ['rate>=0'];
  }

  const stopAtBreak = cfg.stop_at_break || null;
  if (stopAtBreak !== null) {
    // Crossed once a VU has seen the stress limits exceeded for after_s: k6 then stops the ramp (exit 99).
    thresholds.perfpipe_break = [{ threshold: 'count<1', abortOnFail: true }];
  }

  return {
    testType: testType,
    baseUrl: cfg.target.base_url, // the origin redirects may be followed within (perfpipe.js followRedirects)
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
    think: shape.think_time_s,
  };
}
