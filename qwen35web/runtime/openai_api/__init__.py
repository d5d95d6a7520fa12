"""OpenAI chat-completions shapes <-> runtime calls, with no HTTP in it.

`request` checks a request body and turns it into runtime messages and sampling settings;
`completion` runs one on a loaded Runtime and builds the response or the stream's chunks; `errors`
is the OpenAI error object. Stdlib only (plus the runtime), so the page can reuse it in Pyodide; the
native HTTP server (`qwen35web.serve`) is a thin layer over it.
"""
