// node evaluate.mjs MODEL IMAGES OUT [--batch 256]
// Classifies a file of uint8 28x28 images (784 bytes each) with ONNX Runtime Web and writes their float32 logits
// (10 per image, little-endian) to OUT; tests/test_web_node.py compares them with Python ONNX Runtime's.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { CLASSES, PIXELS, logitsOf, openSession, readImages } from './session.mjs';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { batch: { type: 'string', default: '256' } } });
const [modelPath, imagesPath, outPath] = positionals;
const batch = Number(values.batch);
const session = await openSession(modelPath);
const images = readImages(imagesPath);
const count = images.length / PIXELS;
const logits = new Float32Array(count * CLASSES);
for (let start = 0; start < count; start += batch) {
  const end = Math.min(start + batch, count);
  logits.set(await logitsOf(session, images.subarray(start * PIXELS, end * PIXELS)), start * CLASSES);
}
writeFileSync(outPath, logits);
