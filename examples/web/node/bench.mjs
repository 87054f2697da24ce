// node --no-liftoff bench.mjs IMAGES MODEL... [--latency-calls 200] [--batch-calls 8]
// Times ONNX Runtime Web (WebAssembly, one thread) on each model, as benchmarks/inference.py times Python ONNX
// Runtime: seconds per call of a batch of 1 and of all the images in IMAGES, with a new session per model. Prints
// {model: {"latency": [...], "batch": [...]}} as JSON for benchmarks/web_inference.py.
import { parseArgs } from 'node:util';

import { PIXELS, feedOf, openSession, readImages } from './session.mjs';

// Untimed calls for this long first. Run it as `node --no-liftoff`: V8 otherwise starts WebAssembly from a quick
// baseline compile and optimizes hot functions in the background, which takes seconds for ONNX Runtime on a busy
// CPU, so the first model timed would be timed half on the baseline code.
const WARM_UP_MS = 250;

async function timed(session, feed, calls) {
  for (const start = performance.now(); performance.now() - start < WARM_UP_MS;) await session.run(feed);
  const seconds = [];
  for (let i = 0; i < calls; i++) {
    const start = performance.now();
    await session.run(feed);
    seconds.push((performance.now() - start) / 1000);
  }
  return seconds;
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { 'latency-calls': { type: 'string', default: '200' }, 'batch-calls': { type: 'string', default: '8' } },
});
const [imagesPath, ...models] = positionals;
const images = readImages(imagesPath);
const results = {};
for (const model of models) {
  const session = await openSession(model);
  results[model] = {
    latency: await timed(session, feedOf(session, images.subarray(0, PIXELS)), Number(values['latency-calls'])),
    batch: await timed(session, feedOf(session, images), Number(values['batch-calls'])),
  };
  await session.release();
}
console.log(JSON.stringify(results));
