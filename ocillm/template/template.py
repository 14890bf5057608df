"""``Template``: a parsed, compiled Go template, plus the tree walks Ollama performs on it."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from ocillm.errors import TemplateError

from . import nodes as n
from .exec import DEFAULT_LIMITS, Limits, Program
from .funcs import ALL_FUNCS, BUILTINS
from .parser import ParseTree, parse

MAX_TEMPLATE_BYTES = 1024 * 1024


class Template:
    """A Go template as Ollama parses it (``missingkey=zero`` and Ollama's functions).

    ``execute(data)`` renders it against any mapping (the low-level entry point). Ollama's own
    preparation (auto-appended ``{{ .Response }}``, the three execution paths) lives in
    :mod:`ocillm.template.ollama`; :meth:`ollama_tree` returns the tree it uses.
    """

    def __init__(self, text: str, name: str = "template") -> None:
        if len(text) > MAX_TEMPLATE_BYTES:
            raise TemplateError(f"template exceeds {MAX_TEMPLATE_BYTES} bytes", name=name)
        self.text = text
        self.name = name
        try:
            self.tree: ParseTree = parse(text, name, frozenset(ALL_FUNCS))
            self.program = Program(self.tree)
        except RecursionError:
            raise TemplateError("template nesting too deep", name=name) from None
        self._vars: list[str] | None = None

    def __repr__(self) -> str:
        return f"Template({self.name!r})"

    def execute(self, data: Mapping[str, Any] | Any, *, limits: Limits = DEFAULT_LIMITS) -> str:
        """Render with ``data`` as dot (and ``$``)."""
        return self.program.execute(data, limits)

    # -- Ollama's views of the tree -----------------------------------------------------------------

    def vars(self) -> list[str]:
        """Ollama's ``Template.Vars()`` after ``Parse``: lower-cased, sorted identifiers of every
        template, including the ``response`` of the appended ``{{ .Response }}``.

        Raises TemplateError("undefined template specified") for ``{{template "x"}}`` with no
        pipeline, as Ollama does at parse time.
        """
        found = self.raw_vars()
        if "messages" not in found and "response" not in found:
            found = sorted([*found, "response"])
        return found

    def raw_vars(self) -> list[str]:
        """The identifiers of the template as written (before Ollama appends anything)."""
        if self._vars is None:
            found: set[str] = set()
            bodies = [*self.tree.defines.values(), self.tree.root]
            try:
                for body in bodies:
                    for node in body.nodes:
                        found.update(x.lower() for x in identifiers(node))
            except _IdentifierError as exc:
                raise TemplateError(str(exc), name=self.name) from None
            self._vars = sorted(found)
        return list(self._vars)

    @functools.cached_property
    def ollama_program(self) -> Program:
        """The program Ollama executes: ``{{ .Response }}`` appended unless the template
        mentions ``messages`` or ``response``."""
        tree = self.ollama_tree
        return self.program if tree is self.tree else Program(tree)

    @functools.cached_property
    def ollama_tree(self) -> ParseTree:
        variables = self.raw_vars()
        if "messages" in variables or "response" in variables:
            return self.tree
        root = n.ListNode([*self.tree.root.nodes, _response_action()])
        return ParseTree(self.tree.name, root, dict(self.tree.defines))

    @functools.cached_property
    def legacy_final_program(self) -> Program:
        """The last execution of Ollama's legacy loop: the tree cut after the first
        ``.Response`` field, without ``{{define}}``s, custom functions or ``missingkey=zero``."""
        root = cut_after_response(self.ollama_tree.root)
        return Program(ParseTree(self.tree.name, root), dict(BUILTINS), missing_zero=False)


def _response_action() -> n.ActionNode:
    return n.ActionNode(n.PipeNode([], False, [n.CommandNode([n.FieldNode(["Response"])])]))


@functools.lru_cache(maxsize=256)
def parse_template(text: str, name: str = "template") -> Template:
    """Parse (once; cached on the text and name) a Go template; TemplateError if it does not
    parse, or if Ollama would reject it (``{{template "x"}}`` without a pipeline)."""
    tmpl = Template(text, name)
    tmpl.vars()
    return tmpl


class _IdentifierError(Exception):
    pass


def identifiers(node: n.Node) -> list[str]:
    """Ollama's ``Identifiers``: field and variable idents, not inside chains or function names."""
    if isinstance(node, n.ListNode):
        out: list[str] = []
        for c in node.nodes:
            out.extend(identifiers(c))
        return out
    if isinstance(node, n.TemplateNode):
        if node.pipe is None:
            raise _IdentifierError("undefined template specified")
        return identifiers(node.pipe)
    if isinstance(node, n.ActionNode):
        return identifiers(node.pipe)
    if isinstance(node, (n.IfNode, n.RangeNode, n.WithNode)):
        out = identifiers(node.pipe)
        out.extend(identifiers(node.list))
        if node.else_list is not None:
            out.extend(identifiers(node.else_list))
        return out
    if isinstance(node, n.PipeNode):
        out = []
        for c in node.cmds:
            for a in c.args:
                out.extend(identifiers(a))
        return out
    if isinstance(node, (n.FieldNode, n.VariableNode)):
        return list(node.idents)
    return []


class _Cut:
    def __init__(self) -> None:
        self.cut = False

    def hit(self, node: n.Node) -> bool:
        """Ollama's predicate: the first field naming Response starts the cut (and is kept)."""
        if isinstance(node, n.FieldNode) and "Response" in node.idents and not self.cut:
            self.cut = True
            return False
        return self.cut


def cut_after_response(root: n.ListNode) -> n.ListNode:
    """Ollama's ``deleteNode`` walk: delete every node visited after the first ``.Response``."""
    state = _Cut()
    result = _walk_cut(n.copy_tree(root), state)
    assert isinstance(result, n.ListNode)
    return result


def _walk_cut(node: n.Node, state: _Cut) -> n.Node | None:
    if state.hit(node):
        return None
    if isinstance(node, n.ListNode):
        kept = []
        for c in node.nodes:
            r = _walk_cut(c, state)
            if r is not None:
                kept.append(r)
        node.nodes = kept
        return node
    if isinstance(node, (n.IfNode, n.WithNode, n.RangeNode)):
        # Go walks the BranchNode (the pipe is not visited), then its lists.
        body = _walk_cut(node.list, state)
        if body is None:
            raise TemplateError("template: response cut removed a branch body")
        assert isinstance(body, n.ListNode)
        node.list = body
        if node.else_list is not None:
            other = _walk_cut(node.else_list, state)
            if other is None:
                # Ollama panics here (a nil interface asserted to *parse.ListNode).
                raise TemplateError("template: response cut inside a branch with an else")
            assert isinstance(other, n.ListNode)
            node.else_list = other
        return node
    if isinstance(node, n.ActionNode):
        pipe = _walk_cut(node.pipe, state)
        if pipe is None:
            return None
        assert isinstance(pipe, n.PipeNode)
        node.pipe = pipe
        return node
    if isinstance(node, n.PipeNode):
        commands = []
        for c in node.cmds:
            args = []
            for a in c.args:
                r = _walk_cut(a, state)
                if r is not None:
                    args.append(r)
            if not args:
                return None
            c.args = args
            commands.append(c)
        if not commands:
            return None
        node.cmds = commands
        return node
    return node
