// The JavaScript port of mnist_edge/contract.py's `mnist_like` and `to_model_input`: any grayscale picture of one
// digit (white on black) becomes the model's 28x28 input by the rule MNIST was made with. The ink's bounding box
// (pixels above 0.1 on the 0-1 scale) is scaled, area-averaged, to fit 20x20 keeping its aspect ratio, then placed
// in the 28x28 field with its centre of mass at the centre (kept whole inside the field); white on black, 0-1 scale.
//
// It follows contract.mnist_like step for step and, like it, computes in integers (pixels 0-255, overlaps in whole
// units, rounding half up by integer division), so both give the same bytes for the same picture, ties included;
// tests/test_web_node.py checks that. An ES module for the browser and Node alike.

export const SIDE = 28;
export const BOX = 20;
export const INK = 0.1;
export const PIXEL_MAX = 255;

// floor(numerator / denominator + 1/2) for integers below 2**53: contract._half_up.
function halfUp(numerator, denominator) {
  const top = 2 * numerator + denominator;
  const bottom = 2 * denominator;
  let quotient = Math.floor(top / bottom);
  // The division rounds to a double, which can land on the next integer: step back to the exact floor.
  if (quotient * bottom > top) quotient -= 1;
  else if ((quotient + 1) * bottom <= top) quotient += 1;
  return quotient;
}

// [sizeOut][sizeIn] overlaps of each input pixel with each output one, in units of 1/sizeOut of an input pixel:
// contract._area_weights.
function areaWeights(sizeIn, sizeOut) {
  return Array.from({ length: sizeOut }, (_, i) => Array.from({ length: sizeIn }, (_, j) =>
    Math.max(0, Math.min((i + 1) * sizeIn, (j + 1) * sizeOut) - Math.max(i * sizeIn, j * sizeOut))));
}

// Where a span of `size` pixels with this ink profile starts so that its centre of mass lands on the field's
// centre, kept whole inside the field: contract._offset.
function offset(profile, size) {
  let mass = 0;
  let moment = 0;
  profile.forEach((ink, i) => {
    mass += ink;
    moment += ink * (2 * i + 1);
  });
  return Math.min(Math.max(halfUp(SIDE * mass - moment, 2 * mass), 0), SIDE - size);
}

// The rows and columns that hold ink, as [top, bottom, left, right] (inclusive), or null for a picture without.
function inkBounds(gray, width, height) {
  let top = height, bottom = -1, left = width, right = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (gray[y * width + x] / PIXEL_MAX > INK) {
        top = Math.min(top, y);
        bottom = Math.max(bottom, y);
        left = Math.min(left, x);
        right = Math.max(right, x);
      }
    }
  }
  return bottom < 0 ? null : [top, bottom, left, right];
}

// One row of a matrix product: the `weights`-weighted sum of the rows of `values` ([weights.length][count], flat).
function weighted(weights, values, count) {
  const out = new Float64Array(count);
  weights.forEach((weight, j) => {
    if (weight) for (let k = 0; k < count; k++) out[k] += weight * values[j * count + k];
  });
  return out;
}

/**
 * Grey pixels (a Uint8Array, 0-255, row-major, `width` x `height`, white digit on black) -> Uint8Array(784), the
 * 28x28 picture contract.mnist_like makes of them. A picture without ink gives all zeros.
 */
export function mnistLike(gray, width, height) {
  const field = new Uint8Array(SIDE * SIDE);
  const bounds = inkBounds(gray, width, height);
  if (!bounds) return field;
  const [top, bottom, left, right] = bounds;
  const rows = bottom - top + 1;
  const cols = right - left + 1;
  const outRows = Math.max(1, halfUp(BOX * rows, Math.max(rows, cols)));
  const outCols = Math.max(1, halfUp(BOX * cols, Math.max(rows, cols)));
  // The crop times the column weights, then the row weights times that: whole numbers below 2**53, exact.
  const columnWeights = areaWeights(cols, outCols);
  const narrowed = new Float64Array(rows * outCols);
  for (let y = 0; y < rows; y++) {
    const line = gray.subarray((top + y) * width + left, (top + y) * width + right + 1);
    columnWeights.forEach((weights, k) => {
      narrowed[y * outCols + k] = weights.reduce((sum, weight, x) => sum + weight * line[x], 0);
    });
  }
  const box = areaWeights(rows, outRows).map((weights) => weighted(weights, narrowed, outCols));
  const rowProfile = box.map((row) => row.reduce((sum, ink) => sum + ink, 0));
  const colProfile = Array.from({ length: outCols }, (_, k) => box.reduce((sum, row) => sum + row[k], 0));
  const fieldTop = offset(rowProfile, outRows);
  const fieldLeft = offset(colProfile, outCols);
  box.forEach((row, i) => row.forEach((ink, k) => {
    field[(fieldTop + i) * SIDE + fieldLeft + k] = halfUp(ink, rows * cols); // the mean pixel, 0-255
  }));
  return field;
}

/** uint8 pixels -> the model's float32 values on the 0-1 scale: contract.to_model_input. */
export function toModelInput(pixels) {
  return Float32Array.from(pixels, (value) => value / PIXEL_MAX);
}
