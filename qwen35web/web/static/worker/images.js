// Images for the model in the browser, prepared as the native runtime prepares them with Pillow
// (qwen35web/runtime/native/image_decode.py, which does what transformers' PIL image processor does):
//   1. decode with the browser: upright by its EXIF orientation, no colour management (PIL applies
//      no ICC profile either), read back as 8-bit RGBA;
//   2. composite alpha onto white with PIL's integer arithmetic (alpha_composite, then
//      convert("RGB")); an opaque pixel stays as it is;
//   3. resize to the model's size with PIL's resampling (Image.resize: separable, horizontal pass
//      then vertical, the filter's support widened by the downscale factor, coefficients normalised
//      and rounded to 22-bit fixed point, sums rounded and clipped to 0..255).
// The model's size comes from the runtime (`targetSize`: smart_resize and the limits, in Python), so
// the sizing rule and the refusals have one source.
//
//   prepareImage(source, {targetSize, resample}) -> {height, width, rgb, sourceWidth, sourceHeight}
//     source: Blob | File | ImageBitmap | URL string; rgb: Uint8Array [height, width, 3]
//
// Works in a page and in a worker (createImageBitmap and OffscreenCanvas exist in both).

import { coded } from "../errors.mjs";

// PIL's fixed point: 8 bits of result, 2 of headroom for overshooting filters (Resample.c).
const PRECISION_BITS = 32 - 8 - 2;
const HALF = 1 << (PRECISION_BITS - 1);
const ONE = 1 << PRECISION_BITS;
const BICUBIC_A = -0.5;
// Hamming's constants are C floats (0.54f, 0.46f) widened to double.
const HAMMING_0 = Math.fround(0.54);
const HAMMING_1 = Math.fround(0.46);

function sinc(x) {
  if (x === 0) return 1;
  const t = x * Math.PI;
  return Math.sin(t) / t;
}

