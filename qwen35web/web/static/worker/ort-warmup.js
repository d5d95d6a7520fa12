// onnxruntime-web starts its wasm (compile, instantiate, thread pool) at the first session it creates.
// One Identity graph, created while Pyodide starts and the weights load, moves that cost off the path to
// ready. The graph is encoded here by hand (protobuf wire format) so the site needs no extra file.

const varint = (value) => {
  const bytes = [];
  for (; value > 127; value >>>= 7) bytes.push((value & 127) | 128);
  bytes.push(value);
  return bytes;
};
const integer = (field, value) => [...varint(field << 3), ...varint(value)];
const message = (field, bytes) => [...varint((field << 3) | 2), ...varint(bytes.length), ...bytes];
const text = (field, value) => message(field, Array.from(new TextEncoder().encode(value)));

// ModelProto {ir_version 8, graph {node Identity(x) -> y, input x, output y: float[1]}, opset 18}
function identityModel() {
  const floatOne = message(1, [...integer(1, 1), ...message(2, message(1, integer(1, 1)))]); // TypeProto
  const value = (name) => [...text(1, name), ...message(2, floatOne)]; // ValueInfoProto
  const node = [...text(1, "x"), ...text(2, "y"), ...text(4, "Identity")];
  const graph = [...message(1, node), ...text(2, "warmup"), ...message(11, value("x")), ...message(12, value("y"))];
  return new Uint8Array([...integer(1, 8), ...message(7, graph), ...message(8, integer(2, 18))]);
}

// Start `ort`'s runtime for `backend` now; a failure here is only logged (the real session reports it).
export async function warmUp(ort, backend) {
  try {
    const session = await ort.InferenceSession.create(identityModel(), { executionProviders: [backend] });
    await session.release();
  } catch (err) {
    console.warn(`onnxruntime-web warm-up failed (${err.message}); the model session will start it`);
  }
}
