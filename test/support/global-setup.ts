// Runs once before the suite: e2e tests execute the compiled CLI/daemon, so dist/ must exist.
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  if (!existsSync('dist/src/cli/main.js') && !process.env.AIVAULT_SKIP_BUILD) {
    execFileSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' });
  }
}
