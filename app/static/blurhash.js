// BlurHash decoding: a short string -> the RGBA pixels of a blurred preview.
//
// A hash is base 83 text: one character for the number of components in x
// and y, one for the quantised largest AC value, four for the DC component
// (the average colour, sRGB) and two per AC component (three signed values
// of 19 steps each). The picture is the sum of the components, each a cosine
// in x times a cosine in y, added up in linear light and turned back to sRGB.

const DIGITS =
  "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";

function base83(text) {
  let value = 0;
  for (const character of text) {
    const digit = DIGITS.indexOf(character);
    if (digit < 0) {
      throw new Error(`BlurHash has a character outside base 83: "${character}".`);
    }
    value = value * 83 + digit;
  }
  return value;
}

function toLinear(channel) {
  const value = channel / 255;
  return value <= 0.04045 ? value / 12.92 : ((value + 0.055) / 1.055) ** 2.4;
}

function toSrgb(linear) {
  const value = Math.min(1, Math.max(0, linear));
  const encoded = value <= 0.0031308 ? value * 12.92 : 1.055 * value ** (1 / 2.4) - 0.055;
  return Math.round(encoded * 255);
}

function signedSquare(value) {
  return Math.sign(value) * value * value;
}

function dcColour(value) {
  return [toLinear(value >> 16), toLinear((value >> 8) & 255), toLinear(value & 255)];
}

function acColour(value, scale) {
  const red = Math.floor(value / (19 * 19));
  const green = Math.floor(value / 19) % 19;
  const blue = value % 19;
  return [red, green, blue].map((step) => signedSquare((step - 9) / 9) * scale);
}

/** The components of a hash: {columns, rows, colours: [[r, g, b] linear, ...]}. */
export function components(hash, punch = 1) {
  if (typeof hash !== "string" || hash.length < 6) {
    throw new Error("BlurHash must be a string of at least 6 characters.");
  }
  const size = base83(hash[0]);
  const columns = (size % 9) + 1;
  const rows = Math.floor(size / 9) + 1;
  const expected = 4 + 2 * columns * rows;
  if (hash.length !== expected) {
    throw new Error(
      `BlurHash of ${columns}x${rows} components must be ${expected} characters, ` +
        `not ${hash.length}.`,
    );
  }
  const scale = ((base83(hash[1]) + 1) / 166) * punch;
  const colours = [dcColour(base83(hash.slice(2, 6)))];
  for (let start = 6; start < expected; start += 2) {
    colours.push(acColour(base83(hash.slice(start, start + 2)), scale));
  }
  return { columns, rows, colours };
}

function cosines(count, length) {
  // cosines[i][p]: the i-th basis function at pixel p.
  return Array.from({ length: count }, (_, i) =>
    Float64Array.from({ length }, (_, p) => Math.cos((Math.PI * i * p) / length)),
  );
}

/** RGBA pixels (a Uint8ClampedArray of width*height*4) for `hash`. */
export function decode(hash, width, height, punch = 1) {
  const { columns, rows, colours } = components(hash, punch);
  const across = cosines(columns, width);
  const down = cosines(rows, height);
  const pixels = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let red = 0;
      let green = 0;
      let blue = 0;
      for (let j = 0; j < rows; j++) {
        for (let i = 0; i < columns; i++) {
          const basis = across[i][x] * down[j][y];
          const colour = colours[j * columns + i];
          red += colour[0] * basis;
          green += colour[1] * basis;
          blue += colour[2] * basis;
        }
      }
      const offset = 4 * (y * width + x);
      pixels[offset] = toSrgb(red);
      pixels[offset + 1] = toSrgb(green);
      pixels[offset + 2] = toSrgb(blue);
      pixels[offset + 3] = 255;
    }
  }
  return pixels;
}

/** Paint `hash` onto `canvas` at its current size; returns the canvas. */
export function paint(canvas, hash, punch = 1) {
  const { width, height } = canvas;
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  image.data.set(decode(hash, width, height, punch));
  context.putImageData(image, 0, 0);
  return canvas;
}
