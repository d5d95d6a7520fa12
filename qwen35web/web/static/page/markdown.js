// Markdown from the model as DOM nodes: headings, paragraphs, lists, quotes, rules, tables, fenced
// code (with a copy button), emphasis, inline code and links. Every piece of model text becomes a
// text node (createTextNode / textContent): nothing is ever parsed as HTML, so `<img onerror>`,
// `<script>` and the like stay visible, inert text. Links keep only http(s) and mailto targets.
//
// MarkdownView re-renders while a reply streams: the source is split into top-level blocks and only
// blocks whose source changed (in practice the last one) are rebuilt, so nothing above flickers.

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const LIST_ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])\s+(.*)$/;
const QUOTE = /^ {0,3}>\s?/;
const TABLE_DELIMITER = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;
const SAFE_SCHEMES = new Set(["http:", "https:", "mailto:"]);
const COPIED_MS = 1500;

// The inline constructs, earliest match first (then the first alternative that matches there).
const INLINE = new RegExp(
  [
    /\\([!-/:-@[-`{-~])/.source, // 1: a backslash escape
    /(`+)([\s\S]*?[^`])\2(?!`)/.source, // 2, 3: a code span
    /!?\[([^\]\n]*)\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)/.source, // 4, 5: a link (an image: a link)
    /\*\*(?=\S)([\s\S]*?\S)\*\*|__(?=\S)([\s\S]*?\S)__(?!\w)/.source, // 6, 7: strong
    /\*(?=[^\s*])([\s\S]*?[^\s*])\*|(?<!\w)_(?=[^\s_])([\s\S]*?[^\s_])_(?!\w)/.source, // 8, 9: emphasis
    /~~(?=\S)([\s\S]*?\S)~~/.source, // 10: strikethrough
    /<(https?:\/\/[^\s<>]+)>|(https?:\/\/[^\s<>()]*[^\s<>().,;:!?'"*_])/.source, // 11, 12: a bare URL
  ].join("|"),
  "g",
);

/**
 * @param {string} tag
 * @param {string} [className]
 * @param {string} [text]
 */
function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The href if its scheme is one a reply may link to, else null. @param {string} href */
export function safeHref(href) {
  try {
    const url = new URL(href);
    return SAFE_SCHEMES.has(url.protocol) ? url.href : null;
  } catch {
    return null; // relative or malformed: a reply's link must say where it goes
  }
}

/** A link, or its text and target as plain text when the target is not safe. */
function link(text, href) {
  const safe = safeHref(href);
  if (!safe) return [document.createTextNode(`${text} (${href})`)];
  const anchor = /** @type {HTMLAnchorElement} */ (element("a", "", text || safe));
  anchor.href = safe;
  anchor.target = "_blank";
  anchor.rel = "noopener noreferrer nofollow";
  return [anchor];
}

/** @param {RegExpExecArray} m @returns {Node[]} */
function inlineNode(m) {
  if (m[1] !== undefined) return [document.createTextNode(m[1])];
  if (m[2] !== undefined) return [element("code", "", m[3].replace(/^ (.*) $/s, "$1"))];
  if (m[5] !== undefined) return link(m[4], m[5]);
  if (m[6] !== undefined || m[7] !== undefined) return [wrap("strong", m[6] ?? m[7])];
  if (m[8] !== undefined || m[9] !== undefined) return [wrap("em", m[8] ?? m[9])];
  if (m[10] !== undefined) return [wrap("del", m[10])];
  return link("", m[11] ?? m[12]);
}

/** @param {string} tag @param {string} text */
function wrap(tag, text) {
  const node = element(tag);
  node.append(...inline(text));
  return node;
}

/** The inline Markdown of `text` as nodes (text nodes and a few safe elements). @param {string} text */
export function inline(text) {
  /** @type {Node[]} */
  const nodes = [];
  const pattern = new RegExp(INLINE.source, "g");
  let last = 0;
  for (let m = pattern.exec(text); m; m = pattern.exec(text)) {
    if (m.index > last) nodes.push(document.createTextNode(text.slice(last, m.index)));
    nodes.push(...inlineNode(m));
    last = pattern.lastIndex;
  }
  if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}

/** A fenced code block with a copy button. @param {string} code @param {string} language */
export function codeBlock(code, language) {
  const block = element("div", "code-block");
  const bar = element("div", "code-bar");
  const button = element("button", "copy-code", "Copy");
  /** @type {HTMLButtonElement} */ (button).type = "button";
  button.setAttribute("aria-label", language ? `Copy the ${language} code` : "Copy the code");
  button.addEventListener("click", () => copy(code, button));
  bar.append(element("span", "code-language", language), button);
  const pre = element("pre");
  const codeNode = element("code", language ? `language-${language}` : "", code);
  pre.append(codeNode);
  block.append(bar, pre);
  return block;
}

/** @param {string} text @param {HTMLElement} button */
async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed"; // no clipboard here (an insecure context, a denied permission)
  }
  setTimeout(() => (button.textContent = "Copy"), COPIED_MS);
}

/** The cells of one table row. @param {string} line */
function cells(line) {
  let row = line.trim();
  if (row.startsWith("|")) row = row.slice(1);
  if (row.endsWith("|") && !row.endsWith("\\|")) row = row.slice(0, -1);
  return row.split(/(?<!\\)\|/).map((cell) => cell.trim().replace(/\\\|/g, "|"));
}

/** @param {string[]} lines the header, the delimiter row, the body rows */
function table(lines) {
  const aligns = cells(lines[1]).map((cell) =>
    cell.startsWith(":") && cell.endsWith(":") ? "center" : cell.endsWith(":") ? "right" : cell.startsWith(":") ? "left" : "",
  );
  const row = (line, tag) => {
    const tr = element("tr");
    const values = cells(line);
    aligns.forEach((align, i) => {
      const cell = element(tag, align ? `align-${align}` : "");
      cell.append(...inline(values[i] ?? ""));
      tr.append(cell);
    });
    return tr;
  };
  const wrapper = element("div", "table-scroll");
  const node = element("table");
  const head = element("thead");
  head.append(row(lines[0], "th"));
  const body = element("tbody");
  for (const line of lines.slice(2)) body.append(row(line, "td"));
  node.append(head, body);
  wrapper.append(node);
  return wrapper;
}

/** A list's items: each item's lines with the marker's indent taken off. @param {string[]} lines */
function list(lines) {
  const first = /** @type {RegExpExecArray} */ (LIST_ITEM.exec(lines[0]));
  const ordered = /\d/.test(first[2]);
  const node = element(ordered ? "ol" : "ul");
  if (ordered && parseInt(first[2], 10) !== 1) node.setAttribute("start", String(parseInt(first[2], 10)));
  /** @type {string[][]} */
  const items = [];
  for (const line of lines) {
    const marker = LIST_ITEM.exec(line);
    if (marker && marker[1].length <= first[1].length) items.push([marker[3]]);
    else items[items.length - 1].push(line.replace(/^ {1,4}/, ""));
  }
  const loose = lines.some((line, i) => !line.trim() && i < lines.length - 1);
  for (const itemLines of items) {
    const item = element("li");
    const blocks = splitBlocks(itemLines.join("\n"));
    if (!loose && blocks.length && blocks[0].kind === "paragraph") {
      item.append(...inline(blocks[0].lines.join("\n")));
      blocks.shift();
    }
    for (const block of blocks) item.append(renderBlock(block));
    node.append(item);
  }
  return node;
}

/**
 * @typedef {{kind: "code" | "heading" | "rule" | "table" | "list" | "quote" | "paragraph", lines: string[],
 *   source: string}} Block
 */

/** Where the block starting at lines[start] ends (exclusive), and its kind. @param {string[]} lines */
function blockAt(lines, start) {
  const line = lines[start];
  const fence = FENCE.exec(line);
  if (fence) {
    const closing = new RegExp(`^ {0,3}${fence[1][0] === "`" ? "`" : "~"}{${fence[1].length},}\\s*$`);
    let end = start + 1;
    while (end < lines.length && !closing.test(lines[end])) end++;
    return { kind: "code", end: Math.min(end + 1, lines.length) };
  }
  if (HEADING.test(line)) return { kind: "heading", end: start + 1 };
  if (RULE.test(line)) return { kind: "rule", end: start + 1 };
  if (line.includes("|") && start + 1 < lines.length && TABLE_DELIMITER.test(lines[start + 1]) && lines[start + 1].includes("-")) {
    let end = start + 2;
    while (end < lines.length && lines[end].trim() && lines[end].includes("|")) end++;
    return { kind: "table", end };
  }
  if (LIST_ITEM.test(line)) return { kind: "list", end: listEnd(lines, start) };
  if (QUOTE.test(line)) {
    let end = start + 1;
    while (end < lines.length && lines[end].trim() && !startsBlock(lines[end])) end++;
    return { kind: "quote", end };
  }
  let end = start + 1;
  while (end < lines.length && lines[end].trim() && !startsBlock(lines[end])) end++;
  return { kind: "paragraph", end };
}

/** @param {string} line */
function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || LIST_ITEM.test(line) || QUOTE.test(line);
}

/** "1." and "1)" start ordered lists, "-", "*", "+" bullet lists; another kind starts another list. */
function markerKind(marker) {
  return /\d/.test(marker) ? marker.slice(-1) : marker;
}

/** A list goes on over its items, indented lines, and blank lines followed by more of it. @param {string[]} lines */
function listEnd(lines, start) {
  const first = /** @type {RegExpExecArray} */ (LIST_ITEM.exec(lines[start]));
  const sameList = (line) => {
    const item = LIST_ITEM.exec(line);
    return item && (item[1].length > first[1].length || markerKind(item[2]) === markerKind(first[2]));
  };
  let end = start + 1;
  while (end < lines.length) {
    const line = lines[end];
    if (!line.trim()) {
      const next = lines[end + 1];
      if (next === undefined || !(sameList(next) || /^ {2,}\S/.test(next))) break;
    } else if (LIST_ITEM.test(line) ? !sameList(line) : !/^ {2,}/.test(line) && startsBlock(line)) break;
    end++;
  }
  return end;
}

/** The top-level blocks of `source`, each with its own source text. @param {string} source @returns {Block[]} */
export function splitBlocks(source) {
  const lines = source.replace(/\r\n?/g, "\n").split("\n");
  /** @type {Block[]} */
  const blocks = [];
  for (let start = 0; start < lines.length; ) {
    if (!lines[start].trim()) {
      start++;
      continue;
    }
    const { kind, end } = /** @type {{kind: Block["kind"], end: number}} */ (blockAt(lines, start));
    const own = lines.slice(start, end);
    blocks.push({ kind, lines: own, source: own.join("\n") });
    start = end;
  }
  return blocks;
}

/** @param {Block} block @returns {HTMLElement} */
function renderBlock(block) {
  const { lines } = block;
  switch (block.kind) {
    case "code": {
      const fence = /** @type {RegExpExecArray} */ (FENCE.exec(lines[0]));
      const closed = lines.length > 1 && new RegExp(`^ {0,3}${fence[1][0]}{${fence[1].length},}\\s*$`).test(lines[lines.length - 1]);
      return codeBlock(lines.slice(1, closed ? -1 : undefined).join("\n"), fence[2]);
    }
    case "heading": {
      const [, hashes, text] = /** @type {RegExpExecArray} */ (HEADING.exec(lines[0]));
      return wrap(`h${hashes.length}`, text);
    }
    case "rule":
      return element("hr");
    case "table":
      return table(lines);
    case "list":
      return list(lines);
    case "quote": {
      const quote = element("blockquote");
      for (const inner of splitBlocks(lines.map((line) => line.replace(QUOTE, "")).join("\n"))) quote.append(renderBlock(inner));
      return quote;
    }
    default:
      return wrap("p", lines.join("\n"));
  }
}

/** The whole of `source` rendered, as a fragment. @param {string} source */
export function renderMarkdown(source) {
  const fragment = document.createDocumentFragment();
  for (const block of splitBlocks(source)) fragment.append(renderBlock(block));
  return fragment;
}

// A container showing Markdown that grows (a streamed reply): only changed blocks are rebuilt.
export class MarkdownView {
  /** @param {HTMLElement} container */
  constructor(container) {
    this.container = container;
    /** @type {{source: string, node: HTMLElement}[]} */
    this.blocks = [];
    this.source = "";
  }

  /** Show `source` (the whole text so far). @param {string} source */
  update(source) {
    this.source = source;
    const blocks = splitBlocks(source);
    let same = 0;
    while (same < blocks.length && same < this.blocks.length && blocks[same].source === this.blocks[same].source) same++;
    for (const stale of this.blocks.splice(same)) stale.node.remove();
    for (const block of blocks.slice(same)) {
      const node = renderBlock(block);
      this.container.append(node);
      this.blocks.push({ source: block.source, node });
    }
  }
}
