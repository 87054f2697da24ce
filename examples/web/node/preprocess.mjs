// node preprocess.mjs DRAWINGS.json OUT.json
// Runs mnist_like.js on pictures given as {"width", "height", "pixels": base64 of uint8 gray} and writes each
// 28x28 result as base64; tests/test_web_node.py checks them against contract.mnist_like.
import { readFileSync, writeFileSync } from 'node:fs';

import { mnistLike } from '../mnist_like.js';

const [drawingsPath, outPath] = process.argv.slice(2);
const drawings = JSON.parse(readFileSync(drawingsPath, 'utf8'));
const results = drawings.map(({ width, height, pixels }) =>
  Buffer.from(mnistLike(new Uint8Array(Buffer.from(pixels, 'base64')), width, height)).toString('base64'));
writeFileSync(outPath, JSON.stringify(results));
