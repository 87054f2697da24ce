// ONNX Runtime Web in Node: the int8 model on the WebAssembly backend, one thread, as a phone's browser runs it.
import { readFileSync } from 'node:fs';

import * as ort from 'onnxruntime-web';

import { SIDE, toModelInput } from '../mnist_like.js';

export const PIXELS = SIDE * SIDE;
export const CLASSES = 10; // the contract's logits: [N, 10]

export async function openSession(modelPath) {
  ort.env.wasm.numThreads = 1;
  return ort.InferenceSession.create(readFileSync(modelPath), { executionProviders: ['wasm'] });
}

/** uint8 images (count x 784, MNIST's layout) -> the model's input feed. */
export function feedOf(session, pixels) {
  const count = pixels.length / PIXELS;
  return { [session.inputNames[0]]: new ort.Tensor('float32', toModelInput(pixels), [count, 1, SIDE, SIDE]) };
}

/** uint8 images -> their logits, count x 10, from one run of the model. */
export async function logitsOf(session, pixels) {
  const outputs = await session.run(feedOf(session, pixels));
  return outputs[session.outputNames[0]].data;
}

/** A file of uint8 images, 784 bytes each. */
export function readImages(path) {
  return new Uint8Array(readFileSync(path));
}
