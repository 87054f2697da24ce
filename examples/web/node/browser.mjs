// node browser.mjs URL DRAWINGS.json OUT.json SCREENSHOT.png --chromium PATH
// Opens the drawing page in Chromium (installed apart, e.g. Debian's; playwright-core downloads no browser) and draws
// each drawing of DRAWINGS.json with the mouse: a drawing is a list of strokes, a stroke a polyline of [x, y] in
// 0-1 units of the pad. After each drawing it records what the page shows: the label, the probabilities, the pad's
// grey pixels and the 28x28 input made of them; after the last it saves a screenshot, then presses Clear and records
// the page once more. tests/test_web_browser.py checks the records against Python.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const START_TIMEOUT_MS = 30_000;
const STEPS = 4; // mouse moves between two points of a polyline, as a hand sends them

const { values, positionals } = parseArgs({ allowPositionals: true, options: { chromium: { type: 'string' } } });
const [url, drawingsPath, outPath, screenshotPath] = positionals;
const drawings = JSON.parse(readFileSync(drawingsPath, 'utf8'));

async function open(browser) {
  const page = await browser.newPage({ viewport: { width: 760, height: 520 } });
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => { if (message.type() === 'error') errors.push(message.text()); });
  await page.goto(url);
  try {
    await page.waitForFunction(() => window.mnistEdge, null, { timeout: START_TIMEOUT_MS });
  } catch {
    throw new Error(`the page did not start: ${errors.join('; ') || 'no error reported'}`);
  }
  const problem = await page.evaluate(() => window.mnistEdge.ready);
  if (problem) throw new Error(problem);
  return page;
}

async function draw(page, strokes) {
  const pad = await page.locator('#pad').boundingBox();
  for (const stroke of strokes) {
    const [first, ...rest] = stroke.map(([x, y]) => [pad.x + x * pad.width, pad.y + y * pad.height]);
    await page.mouse.move(...first);
    await page.mouse.down();
    for (const point of rest) await page.mouse.move(...point, { steps: STEPS });
    await page.mouse.up();
  }
}

function shown(page) {
  return page.evaluate(async () => {
    await window.mnistEdge.settled();
    const { state } = window.mnistEdge;
    const pad = document.getElementById('pad');
    return {
      label: document.getElementById('label').textContent,
      bars: Array.from(document.querySelectorAll('#bars .value'), (value) => value.textContent),
      probabilities: state.probabilities,
      input: Array.from(state.input),
      drawing: Array.from(state.drawing),
      width: pad.width,
      height: pad.height,
    };
  });
}

const browser = await chromium.launch({ executablePath: values.chromium, args: ['--disable-dev-shm-usage'] });
try {
  const page = await open(browser);
  const records = [];
  for (const strokes of drawings) {
    await page.click('#clear');
    await draw(page, strokes);
    records.push(await shown(page));
  }
  await page.screenshot({ path: screenshotPath, fullPage: true });
  await page.click('#clear');
  writeFileSync(outPath, JSON.stringify({ drawings: records, cleared: await shown(page) }));
} finally {
  await browser.close();
}
