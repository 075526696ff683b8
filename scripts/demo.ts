/**
 * The main job on embedded defaults, no internet: a file-key dev vault in ./.aivault-demo, a local HTTPS
 * mock of api.openai.com (throwaway test CA), and the real CLI + aivaultd doing what an agent would do.
 * Run with `npm run demo` (builds first). Shows that the upstream received the key and the caller did not.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { startHttpsUpstream } from '../test/support/https-upstream.js';
import { createTestCa } from '../test/support/test-ca.js';

const CLI = resolve('dist/src/cli-bundle/main.js');
const vaultDir = resolve('.aivault-demo');
const demoKey = `sk-demo-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;

function say(text: string): void {
  process.stdout.write(`\n\x1b[1m▶ ${text}\x1b[0m\n`);
}

/** Async on purpose: the mock upstream lives in this process, so a blocking spawn would starve it. */
async function aivault(
  args: string[],
  env: NodeJS.ProcessEnv,
  input?: string,
): Promise<{ code: number; out: string }> {
  process.stdout.write(
    `\x1b[2m$ aivault ${args.map((a) => (/[\s{}"&?]/.test(a) ? `'${a}'` : a)).join(' ')}\x1b[0m\n`,
  );
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    const text = d.toString('utf8');
    if (text.includes(demoKey)) throw new Error('the demo key leaked into CLI output');
    out += text;
    process.stdout.write(text);
  });
  child.stderr.on('data', (d: Buffer) => {
    out += d.toString('utf8');
    process.stdout.write(d);
  });
  child.stdin.end(input ?? '');
  const code = await new Promise<number>((r) => child.on('close', (c) => r(c ?? 1)));
  if (out.includes(demoKey)) throw new Error('the demo key leaked into CLI output');
  if (out !== '' && !out.endsWith('\n')) process.stdout.write('\n');
  return { code, out };
}

async function main(): Promise<void> {
  rmSync(vaultDir, { recursive: true, force: true });
  const ca = createTestCa();
  const upstream = await startHttpsUpstream();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AIVAULT_DIR: vaultDir,
    AIVAULT_DEV_RESOLVE: `api.openai.com=127.0.0.1:${upstream.port}`,
    AIVAULT_DEV_CA_CERT_PATH: ca.caCertPath,
  };
  try {
    say('1. A dev vault (file key in .aivault-demo; dev overrides are honoured only because of --dev)');
    await aivault(['init', '--dev'], env);
    await aivault(['status'], env);

    say('2. Store the key once: it is pinned to openai and the credential auto-provisions');
    await aivault(['secrets', 'create', '--name', 'OPENAI_API_KEY', '--value-stdin'], env, demoKey);
    await aivault(['secrets', 'list'], env);

    say('3. Callers see capabilities, never keys');
    await aivault(['capability', 'describe', 'openai/chat-completions'], env);

    say('4. Invoke through aivaultd (auto-started on a unix socket); the mock upstream echoes what it got');
    const body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}';
    await aivault(
      [
        'json',
        'openai/chat-completions',
        '--header',
        'content-type=application/json',
        '--body',
        body,
        '--exclude-field',
        'headers',
      ],
      env,
    );
    const seen = upstream.requests.at(-1);
    const auth = String(seen?.headers.authorization ?? '');
    process.stdout.write(
      `upstream saw: ${seen?.method} ${seen?.path}, authorization = ${auth === `Bearer ${demoKey}` ? 'Bearer <the real key> ✔' : 'MISSING ✘'}\n`,
    );

    say('5. Stream server-sent events as they arrive');
    await aivault(
      [
        'invoke',
        'openai/chat-completions',
        '--stream',
        '--method',
        'POST',
        '--path',
        '/v1/chat/completions/sse?n=3&interval=200',
      ],
      env,
    );

    say('6. Attacks fail closed');
    await aivault(
      ['invoke', 'openai/chat-completions', '--header', 'authorization=Bearer stolen', '--body', '{}'],
      env,
    );
    await aivault(
      ['invoke', 'openai/chat-completions', '--path', '/v1/chat/completions/../../admin', '--body', '{}'],
      env,
    );
    await aivault(
      [
        'invoke',
        'openai/chat-completions',
        '--request',
        '{"method":"POST","path":"/v1/chat/completions","url":"https://evil.example"}',
      ],
      env,
    );

    say('7. Every call is audited (never with a secret)');
    await aivault(['audit', '--limit', '6'], env);
  } finally {
    const { stopDaemon } = await import('../src/cli/commands/daemon.js');
    await stopDaemon(resolve(vaultDir, 'run', 'aivaultd.sock')).catch(() => undefined);
    await upstream.close();
  }
  process.stdout.write('\nDone. The vault is in .aivault-demo (delete it when you like).\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${(err as Error).message}\n`);
  process.exit(1);
});
