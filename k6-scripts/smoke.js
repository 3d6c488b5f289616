// perfpipe smoke test: every configured request once per iteration (all endpoints validated),
// then think time. Config comes from env PERFPIPE_RUN_CONFIG; see docs/k6-script-contract.md.
import { buildOptions, runSweep } from './lib/perfpipe.js';

export const options = buildOptions('smoke');

export default function () {
  runSweep();
}
