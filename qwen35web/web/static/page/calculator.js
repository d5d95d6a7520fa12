// The demo calculator tool's arithmetic: a small recursive-descent parser and evaluator (never eval or
// Function: the expression comes from the model). Numbers (1, 2.5, .5, 1e-3), + - * / % (remainder),
// ^ or ** (power, right-associative: 2^3^2 = 2^9; -2^2 = -4), parentheses, the constants pi and e, and
// the functions below. Anything else, a division by zero or a result that is not a finite number is a
// CalculatorError saying what and where (a position counted from 1).
//
// Grammar:
//   sum     := product (("+" | "-") product)*
//   product := unary (("*" | "/" | "%") unary)*
//   unary   := ("+" | "-") unary | power
//   power   := primary (("^" | "**") unary)?
//   primary := number | name | name "(" sum ("," sum)* ")" | "(" sum ")"

const MAX_LENGTH = 500;
const MAX_DEPTH = 64; // nested parentheses and signs: deeper is refused, never a stack overflow

const CONSTANTS = { pi: Math.PI, e: Math.E, tau: 2 * Math.PI };

// name -> [arity (-1: one or more), function]
const FUNCTIONS = {
  sqrt: [1, Math.sqrt],
  cbrt: [1, Math.cbrt],
  abs: [1, Math.abs],
  round: [1, Math.round],
  floor: [1, Math.floor],
  ceil: [1, Math.ceil],
  sin: [1, Math.sin],
  cos: [1, Math.cos],
  tan: [1, Math.tan],
  asin: [1, Math.asin],
  acos: [1, Math.acos],
  atan: [1, Math.atan],
  ln: [1, Math.log],
  log: [1, Math.log10],
  log2: [1, Math.log2],
  exp: [1, Math.exp],
  pow: [2, Math.pow],
  min: [-1, Math.min],
  max: [-1, Math.max],
};

export class CalculatorError extends Error {
  constructor(message) {
    super(message);
    this.name = "CalculatorError";
  }
}

// Tokens: {kind: "number" | "name" | "op", text, value?, at (0-based offset)}.
function tokenize(text) {
  const tokens = [];
  const pattern = /\s*(?:(\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|(\*\*|[-+*/%^(),×÷]))/y;
  let at = 0;
  while (at < text.length) {
    pattern.lastIndex = at;
    const match = pattern.exec(text);
    if (!match) {
      if (!text.slice(at).trim()) break; // trailing spaces
      const offset = at + (text.slice(at).length - text.slice(at).trimStart().length);
      throw new CalculatorError(`unexpected "${text[offset]}" at position ${offset + 1}`);
    }
    const start = match.index + match[0].length - (match[1] || match[2] || match[3]).length;
    if (match[1]) tokens.push({ kind: "number", text: match[1], value: Number(match[1]), at: start });
    else if (match[2]) tokens.push({ kind: "name", text: match[2], at: start });
    else tokens.push({ kind: "op", text: { "×": "*", "÷": "/" }[match[3]] || match[3], at: start });
    at = pattern.lastIndex;
  }
  return tokens;
}

class Parser {
  constructor(text) {
    this.text = text;
    this.tokens = tokenize(text);
    this.index = 0;
    this.depth = 0;
  }

  peek() {
    return this.tokens[this.index];
  }

  where(token) {
    return token ? `at position ${token.at + 1}` : "at the end";
  }

  take(op) {
    const token = this.peek();
    if (token && token.kind === "op" && token.text === op) {
      this.index++;
      return true;
    }
    return false;
  }

  expect(op) {
    if (!this.take(op)) throw new CalculatorError(`expected "${op}" ${this.where(this.peek())}`);
  }

  nested(parse) {
    if (++this.depth > MAX_DEPTH) throw new CalculatorError(`nested more than ${MAX_DEPTH} deep`);
    try {
      return parse();
    } finally {
      this.depth--;
    }
  }

  sum() {
    let value = this.product();
    for (;;) {
      if (this.take("+")) value += this.product();
      else if (this.take("-")) value -= this.product();
      else return value;
    }
  }

  product() {
    let value = this.unary();
    for (;;) {
      const token = this.peek();
      if (this.take("*")) value *= this.unary();
      else if (this.take("/") || this.take("%")) {
        const divisor = this.unary();
        if (divisor === 0) throw new CalculatorError(`division by zero ${this.where(token)}`);
        value = token.text === "/" ? value / divisor : value % divisor;
      } else return value;
    }
  }

  unary() {
    if (this.take("-")) return this.nested(() => -this.unary());
    if (this.take("+")) return this.nested(() => this.unary());
    return this.power();
  }

  power() {
    const base = this.primary();
    if (this.take("^") || this.take("**")) return this.nested(() => base ** this.unary());
    return base;
  }

  primary() {
    const token = this.peek();
    if (!token) throw new CalculatorError("the expression ends too early");
    this.index++;
    if (token.kind === "number") return token.value;
    if (token.kind === "op" && token.text === "(") {
      const value = this.nested(() => this.sum());
      this.expect(")");
      return value;
    }
    if (token.kind === "name") return this.named(token);
    throw new CalculatorError(`unexpected "${token.text}" ${this.where(token)}`);
  }

  named(token) {
    const name = token.text.toLowerCase();
    if (!this.take("(")) {
      if (Object.hasOwn(CONSTANTS, name)) return CONSTANTS[name];
      throw new CalculatorError(`unknown name "${token.text}" ${this.where(token)}`);
    }
    if (!Object.hasOwn(FUNCTIONS, name)) throw new CalculatorError(`unknown function "${token.text}" ${this.where(token)}`);
    const [arity, fn] = FUNCTIONS[name];
    const args = [this.nested(() => this.sum())];
    while (this.take(",")) args.push(this.nested(() => this.sum()));
    this.expect(")");
    if (arity >= 0 && args.length !== arity) {
      throw new CalculatorError(`${name}() takes ${arity} ${arity === 1 ? "argument" : "arguments"}, got ${args.length}`);
    }
    return fn(...args);
  }
}

// The value of `expression` (a finite number), or a CalculatorError.
export function evaluate(expression) {
  if (typeof expression !== "string") throw new CalculatorError("the expression must be text");
  if (expression.length > MAX_LENGTH) throw new CalculatorError(`the expression is longer than ${MAX_LENGTH} characters`);
  const parser = new Parser(expression);
  if (!parser.tokens.length) throw new CalculatorError("the expression is empty");
  const value = parser.sum();
  const rest = parser.peek();
  if (rest) throw new CalculatorError(`unexpected "${rest.text}" ${parser.where(rest)}`);
  if (!Number.isFinite(value)) throw new CalculatorError(`the result is not a finite number (${value})`);
  // 15 significant digits: 0.1 + 0.2 is 0.3, as a person expects.
  return Number.parseFloat(value.toPrecision(15));
}