// PIL's filters by resampling number (PIL.Image.Resampling): the kernel and its support at scale 1.
// Nearest (0) is an affine transform in PIL, not a convolution; it is refused (Qwen uses bicubic, 3).
export const FILTERS = {
  1: { name: "lanczos", support: 3, kernel: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
  2: { name: "bilinear", support: 1, kernel: (x) => (Math.abs(x) < 1 ? 1 - Math.abs(x) : 0) },
  3: {
    name: "bicubic",
    support: 2,
    kernel: (v) => {
      const x = Math.abs(v);
      if (x < 1) return ((BICUBIC_A + 2) * x - (BICUBIC_A + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * BICUBIC_A;
      return 0;
    },
  },
  4: { name: "box", support: 0.5, kernel: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  5: {
    name: "hamming",
    support: 1,
    kernel: (v) => {
      const x = Math.abs(v);
      if (x === 0) return 1;
      if (x >= 1) return 0;
      const t = x * Math.PI;
      return (Math.sin(t) / t) * (HAMMING_0 + HAMMING_1 * Math.cos(t));
    },
  },
};

// Per output index: the first input index, the tap count and ksize fixed-point weights.
// Shapes: bounds Int32Array [outSize, 2]; weights Int32Array [outSize, ksize].
export function coefficients(inSize, outSize, filter) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1); // downscaling widens the kernel: antialiasing
  const support = filter.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const inverse = 1 / filterScale;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const taps = new Float64Array(ksize);
  for (let out = 0; out < outSize; out++) {
    const center = (out + 0.5) * scale;
    const first = Math.max(Math.trunc(center - support + 0.5), 0); // C's (int) truncates
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - first;
    let total = 0;
    for (let i = 0; i < count; i++) {
      taps[i] = filter.kernel((i + first - center + 0.5) * inverse); // times 1/scale, as PIL (not divided)
      total += taps[i];
    }
    for (let i = 0; i < count; i++) {
      const w = total !== 0 ? taps[i] / total : taps[i];
      weights[out * ksize + i] = Math.trunc(w < 0 ? -0.5 + w * ONE : 0.5 + w * ONE);
    }
    bounds[out * 2] = first;
    bounds[out * 2 + 1] = count;
  }
  return { bounds, weights, ksize };
}

function clip8(sum) {
  const v = sum >> PRECISION_BITS; // sums stay within int32, as in PIL
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

// Rows [rowFirst, rowFirst + rows) of an RGB image [height, width, 3] resampled across to outWidth.
function resampleAcross(rgb, width, rowFirst, rows, outWidth, co) {
  const out = new Uint8Array(rows * outWidth * 3);
  const { bounds, weights, ksize } = co;
  for (let y = 0; y < rows; y++) {
    const row = (rowFirst + y) * width * 3;
    for (let x = 0; x < outWidth; x++) {
      const first = bounds[x * 2];
      const count = bounds[x * 2 + 1];
      const k = x * ksize;
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let i = 0; i < count; i++) {
        const p = row + (first + i) * 3;
        const w = weights[k + i];
        r += rgb[p] * w;
        g += rgb[p + 1] * w;
        b += rgb[p + 2] * w;
      }
      const o = (y * outWidth + x) * 3;
      out[o] = clip8(r);
      out[o + 1] = clip8(g);
      out[o + 2] = clip8(b);
    }
  }
  return out;
}

// An RGB image [.., width, 3] resampled down the rows to outHeight; bounds index its rows from rowFirst.
function resampleDown(rgb, width, rowFirst, outHeight, co) {
  const out = new Uint8Array(outHeight * width * 3);
  const { bounds, weights, ksize } = co;
  const stride = width * 3;
  for (let y = 0; y < outHeight; y++) {
    const first = bounds[y * 2] - rowFirst;
    const count = bounds[y * 2 + 1];
    const k = y * ksize;
    const o = y * stride;
    for (let c = 0; c < stride; c++) {
      let sum = HALF;
      for (let i = 0; i < count; i++) sum += rgb[(first + i) * stride + c] * weights[k + i];
      out[o + c] = clip8(sum);
    }
  }
  return out;
}

// Pillow 13 runs the vertical pass first when the height shrinks by more than twice the columns the
// width loses (measured against Pillow 13.0.0 on thousands of shapes; earlier Pillow always went
// horizontal first). The order matters: the intermediate image is rounded to 8 bits.
function verticalFirst(width, height, outWidth, outHeight) {
  return outHeight < height && height - outHeight > 2 * (width - outWidth);
}

// PIL's Image.resize((outWidth, outHeight), resample) of an 8-bit RGB image [height, width, 3].
export function resizeRGB(rgb, width, height, outWidth, outHeight, resample = 3) {
  const filter = FILTERS[resample];
  if (!filter) {
    throw coded(
      "bad-input",
      `resampling filter ${resample} is not supported in the page (only 1-5; the model's is usually 3, bicubic)`,
    );
  }
  if (outWidth === width && outHeight === height) return rgb.slice();
  const down = outHeight !== height ? coefficients(height, outHeight, filter) : null;
  const across = outWidth !== width ? coefficients(width, outWidth, filter) : null;
  if (!across) return resampleDown(rgb, width, 0, outHeight, down);
  if (!down) return resampleAcross(rgb, width, 0, height, outWidth, across);
  if (verticalFirst(width, height, outWidth, outHeight)) {
    return resampleAcross(resampleDown(rgb, width, 0, outHeight, down), width, 0, outHeight, outWidth, across);
  }
  // Only the input rows the vertical pass reads are resampled across (as PIL does; same values).
  const rowFirst = down.bounds[0];
  const rowEnd = down.bounds[outHeight * 2 - 2] + down.bounds[outHeight * 2 - 1];
  const narrowed = resampleAcross(rgb, width, rowFirst, rowEnd - rowFirst, outWidth, across);
  return resampleDown(narrowed, outWidth, rowFirst, outHeight, down);
}

// RGBA [n, 4] -> RGB [n, 3] over white, as PIL's alpha_composite(white, image).convert("RGB"):
// coefficients in 7 extra bits, division by 255 as ((t >> 8) + t) >> 8. An opaque pixel (a = 255)
// comes out unchanged, so images without alpha are simply stripped of it.
export function compositeOnWhite(rgba) {
  const n = rgba.length >> 2;
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const a = rgba[i * 4 + 3];
    for (let c = 0; c < 3; c++) {
      const v = rgba[i * 4 + c];
      if (a === 255) rgb[i * 3 + c] = v;
      else if (a === 0) rgb[i * 3 + c] = 255;
      else {
        const t = v * a * 128 + 255 * (255 - a) * 128 + (0x80 << 7);
        rgb[i * 3 + c] = (((t >> 8) + t) >> 8) >> 7;
      }
    }
  }
  return rgb;
}

function describe(source) {
  if (typeof source === "string") return source.length > 80 ? `${source.slice(0, 77)}...` : source;
  if (typeof File !== "undefined" && source instanceof File && source.name) return source.name;
  return "the image";
}

async function blobOf(source, name) {
  if (typeof source !== "string") return source;
  let response;
  try {
    response = await fetch(source);
  } catch (err) {
    throw coded("network", `${name}: the image could not be fetched (${err.message})`);
  }
  if (!response.ok) throw coded("bad-input", `${name}: the server answered HTTP ${response.status}`);
  return response.blob();
}

// {bitmap, owned}: an ImageBitmap of the source, upright, alpha not premultiplied, no colour conversion.
async function bitmapOf(source, name) {
  if (typeof ImageBitmap !== "undefined" && source instanceof ImageBitmap) return { bitmap: source, owned: false };
  const isBlob = typeof source === "string" || (typeof Blob !== "undefined" && source instanceof Blob);
  if (!isBlob) {
    const kind = source === null ? "null" : typeof source === "object" ? source.constructor?.name || "object" : typeof source;
    throw coded("bad-input", `an image must be a Blob, File, ImageBitmap or URL string, not ${kind}`);
  }
  const blob = await blobOf(source, name);
  if (blob.size === 0) throw coded("bad-input", `${name} is empty (0 bytes)`);
  try {
    /** @type {ImageBitmapOptions} */
    const options = { imageOrientation: "from-image", premultiplyAlpha: "none", colorSpaceConversion: "none" };
    return { bitmap: await createImageBitmap(blob, options), owned: true };
  } catch {
    throw coded("bad-input", `${name} is not an image (unknown or unsupported format)`);
  }
}

// The bitmap's pixels as RGBA [height, width, 4]. The canvas keeps them premultiplied, which loses
// colour where alpha is small; composited onto white the result is still PIL's exactly (measured for
// every colour and alpha pair, tests/browser/test_images.py), so no WebGL read-back is needed.
function rgbaOf(bitmap) {
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.imageSmoothingEnabled = false;
  context.drawImage(bitmap, 0, 0);
  return context.getImageData(0, 0, bitmap.width, bitmap.height).data;
}

// `targetSize(height, width)` -> [height, width] (may be async; throws a bad-input error for sizes the
// model refuses). Errors are {code, message} Errors (errors.mjs), the message naming the image.
export async function prepareImage(source, { targetSize, resample = 3 }) {
  const name = describe(source);
  const { bitmap, owned } = await bitmapOf(source, name);
  try {
    const sourceWidth = bitmap.width;
    const sourceHeight = bitmap.height;
    if (!sourceWidth || !sourceHeight) throw coded("bad-input", `${name} has no pixels (${sourceWidth}x${sourceHeight})`);
    let size;
    try {
      size = await targetSize(sourceHeight, sourceWidth); // before the pixels are read: a huge one stops here
    } catch (err) {
      throw coded(err.code || "bad-input", `${name}: ${err.message}`);
    }
    const [height, width] = size;
    const rgb = resizeRGB(compositeOnWhite(rgbaOf(bitmap)), sourceWidth, sourceHeight, width, height, resample);
    return { height, width, rgb, sourceWidth, sourceHeight };
  } finally {
    if (owned) bitmap.close();
  }
}
