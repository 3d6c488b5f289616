// Example of a user's own k6 script, for a target configured in `script:` mode.
//
// perfpipe runs such a script unchanged: it does not read the perfpipe run config, so it
// brings its own `options`. The runner still provides, as environment variables:
//   BASE_URL                 the target's base URL (always use it: never hard-code a host)
//   PERFPIPE_TARGET_HEADERS  JSON object of HTTP headers for the target ({} when none;
//                            may hold secrets: do not log it)
// and adds its usual CLI flags (--tag testid/test_type/target, --summary-export, --out ...).
// See docs/k6-script-contract.md.
//
// By hand:  BASE_URL=http://127.0.0.1:8090 k6 run --address "" examples/custom-script.js

import http from 'k6/http';
import { check, sleep } from 'k6';

if (!__ENV.BASE_URL) {
  throw new Error('custom-script: env BASE_URL is not set (e.g. BASE_URL=http://127.0.0.1:8090)');
}
const BASE_URL = __ENV.BASE_URL.replace(/\/+$/, '');
const HEADERS = JSON.parse(__ENV.PERFPIPE_TARGET_HEADERS || '{}');

export const options = {
  scenarios: {
    browse_and_buy: { executor: 'constant-vus', vus: 2, duration: '10s', gracefulStop: '5s' },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    http_req_duration: ['p(95)<500'],
    checks: ['rate>0.99'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'count'],
  discardResponseBodies: true,
};

export default function () {
  const id = 1 + Math.floor(Math.random() * 100);
  // `name` groups all product ids under one metric series.
  const product = http.get(`${BASE_URL}/api/products/${id}`, { headers: HEADERS, tags: { name: 'get_product' } });
  check(product, { 'get_product status 200': (r) => r.status === 200 });

  const order = http.post(
    `${BASE_URL}/api/checkout`,
    JSON.stringify({ user_id: 1 + Math.floor(Math.random() * 50), items: [{ product_id: id, qty: 1 }] }),
    {
      headers: Object.assign({ 'Content-Type': 'application/json' }, HEADERS),
      tags: { name: 'checkout' },
      responseCallback: http.expectedStatuses(201),
    },
  );
  check(order, { 'checkout status 201': (r) => r.status === 201 });

  sleep(0.5);
}
