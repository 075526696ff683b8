// Source-mode worker bootstrap (tests/dev via tsx only; production runs dist/workers/*.js directly).
// Node 20 does not apply `--import tsx` to worker threads, so register tsx's loader here, then load the
// real TypeScript worker module named in workerData.__aivaultWorker and re-export its piscina handlers
// (default, and `attach` for the request worker's call port).
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const mod = await import(workerData.__aivaultWorker);
export default mod.default;
export const attach = mod.attach;
