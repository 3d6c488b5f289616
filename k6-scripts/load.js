// perfpipe load test: one weighted pick per iteration (read_ratio aware), then think time.
// Config comes from env PERFPIPE_RUN_CONFIG; see docs/k6-script-contract.md.
import { buildOptions, runWeighted } from './lib/perfpipe.js';

export const options = buildOptions('load');

export default function () {
  runWeighted();
}
