// The demo page's tools: safe functions the model may call when the Settings' "Demo tools" switch is
// on — a calculator (calculator.js: parsed, never eval'd), the current date and time in the
// browser's time zone, and a unit converter. DEMO_TOOLS are their OpenAI function schemas (they go
// with the request); runToolCall() runs one call the model made and always gives the text of a
// `tool` message: the result as JSON, or {"error": ...} for an unknown tool, arguments that are not
// a JSON object of the right fields, or a failure of the tool itself. It never throws.

import { evaluate } from "./calculator.js";

// unit -> [dimension, factor to the dimension's base unit] (temperatures convert by formula).
const UNITS = {
  m: ["length", 1],
  km: ["length", 1000],
  cm: ["length", 0.01],
  mm: ["length", 0.001],
  mi: ["length", 1609.344],
  yd: ["length", 0.9144],
  ft: ["length", 0.3048],
  in: ["length", 0.0254],
  kg: ["mass", 1],
  g: ["mass", 0.001],
  lb: ["mass", 0.45359237],
  oz: ["mass", 0.028349523125],
  l: ["volume", 1],
  ml: ["volume", 0.001],
  gal: ["volume", 3.785411784],
  "km/h": ["speed", 1 / 3.6],
  "m/s": ["speed", 1],
  mph: ["speed", 0.44704],
  C: ["temperature", null],
  F: ["temperature", null],
  K: ["temperature", null],
};

const UNIT_NAMES = Object.keys(UNITS);

export const DEMO_TOOLS = [
  {
    type: "function",
    function: {
      name: "calculator",
      description: "Evaluate an arithmetic expression: + - * / % ^, parentheses, pi, e, sqrt, abs, round, floor, ceil, sin, cos, tan, ln, log, exp, min, max, pow.",
      parameters: {
        type: "object",
        properties: { expression: { type: "string", description: "For example (2 + 3) * 4 ^ 2" } },
        required: ["expression"],
      },
    },
  },
  {
    type: "function",
    function: {
      name: "current_time",
      description: "The current date, time and time zone where the person is.",
      parameters: { type: "object", properties: {} },
    },
  },
  {
    type: "function",
    function: {
      name: "convert_units",
      description: "Convert a value between units of length, mass, volume, speed or temperature.",
      parameters: {
        type: "object",
        properties: {
          value: { type: "number" },
          from: { type: "string", enum: UNIT_NAMES },
          to: { type: "string", enum: UNIT_NAMES },
        },
        required: ["value", "from", "to"],
      },
    },
  },
];

class ToolInputError extends Error {}

function currentTime(_args, now = new Date()) {
  const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const offset = -now.getTimezoneOffset();
  const sign = offset < 0 ? "-" : "+";
  const pad = (n) => String(Math.floor(Math.abs(n))).padStart(2, "0");
  return {
    local: now.toLocaleString("en-GB", { dateStyle: "full", timeStyle: "long", timeZone }),
    iso: now.toISOString(),
    time_zone: timeZone,
    utc_offset: `${sign}${pad(offset / 60)}:${pad(offset % 60)}`,
  };
}

function toKelvin(value, unit) {
  if (unit === "C") return value + 273.15;
  if (unit === "F") return ((value - 32) * 5) / 9 + 273.15;
  return value;
}

function fromKelvin(kelvin, unit) {
  if (unit === "C") return kelvin - 273.15;
  if (unit === "F") return ((kelvin - 273.15) * 9) / 5 + 32;
  return kelvin;
}

function convertUnits({ value, from, to }) {
  if (typeof value !== "number" || !Number.isFinite(value)) throw new ToolInputError("'value' must be a number");
  for (const [name, unit] of [["from", from], ["to", to]]) {
    if (!Object.hasOwn(UNITS, unit)) throw new ToolInputError(`'${name}' must be one of ${UNIT_NAMES.join(", ")}`);
  }
  const [dimension, fromFactor] = UNITS[from];
  const [toDimension, toFactor] = UNITS[to];
  if (dimension !== toDimension) throw new ToolInputError(`cannot convert ${dimension} (${from}) to ${toDimension} (${to})`);
  const result = dimension === "temperature" ? fromKelvin(toKelvin(value, from), to) : (value * fromFactor) / toFactor;
  return { value: Number.parseFloat(result.toPrecision(12)), unit: to };
}

function calculator({ expression }) {
  if (typeof expression !== "string") throw new ToolInputError("'expression' must be text");
  return { expression, result: evaluate(expression) };
}

const IMPLEMENTATIONS = { calculator, current_time: currentTime, convert_units: convertUnits };

function parseArguments(text) {
  if (text === undefined || text === null || text === "") return {};
  let args = text;
  if (typeof text === "string") {
    try {
      args = JSON.parse(text);
    } catch {
      throw new ToolInputError("the arguments are not valid JSON");
    }
  }
  if (typeof args !== "object" || args === null || Array.isArray(args)) throw new ToolInputError("the arguments must be a JSON object");
  return args;
}

// One call ({function: {name, arguments}}, OpenAI's shape) run: {ok, value} where value is the
// result object or {error}; `content` is its JSON, the tool message's text.
export function runToolCall(call) {
  const name = call && call.function ? call.function.name : undefined;
  let value;
  let ok = false;
  try {
    if (!Object.hasOwn(IMPLEMENTATIONS, name)) {
      throw new ToolInputError(`unknown tool ${JSON.stringify(name)} (the tools are ${Object.keys(IMPLEMENTATIONS).join(", ")})`);
    }
    value = IMPLEMENTATIONS[name](parseArguments(call.function.arguments));
    ok = true;
  } catch (err) {
    value = { error: err instanceof Error ? err.message : String(err) };
  }
  return { ok, value, content: JSON.stringify(value) };
}
