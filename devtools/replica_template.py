"""The replica's chat_template.jinja: written here, with the semantics of the published Qwen3.5
templates (issue 19), in two variants that differ only in the thinking default.

- system turn: the first message when it is a system message; with `tools`, the tool list (one
  JSON object per line inside <tools>) and how to call them (the XML form) follow it;
- content: a string, or a list of parts: images and videos become
  <|vision_start|><|image_pad|><|vision_end|> (<|video_pad|>), "Picture N: " / "Video N: " first
  when `add_vision_id` is true, counted over the whole conversation;
- assistant turns: tool calls in the XML form
  <tool_call>\\n<function=NAME>\\n<parameter=ARG>\\nVALUE\\n</parameter>\\n</function>\\n</tool_call>;
  reasoning (`reasoning_content`, or what precedes </think> in the content) is kept only on turns
  after the last real user query (a user message that is not a wrapped tool result);
- tool results: consecutive `tool` messages become one user turn of <tool_response> blocks;
- no real user query: raise_exception;
- the generation prompt: `small` (0.8B, 2B) opens `<think>\\n` only when enable_thinking is defined
  and true, else an empty `<think>\\n\\n</think>\\n\\n`; `large` (4B, 9B) thinks unless
  enable_thinking is false.
"""

from __future__ import annotations

THINKING_VARIANTS = ("small", "large")

_CONTENT_MACRO = """\
{%- set counts = namespace(image=0, video=0) -%}
{%- macro content_text(content) -%}
{%- if content is string -%}
{{- content -}}
{%- elif content is none -%}
{%- elif content is iterable and content is not mapping -%}
{%- for part in content -%}
{%- if part is mapping and (part.type == 'image' or 'image' in part or 'image_url' in part) -%}
{%- set counts.image = counts.image + 1 -%}
{%- if add_vision_id -%}Picture {{ counts.image }}: {% endif -%}
<|vision_start|><|image_pad|><|vision_end|>
{%- elif part is mapping and (part.type == 'video' or 'video' in part) -%}
{%- set counts.video = counts.video + 1 -%}
{%- if add_vision_id -%}Video {{ counts.video }}: {% endif -%}
<|vision_start|><|video_pad|><|vision_end|>
{%- elif part is mapping and 'text' in part -%}
{{- part.text -}}
{%- else -%}
{{- raise_exception('a content part must be text, an image or a video') -}}
{%- endif -%}
{%- endfor -%}
{%- else -%}
{{- raise_exception('message content must be a string or a list of parts') -}}
{%- endif -%}
{%- endmacro -%}
"""

_SYSTEM_TURN = """\
{%- set first_is_system = messages and messages[0].role == 'system' -%}
{%- if tools -%}
<|im_start|>system
{% if first_is_system %}{{ content_text(messages[0].content) | trim }}

{% endif -%}
# Tools

These functions are available. Each line inside <tools></tools> describes one as JSON:
<tools>
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}</tools>

To call a function, reply with one block per call, in exactly this form:
<tool_call>
<function=FUNCTION_NAME>
<parameter=PARAMETER_NAME>
VALUE
</parameter>
</function>
</tool_call>
Give every required parameter; a VALUE may span several lines. Reason first if you need to, \
but put nothing after the last </tool_call>.<|im_end|>
{% elif first_is_system -%}
<|im_start|>system
{{ content_text(messages[0].content) | trim }}<|im_end|>
{% endif -%}
"""

# The index of the last real user query: a user message that is not a wrapped tool result (parts
# are not rendered here, so images are counted once).
_LAST_QUERY = """\
{%- set query = namespace(index=-1) -%}
{%- for message in messages -%}
{%- if message.role == 'user' -%}
{%- set text = message.content | trim if message.content is string else '' -%}
{%- if not (text.startswith('<tool_response>') and text.endswith('</tool_response>')) -%}
{%- set query.index = loop.index0 -%}
{%- endif -%}
{%- endif -%}
{%- endfor -%}
{%- if query.index < 0 -%}
{{- raise_exception('no user query in the messages') -}}
{%- endif -%}
"""

_TURNS = """\
{%- for message in messages -%}
{%- set text = content_text(message.content) -%}
{%- if message.role == 'system' -%}
{%- if not loop.first -%}
<|im_start|>system
{{ text | trim }}<|im_end|>
{% endif -%}
{%- elif message.role == 'user' -%}
<|im_start|>user
{{ text }}<|im_end|>
{% elif message.role == 'assistant' -%}
{%- set reasoning = message.reasoning_content if message.reasoning_content is string else '' -%}
{%- if '</think>' in text -%}
{%- if not reasoning -%}
{%- set reasoning = text.split('</think>')[0].split('<think>')[-1] -%}
{%- endif -%}
{%- set text = text.split('</think>')[-1] -%}
{%- endif -%}
{%- set text = text | trim -%}
<|im_start|>assistant
{% if loop.index0 > query.index and reasoning | trim -%}
<think>
{{ reasoning | trim }}
</think>

{% endif -%}
{{ text }}
{%- for call in message.tool_calls or [] -%}
{%- set call = call.function if call.function is defined else call -%}
{%- if text or not loop.first %}{{ '\n\n' }}{% endif -%}
<tool_call>
<function={{ call.name }}>
{%- if call.arguments is defined and call.arguments is not none and call.arguments is not mapping -%}
{{- raise_exception('tool call arguments must be an object') -}}
{%- endif -%}
{% for name, value in (call.arguments or {}).items() -%}
<parameter={{ name }}>
{{ value if value is string else value | tojson }}
</parameter>
{% endfor -%}
</function>
</tool_call>
{%- endfor -%}
<|im_end|>
{% elif message.role == 'tool' -%}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' -%}
<|im_start|>user
{%- endif %}

<tool_response>
{{ text }}
</tool_response>
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' -%}
<|im_end|>
{% endif -%}
{%- else -%}
{{- raise_exception('unknown role: ' + message.role) -}}
{%- endif -%}
{%- endfor -%}
"""

_OPEN, _CLOSED = "<think>\n", "<think>\n\n</think>\n\n"
_GENERATION_PROMPT = {
    # Thinks only when asked to.
    "small": (
        "{%- if add_generation_prompt -%}\n<|im_start|>assistant\n"
        "{% if enable_thinking is defined and enable_thinking %}"
        + _OPEN
        + "{% else %}"
        + _CLOSED
        + "{% endif %}{%- endif -%}\n"
    ),
    # Thinks unless told not to.
    "large": (
        "{%- if add_generation_prompt -%}\n<|im_start|>assistant\n"
        "{% if enable_thinking is defined and not enable_thinking %}"
        + _CLOSED
        + "{% else %}"
        + _OPEN
        + "{% endif %}{%- endif -%}\n"
    ),
}


def chat_template(thinking: str) -> str:
    """The template text of one variant: `small` (0.8B/2B) or `large` (4B/9B)."""
    if thinking not in THINKING_VARIANTS:
        raise ValueError(f"thinking variant must be one of {THINKING_VARIANTS}, got {thinking!r}")
    return _CONTENT_MACRO + _SYSTEM_TURN + _LAST_QUERY + _TURNS + _GENERATION_PROMPT[thinking]
