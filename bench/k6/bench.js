// bench/: one request per iteration, no think time, like a perfpipe request list entry (name tag + check).
// BENCH_MODE=vus: BENCH_VUS constant VUs for BENCH_DURATION.
// BENCH_MODE=rate: BENCH_RATE iterations/s (constant-arrival-rate, up to BENCH_VUS VUs) for BENCH_DURATION.
import http from 'k6/http';
import { check } from 'k6';

const vus = parseInt(__ENV.BENCH_VUS || '50', 10);
const duration = __ENV.BENCH_DURATION || '15s';
const scenario = (__ENV.BENCH_MODE || 'vus') === 'rate'
  ? { executor: 'constant-arrival-rate', rate: parseInt(__ENV.BENCH_RATE, 10), timeUnit: '1s', duration: duration,
      preAllocatedVUs: vus, maxVUs: vus }
  : { executor: 'constant-vus', vus: vus, duration: duration };

export const options = {
  scenarios: { bench: scenario },
  discardResponseBodies: true,
  summaryTrendStats: ['avg', 'med', 'p(95)', 'p(99)', 'count'],
};

const url = __ENV.BASE_URL + (__ENV.BENCH_PATH || '/');
const params = { tags: { name: __ENV.BENCH_PATH || '/' } };
const checks = { 'status 200': (r) => r.status === 200 };

export default function () {
  check(http.get(url, params), checks);
}
