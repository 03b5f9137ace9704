// vlm serve through the official OpenAI client for Node (npm "openai"), as an application uses it.
// usage: node openai_client.mjs BASE_URL KEY IMAGE_PATH FILE_URL PROMPT EXPECTED_RUN_JSON
// EXPECTED_RUN_JSON is `vlm run --greedy --json` of the same image and prompt (16 tokens): every
// greedy answer here must have its ids and text. Exits 1 after listing what failed.
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';

const [baseURL, apiKey, imagePath, fileURL, prompt, runJson] = process.argv.slice(2);
const expected = JSON.parse(readFileSync(runJson, 'utf8'));
const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey, maxRetries: 0, timeout: 120000 });
const dataURL = `data:image/png;base64,${readFileSync(imagePath).toString('base64')}`;
let failures = 0;

function check(what, cond, detail) {
  if (cond) return;
  failures++;
  console.error(`FAIL ${what}${detail === undefined ? '' : `: ${JSON.stringify(detail)}`}`);
}

function messages(url) {
  return [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }, { type: 'text', text: prompt }] }];
}

// temperature 0 and repetition_penalty 1.0 (vLLM's extension, passed through in the body) = greedy
const greedy = { model: 'tiny', max_tokens: 16, temperature: 0, repetition_penalty: 1.0, return_token_ids: true };

async function nonStreaming(url, what) {
  const r = await client.chat.completions.create({ ...greedy, messages: messages(url) });
  const c = r.choices[0];
  check(`${what}: text`, c.message.content === expected.text, [c.message.content, expected.text]);
  check(`${what}: ids`, JSON.stringify(c.token_ids) === JSON.stringify(expected.generated_ids), c.token_ids);
  check(`${what}: finish_reason`, c.finish_reason === 'length', c.finish_reason);
  check(`${what}: usage`, r.usage.completion_tokens === 16 && r.usage.prompt_tokens === expected.input_ids.length,
        r.usage);
  check(`${what}: vlm.images`, r.vlm.images.length === 1 && r.vlm.images[0].tokens > 0, r.vlm);
}

async function streaming(url, what) {
  const stream = await client.chat.completions.create({
    ...greedy, messages: messages(url), stream: true, stream_options: { include_usage: true },
  });
  let text = '', finish = null, usage = null, ids = null, chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    text += c.delta?.content ?? '';
    if (c.finish_reason) {
      finish = c.finish_reason;
      ids = c.token_ids;
    }
  }
  check(`${what}: text`, text === expected.text, [text, expected.text]);
  check(`${what}: ids in the last chunk`, JSON.stringify(ids) === JSON.stringify(expected.generated_ids), ids);
  check(`${what}: finish_reason`, finish === 'length', finish);
  check(`${what}: usage chunk`, usage && usage.completion_tokens === 16, usage);
  check(`${what}: several chunks`, chunks >= 3, chunks);
}

async function errors() {
  const models = await client.models.list();
  check('models.list', models.data.length === 1 && models.data[0].id === 'tiny', models.data);
  try {
    await client.chat.completions.create({ ...greedy, model: 'gpt-4o', messages: messages(dataURL) });
    check('unknown model refused', false);
  } catch (e) {
    check('unknown model: NotFoundError', e instanceof OpenAI.NotFoundError && e.status === 404, String(e));
  }
  try {
    await client.chat.completions.create({ ...greedy, n: 3, messages: messages(dataURL) });
    check('n = 3 refused', false);
  } catch (e) {
    check('n = 3: BadRequestError naming n', e instanceof OpenAI.BadRequestError && e.param === 'n', String(e));
  }
  const anonymous = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: 'wrong', maxRetries: 0 });
  try {
    await anonymous.chat.completions.create({ ...greedy, messages: messages(dataURL) });
    check('wrong key refused', false);
  } catch (e) {
    check('wrong key: AuthenticationError', e instanceof OpenAI.AuthenticationError && e.status === 401, String(e));
  }
}

try {
  await nonStreaming(dataURL, 'base64 image, non-streaming');
  await nonStreaming(fileURL, 'file:// image, non-streaming');
  await streaming(dataURL, 'base64 image, streaming');
  await streaming(fileURL, 'file:// image, streaming');
  await errors();
} catch (e) {
  failures++;
  console.error(`FAIL unexpected error: ${e?.stack ?? e}`);
}
if (failures) {
  console.error(`${failures} failure(s)`);
  process.exit(1);
}
console.log('ok: the OpenAI Node client agrees with vlm run --greedy');
