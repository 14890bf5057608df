"""GGUF chat templates (Hugging Face Jinja) render in a sandbox."""

from __future__ import annotations

import pytest

from ocillm.errors import TemplateError
from ocillm.template import render_chat_template

CHATML = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def test_renders_messages_with_bos_and_generation_prompt() -> None:
    out = render_chat_template(CHATML, messages=MSGS, bos_token="<s>")
    assert out == (
        "<s><|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_generation_prompt_can_be_left_out() -> None:
    out = render_chat_template(CHATML, messages=MSGS, add_generation_prompt=False)
    assert not out.endswith("assistant\n")


def test_trim_blocks_and_lstrip_blocks_are_on() -> None:
    text = "{% for m in messages %}\n    {{ m.content }}\n{% endfor %}"
    assert render_chat_template(text, messages=MSGS) == "    Be brief.\n    Hi\n"


def test_tools_eos_and_tojson_keep_unicode() -> None:
    text = "{% if tools %}{{ tools | tojson }}{% endif %}{{ eos_token }}"
    tools = [{"type": "function", "function": {"name": "café"}}]
    out = render_chat_template(text, messages=[], tools=tools, eos_token="</s>")
    assert out == '[{"type": "function", "function": {"name": "café"}}]</s>'


def test_loop_controls_are_available() -> None:
    text = "{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}{{ m.content }}{% endfor %}"
    assert render_chat_template(text, messages=MSGS) == "Hi"


def test_raise_exception_becomes_a_template_error() -> None:
    text = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    with pytest.raises(TemplateError, match="System role not supported"):
        render_chat_template(text, messages=MSGS)


def test_syntax_errors_carry_the_line() -> None:
    with pytest.raises(TemplateError) as info:
        render_chat_template("ok\n{% for m in messages %}", messages=MSGS)
    assert info.value.line == 2


def test_sandbox_blocks_python_internals() -> None:
    with pytest.raises(TemplateError):
        render_chat_template("{{ messages.__class__.__mro__ }}", messages=MSGS)
    with pytest.raises(TemplateError):
        render_chat_template("{{ ''.__class__.__subclasses__() }}", messages=MSGS)


def test_inputs_cannot_be_mutated() -> None:
    with pytest.raises(TemplateError):
        render_chat_template("{{ messages.append(1) }}", messages=MSGS)
    assert len(MSGS) == 2


def test_output_size_is_bounded() -> None:
    with pytest.raises(TemplateError, match="exceeds"):
        render_chat_template(
            "{% for i in range(100000) %}xxxxxxxxxx{% endfor %}", messages=[], max_output=1000
        )
