// The drawing page: a pad to draw a digit on, the 28x28 input MNIST's rule makes of the drawing (mnist_like.js,
// the port of contract.mnist_like), and the int8 model's ten probabilities from ONNX Runtime Web, updated as the
// person draws. Everything runs in the browser; `make web` serves the repository, which holds the model.
import * as ort from './node_modules/onnxruntime-web/dist/ort.wasm.min.mjs';

import { SIDE, mnistLike, toModelInput } from './mnist_like.js';

const MODEL_URL = '../../models/mnist_int8.ort';
const PEN_WIDTH = 22; // pixels of the 280-pixel pad: MNIST's stroke width once the digit is scaled into 20x20

const pad = document.getElementById('pad');
const pen = pad.getContext('2d', { willReadFrequently: true });
const seen = document.getElementById('seen').getContext('2d');
const label = document.getElementById('label');
const status = document.getElementById('status');
const bars = Array.from({ length: 10 }, (_, digit) => {
  const item = document.createElement('li');
  item.innerHTML = `<span>${digit}</span><span class="bar"><span class="fill"></span></span><span class="value"></span>`;
  document.getElementById('bars').append(item);
  return item;
});

// What the page shows, open to tests/test_web_browser.py: the pad's grey pixels, the model's uint8 input, and the
// answer (null while the pad is empty).
const state = { drawing: null, input: new Uint8Array(SIDE * SIDE), probabilities: null, label: null };
let session = null;
let running = null; // the classification under way, if any
let stale = false; // the drawing changed since that classification read it
let last = null; // the pen's previous point while it touches the pad

function softmax(logits) {
  const top = Math.max(...logits);
  const exps = Array.from(logits, (logit) => Math.exp(logit - top));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

async function classify() {
  const { data, width, height } = pen.getImageData(0, 0, pad.width, pad.height);
  const drawing = Uint8Array.from({ length: width * height }, (_, i) => data[4 * i]); // white on black: red is grey
  const input = mnistLike(drawing, width, height);
  let probabilities = null;
  if (input.some((value) => value > 0)) {
    const image = new ort.Tensor('float32', toModelInput(input), [1, 1, SIDE, SIDE]);
    const outputs = await session.run({ [session.inputNames[0]]: image });
    probabilities = softmax(outputs[session.outputNames[0]].data);
  }
  const best = probabilities && probabilities.indexOf(Math.max(...probabilities));
  Object.assign(state, { drawing, input, probabilities, label: best });
  show();
}

function show() {
  label.textContent = state.label ?? '';
  bars.forEach((bar, digit) => {
    const p = state.probabilities?.[digit] ?? 0;
    bar.querySelector('.fill').style.setProperty('--p', p);
    bar.querySelector('.value').textContent = state.probabilities ? `${(100 * p).toFixed(1)} %` : '';
    bar.classList.toggle('top', digit === state.label);
  });
  const picture = seen.createImageData(SIDE, SIDE);
  state.input.forEach((value, i) => picture.data.set([value, value, value, 255], 4 * i));
  seen.putImageData(picture, 0, 0);
}

// One classification at a time (a session runs one call at a time); changes made meanwhile are read by the next,
// so the bars follow the pen without a queue of stale drawings.
function changed() {
  stale = true;
  if (session && !running) {
    running = (async () => {
      while (stale) {
        stale = false;
        await classify();
      }
    })().finally(() => { running = null; });
  }
}

function at(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
}

function dot([x, y]) {
  pen.beginPath();
  pen.arc(x, y, PEN_WIDTH / 2, 0, 2 * Math.PI);
  pen.fill();
  changed();
}

function line([x0, y0], [x1, y1]) {
  pen.beginPath();
  pen.moveTo(x0, y0);
  pen.lineTo(x1, y1);
  pen.stroke();
  changed();
}

function clearPad() {
  pen.fillStyle = 'black';
  pen.fillRect(0, 0, pad.width, pad.height);
  Object.assign(pen, { fillStyle: 'white', strokeStyle: 'white', lineWidth: PEN_WIDTH, lineCap: 'round',
    lineJoin: 'round' });
  changed();
}

pad.addEventListener('pointerdown', (event) => {
  pad.setPointerCapture(event.pointerId);
  last = at(event);
  dot(last);
});
pad.addEventListener('pointermove', (event) => {
  if (!last) return;
  const next = at(event);
  line(last, next);
  last = next;
});
for (const type of ['pointerup', 'pointercancel']) pad.addEventListener(type, () => { last = null; });
document.getElementById('clear').addEventListener('click', clearPad);
clearPad();

ort.env.wasm.numThreads = 1; // a 9k-parameter model needs no threads, and threads need a cross-origin-isolated page
const ready = ort.InferenceSession.create(MODEL_URL, { executionProviders: ['wasm'] }).then((created) => {
  session = created;
  status.textContent = 'Draw one digit with the mouse or a finger.';
  changed();
  return null;
}, (error) => {
  status.textContent = `The model could not be loaded from ${MODEL_URL}: ${error.message}`;
  status.classList.add('error');
  return status.textContent;
});

// For tests: `ready` gives null once the model is loaded (else the reason), `settled()` waits until what the page
// shows belongs to the drawing on the pad.
window.mnistEdge = {
  state,
  ready,
  settled: async () => {
    while (running) await running;
  },
};
