"""`qwen35web serve`: the OpenAI-compatible local HTTP server (CPython only, not shipped to the page).

`http` reads and writes HTTP on asyncio streams, `worker` keeps the model on its own thread, `app`
routes requests onto `qwen35web.runtime.openai_api` (the request/response mapping), `cli` starts it.
"""
