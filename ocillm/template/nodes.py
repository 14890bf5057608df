"""The parse tree of a Go template, shaped like Go's ``text/template/parse`` nodes.

The shapes matter beyond execution: Ollama's ``Vars()`` and its legacy "response cut" walk this
tree exactly as they walk Go's, so an ``{{else if}}`` is an ``If`` inside the else list, as in Go.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Union


@dataclass
class Pos:
    line: int = 0
    column: int = 0


@dataclass
class Text:
    text: str


@dataclass
class FieldNode:
    idents: list[str]
    pos: Pos = field(default_factory=Pos)

    def __str__(self) -> str:
        return "".join("." + i for i in self.idents)


@dataclass
class VariableNode:
    idents: list[str]  # ["$x", "Field", ...]
    pos: Pos = field(default_factory=Pos)

    def __str__(self) -> str:
        return ".".join(self.idents)


@dataclass
class DotNode:
    def __str__(self) -> str:
        return "."


@dataclass
class NilNode:
    def __str__(self) -> str:
        return "nil"


@dataclass
class BoolNode:
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass
class NumberNode:
    value: int | float | complex
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass
class StringNode:
    value: str
    quoted: str

    def __str__(self) -> str:
        return self.quoted


@dataclass
class IdentifierNode:
    name: str
    pos: Pos = field(default_factory=Pos)

    def __str__(self) -> str:
        return self.name


@dataclass
class ChainNode:
    node: Node
    fields: list[str]

    def __str__(self) -> str:
        inner = str(self.node)
        if isinstance(self.node, PipeNode):
            inner = "(" + inner + ")"
        return inner + "".join("." + f for f in self.fields)


@dataclass
class CommandNode:
    args: list[Node]

    def __str__(self) -> str:
        return " ".join(
            "(" + str(a) + ")" if isinstance(a, PipeNode) else str(a) for a in self.args
        )


@dataclass
class PipeNode:
    decl: list[str]  # declared or assigned variable names, "$x"
    is_assign: bool
    cmds: list[CommandNode]
    pos: Pos = field(default_factory=Pos)

    def __str__(self) -> str:
        text = " | ".join(str(c) for c in self.cmds)
        if self.decl:
            op = " = " if self.is_assign else " := "
            text = ", ".join(self.decl) + op + text
        return text


@dataclass
class ListNode:
    nodes: list[Node]


@dataclass
class ActionNode:
    pipe: PipeNode
    pos: Pos = field(default_factory=Pos)


@dataclass
class IfNode:
    pipe: PipeNode
    list: ListNode
    else_list: ListNode | None
    pos: Pos = field(default_factory=Pos)


@dataclass
class WithNode:
    pipe: PipeNode
    list: ListNode
    else_list: ListNode | None
    pos: Pos = field(default_factory=Pos)


@dataclass
class RangeNode:
    pipe: PipeNode
    list: ListNode
    else_list: ListNode | None
    pos: Pos = field(default_factory=Pos)


@dataclass
class TemplateNode:
    name: str
    pipe: PipeNode | None
    pos: Pos = field(default_factory=Pos)


@dataclass
class BreakNode:
    pos: Pos = field(default_factory=Pos)


@dataclass
class ContinueNode:
    pos: Pos = field(default_factory=Pos)


BranchNode = Union[IfNode, WithNode, RangeNode]
Node = Union[
    Text,
    FieldNode,
    VariableNode,
    DotNode,
    NilNode,
    BoolNode,
    NumberNode,
    StringNode,
    IdentifierNode,
    ChainNode,
    CommandNode,
    PipeNode,
    ListNode,
    ActionNode,
    IfNode,
    WithNode,
    RangeNode,
    TemplateNode,
    BreakNode,
    ContinueNode,
]


def copy_tree(node: ListNode) -> ListNode:
    """A deep copy, for tree surgery that must not touch the cached original."""
    return copy.deepcopy(node)
