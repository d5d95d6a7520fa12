"""Shared tokenizer test corpus: texts that stress pre-tokenization, BPE, added tokens and decoding."""

from __future__ import annotations

_CHAT = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nWhat's 17 × 23? Answer briefly.<|im_end|>\n"
    "<|im_start|>assistant\n<think>\n17 × 23 = 391.\n</think>\n\n391<|im_end|>\n"
    '<|im_start|>user\n<tool_call>\n{"name": "search", "arguments": {"q": "東京 天気"}}\n'
    "</tool_call><|im_end|>\n<|im_start|>assistant\n"
)

_PYTHON = '''def fib(n: int) -> int:
    """Return the n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


if __name__ == "__main__":
\tprint([fib(i) for i in range(10)])  # tabs and spaces mixed
'''

_RUST = 'fn main() {\n    let v: Vec<u64> = (1..=10).map(|x| x * x).collect();\n    println!("{:?}", v);\n}\n'
_JS = "const f = async (x) => { await fetch(`/api/${x}`); return x ?? 0; };\n// comment\r\n"
_CPP = "#include <vector>\nint main(){std::vector<int> v{1,2,3};for(auto& x:v){x<<=2;}return 0;}\n"
_SQL = "SELECT id, name FROM users WHERE age >= 18 AND name LIKE 'A%' ORDER BY id DESC;"

CORPUS: list[str] = [
    "",
    "Hello, world!",
    "Hello world",
    " leading space",
    "trailing spaces   ",
    "   ",
    "\t\tTabbed\tline\t",
    "line one\nline two\r\nline three\rline four\n\n\n",
    "mixed   \n  \n\t \r\n  whitespace runs   \n",
    "DON'T STOP, it's fine; we'll see what you'd've done. I'M HERE. They'RE 'Re 'S 'T",
    "'s 't 're 've 'm 'll 'd and 'x 'S",
    "Numbers: 0 7 42 123 1234 12345 3.14159 -2.5e-10 1,000,000 ٣٤٥ १२३ ⅷ ½ ²",
    "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX.",
    "中文分词测试：我爱北京天安门，天安门上太阳升。",
    "日本語のテキストとカタカナ、ひらがな。漢字も混ざる。",
    "한국어 텍스트도 포함됩니다.",
    "العربية: مرحبا بالعالم، كيف حالك؟",
    "हिन्दी: नमस्ते दुनिया, आप कैसे हैं?",
    "Русский текст: Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Ελληνικά: Γειά σου Κόσμε. ΣΊΣΥΦΟΣ ς σ",
    "עברית: שלום עולם",
    "ไทย: สวัสดีชาวโลก",
    "Tiếng Việt: Xin chào thế giới, đây là bài kiểm tra.",
    "combining: e\u0301 a\u0300 n\u0303 (decomposed) vs é à ñ (composed); Å vs A\u030a; Ω vs Ω",
    "emoji 😀😃😄 👍🏽 👩‍💻 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇯🇵🇺🇸 ✊🏿 🧑🏻‍🤝‍🧑🏾",
    "zero\u200bwidth\u200cjoiner\u200dtest\ufeffbom \u00a0nbsp \u3000ideographic \u2028ls \u2029ps",
    "control chars: \x00\x01\x07\x1b[0m\x1c\x1d\x1e\x1f\x7f\x85 end",
    "math: ∀x∈ℝ, x² ≥ 0; ∑ᵢ aᵢ = ∫₀¹ f(x) dx ≈ π/4 → ∞ ≠ ≤",
    "symbols: ©®™ § ¶ • … — – «» “” ‘’ ¿¡ €£¥₹₿ $%&*@#",
    "URL https://example.com/path?q=a%20b&x=1#frag and email a.b+c@example.org",
    "snake_case camelCase PascalCase kebab-case SCREAMING_CASE __dunder__",
    "repeated!!!??? ....... ------ ====== ****** ``` ``` ~~~",
    _PYTHON,
    _RUST,
    _JS,
    _CPP,
    _SQL,
    '{"key": [1, 2.5, true, null], "nested": {"a": "b"}}\n',
    "<|endoftext|>",
    "text before<|im_end|>text after<|endoftext|>",
    "<|im_start|><|im_end|><|im_start|>",
    "almost special <|im_start|| <|im_end <im_start|> <|IM_START|>",
    "special inside word: foo<|endoftext|>bar and spaced <|endoftext|> tokens",
    "<think>reasoning</think>answer <tool_call>{}</tool_call> <|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>",
    _CHAT,
    "ǅungla ǈudi ǋ ﬁ ﬂ ﬀ ſt ẞ ß İstanbul ı",
    "\U0001d400\U0001d401 \U00010400 \U0001f600 \U000e0001 \U0010ffff \ue000 private use",
    "a" * 300 + " " + "ab" * 100,
    "x" + " " * 50 + "y" + "\n" * 20 + "z",
]
