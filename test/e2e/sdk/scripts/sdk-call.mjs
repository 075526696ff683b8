// An UNCHANGED agent: uses the official SDKs exactly as their docs say, configured only by the standard
// environment variables (OPENAI_BASE_URL/OPENAI_API_KEY, ANTHROPIC_BASE_URL/ANTHROPIC_API_KEY).
// Prints its whole environment and the results of a normal and a streaming call as one JSON line.
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const which = process.argv[2] ?? 'openai';
const out = { env: { ...process.env } };

if (which === 'openai' || which === 'both') {
  const client = new OpenAI();
  const normal = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'hello' }],
  });
  const stream = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'hello' }],
    stream: true,
  });
  let streamed = '';
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    streamed += chunk.choices[0]?.delta?.content ?? '';
  }
  out.openai = { normal: normal.choices[0]?.message?.content, streamed, chunks };
}

if (which === 'anthropic' || which === 'both') {
  const client = new Anthropic();
  const normal = await client.messages.create({
    model: 'claude-test',
    max_tokens: 64,
    messages: [{ role: 'user', content: 'hello' }],
  });
  const stream = client.messages.stream({
    model: 'claude-test',
    max_tokens: 64,
    messages: [{ role: 'user', content: 'hello' }],
  });
  let streamed = '';
  let events = 0;
  for await (const event of stream) {
    events++;
    if (event.type === 'content_block_delta' && event.delta.type === 'text_delta')
      streamed += event.delta.text;
  }
  const first = normal.content[0];
  out.anthropic = { normal: first?.type === 'text' ? first.text : null, streamed, events };
}

process.stdout.write(`${JSON.stringify(out)}\n`);
