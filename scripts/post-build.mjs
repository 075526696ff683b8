// Make the two bins executable after tsc (tsc does not preserve modes).
import { chmodSync, existsSync } from 'node:fs';
for (const bin of ['dist/src/cli-bundle/main.js', 'dist/src/cli/main.js', 'dist/src/front/main.js']) {
  if (existsSync(bin)) chmodSync(bin, 0o755);
}
