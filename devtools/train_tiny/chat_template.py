"""The tiny model's chat template: Qwen's `<|im_start|>` turns, plus Qwen3.5's tool conventions.

Plain chat renders exactly as the test models' template (devtools.byte_tokenizer.CHAT_TEMPLATE):
`<|im_start|>ROLE\\nCONTENT<|im_end|>\\n` per message, then `<|im_start|>assistant\\n`. No thinking
block: the tiny model never reasons. With `tools`, a system turn lists them as JSON lines inside
`<tools>` (after the caller's own system text, if any) with a short note on the call form, kept brief
because the model trains on 512-token windows. An assistant turn renders its `tool_calls` in
Qwen3.5's XML form:

    <tool_call>
    <function=NAME>
    <parameter=ARG>
    VALUE
    </parameter>
    </function>
    </tool_call>

(a string VALUE as written, others as JSON; calls one after another, separated by a newline, after
the content and a blank line). Consecutive `tool` messages become one user turn of
`<tool_response>` blocks. Rendered by the runtime's own Jinja environment (trim_blocks,
lstrip_blocks; qwen35web.runtime.chat), so training text and prompts are the same bytes.
"""

from __future__ import annotations

_SYSTEM = """\
{%- if tools -%}
<|im_start|>system
{% if messages[0].role == 'system' -%}
{{ messages[0].content }}{{ '\\n\\n' }}
{%- endif -%}
# Tools
<tools>
{% for tool in tools -%}
{{ tool | tojson }}{{ '\\n' }}
{%- endfor -%}
</tools>
Call a tool as <tool_call>
<function=NAME>
<parameter=ARG>
VALUE
</parameter>
</function>
</tool_call><|im_end|>{{ '\\n' }}
{%- endif -%}
"""

_TURNS = """\
{%- for message in messages -%}
{%- if loop.first and tools and message.role == 'system' -%}
{%- elif message.role == 'tool' -%}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' -%}
<|im_start|>user{{ '\\n' }}
{%- else -%}
{{ '\\n' }}
{%- endif -%}
<tool_response>
{{ message.content }}
</tool_response>
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' -%}
<|im_end|>{{ '\\n' }}
{%- endif -%}
{%- else -%}
<|im_start|>{{ message.role }}
{{ message.content }}
{%- if message.role == 'assistant' and message.tool_calls -%}
{%- for call in message.tool_calls -%}
{%- set call = call.function if call.function is defined else call -%}
{%- if loop.first and message.content -%}{{ '\\n\\n' }}{%- elif not loop.first -%}{{ '\\n' }}{%- endif -%}
<tool_call>
<function={{ call.name }}>
{% for name, value in (call.arguments or {}).items() -%}
<parameter={{ name }}>
{{ value if value is string else value | tojson }}
</parameter>
{% endfor -%}
</function>
</tool_call>
{%- endfor -%}
{%- endif -%}
<|im_end|>{{ '\\n' }}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
<|im_start|>assistant{{ '\\n' }}
{%- endif -%}
"""

TINY_CHAT_TEMPLATE = _SYSTEM + _TURNS
