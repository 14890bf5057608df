"""Capabilities derived from a template, as Ollama derives them (``server/images.go``)."""

from __future__ import annotations

from . import nodes as n
from .template import Template, parse_template

COMPLETION = "completion"
TOOLS = "tools"
INSERT = "insert"
THINKING = "thinking"


def template_capabilities(template_text: str) -> set[str]:
    """``completion`` always; ``tools`` if the template mentions ``.Tools``; ``insert`` if it
    mentions ``.Suffix``; ``thinking`` if opening and closing thinking tags can be inferred
    (a ``.Thinking`` inside ``range .Messages``). Raises TemplateError if it does not parse."""
    tmpl = parse_template(template_text)
    caps = {COMPLETION}
    variables = tmpl.vars()
    if "tools" in variables:
        caps.add(TOOLS)
    if "suffix" in variables:
        caps.add(INSERT)
    opening, closing = infer_thinking_tags(tmpl)
    if opening and closing:
        caps.add(THINKING)
    return caps


def chat_template_capabilities(jinja_text: str) -> set[str]:
    """Ollama's checks on a GGUF ``tokenizer.chat_template`` (substring tests)."""
    caps = {COMPLETION}
    if not jinja_text:
        return caps
    if "tools" in jinja_text or "tool_call" in jinja_text:
        caps.add(TOOLS)
    tags = "<think>" in jinja_text and "</think>" in jinja_text
    splits = (
        ("content.split('</think>')" in jinja_text or 'content.split("</think>")' in jinja_text)
        and "reasoning_content" not in jinja_text
        and "<SPECIAL_12>" not in jinja_text
    )
    if tags or splits:
        caps.add(THINKING)
    return caps


def infer_thinking_tags(tmpl: Template) -> tuple[str, str]:
    """Ollama's ``thinking.InferTags``: for a ``.Thinking`` field inside ``range .Messages``,
    the first and last text of the nearest enclosing list, stripped."""
    tags = ["", ""]
    ancestors: list[n.Node] = []

    def visit(node: n.Node | None) -> None:
        if node is None:
            return
        ancestors.append(node)
        if isinstance(node, n.FieldNode) and node.idents and node.idents[0] == "Thinking":
            _found(node)
        if isinstance(node, n.ListNode):
            for c in node.nodes:
                visit(c)
        elif isinstance(node, (n.IfNode, n.WithNode, n.RangeNode)):
            visit(node.pipe)
            visit(node.list)
            visit(node.else_list)
        elif isinstance(node, (n.ActionNode, n.TemplateNode)):
            visit(node.pipe)
        elif isinstance(node, n.PipeNode):
            for c in node.cmds:
                visit(c)
        elif isinstance(node, n.CommandNode):
            for a in node.args:
                visit(a)
        ancestors.pop()

    def _found(field: n.FieldNode) -> None:
        rng = next((a for a in reversed(ancestors) if isinstance(a, n.RangeNode)), None)
        if rng is None or not _uses_field(rng.pipe, "Messages"):
            return
        for a in reversed(ancestors):
            if isinstance(a, n.ListNode):
                first, last = a.nodes[0], a.nodes[-1]
                if isinstance(first, n.Text):
                    tags[0] = first.text.strip()
                if isinstance(last, n.Text):
                    tags[1] = last.text.strip()
                break

    visit(tmpl.ollama_tree.root)
    return tags[0], tags[1]


def _uses_field(pipe: n.PipeNode, name: str) -> bool:
    found = False

    def visit(node: n.Node) -> None:
        nonlocal found
        if isinstance(node, n.FieldNode) and node.idents[0] == name:
            found = True
        if isinstance(node, n.PipeNode):
            for c in node.cmds:
                visit(c)
        elif isinstance(node, n.CommandNode):
            for a in node.args:
                visit(a)

    visit(pipe)
    return found
