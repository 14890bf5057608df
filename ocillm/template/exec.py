"""Execute a parsed Go template: the tree is compiled once into Python closures.

Semantics follow Go's ``text/template/exec.go``: pipelines pass the previous value as the last
argument, variables are lexically scoped to the end of their control structure (resolved to slots
at compile time; an undefined variable is a parse error, as in Go), ``range`` over maps visits keys
in sorted order, ``{{break}}``/``{{continue}}`` end or skip an iteration, a missing map key is
the zero value (``missingkey=zero``) or Go's invalid value. The sandbox bounds range iterations,
template call depth and output size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ocillm.errors import TemplateError

from . import nodes as n
from .funcs import ALL_FUNCS, Func, FuncError, eq, truth
from .gofmt import sprint_value
from .gotypes import NO_VALUE, GoMap, GoSlice, GoStruct, NilPointer, OrderedMap, type_name
from .parser import ParseTree


@dataclass(frozen=True)
class Limits:
    """Sandbox bounds for one execution."""

    max_iterations: int = 100_000
    max_depth: int = 100
    max_output: int = 16 * 1024 * 1024


DEFAULT_LIMITS = Limits()


class ExecError(Exception):
    """An error while evaluating; turned into a positioned TemplateError by the command wrapper."""


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _State:
    __slots__ = ("depth", "iterations", "limits", "missing_zero", "out", "program", "size")

    def __init__(self, program: Program, limits: Limits) -> None:
        self.program = program
        self.limits = limits
        self.missing_zero = program.missing_zero
        self.out: list[str] = []
        self.size = 0
        self.iterations = 0
        self.depth = 0

    def write(self, s: str) -> None:
        self.out.append(s)
        self.size += len(s)
        if self.size > self.limits.max_output:
            raise TemplateError(
                f"output exceeds {self.limits.max_output} bytes", name=self.program.name
            )


Frame = list[Any]
Run = Callable[[_State, Any, Frame], None]
Expr = Callable[[_State, Any, Frame], Any]
Cmd = Callable[[_State, Any, Frame, Any], Any]

_NO_FINAL = object()  # "no value from a previous pipeline stage"


def _arg_value(v: Any) -> Any:
    """A value passed to a function: an invalid value becomes nil."""
    return None if v is NO_VALUE else v


# ---- field access ----------------------------------------------------------------------------------


def _methods(v: Any) -> dict[str, Callable[..., Any]]:
    if isinstance(v, (GoStruct, GoSlice, GoMap, OrderedMap)):
        return getattr(type(v), "methods", {})
    return {}


def get_field(st: _State, receiver: Any, name: str, args: list[Any] | None, has_final: bool) -> Any:
    """One step of a field chain (Go's evalField). ``args`` are method arguments, if any."""
    has_args = bool(args) or has_final
    if receiver is NO_VALUE:
        return NO_VALUE
    if type(receiver) is dict:
        if has_args:
            raise ExecError(f"{name} is not a method but has arguments")
        value = receiver.get(name, NO_VALUE)
        if value is NO_VALUE and st.missing_zero:
            return None
        return value
    if receiver is None:
        raise ExecError(f"nil pointer evaluating interface {{}}.{name}")
    methods = _methods(receiver)
    if name in methods:
        if isinstance(receiver, NilPointer):
            raise ExecError(f"nil pointer evaluating {receiver.type_name}.{name}")
        try:
            return methods[name](receiver, *(args or []))
        except TypeError:
            raise ExecError(f"wrong number of args for {name}") from None
    if isinstance(receiver, GoStruct):
        if name in receiver.fields:
            if has_args:
                raise ExecError(f"{name} has arguments but cannot be invoked as function")
            return getattr(receiver, name)
    elif isinstance(receiver, Mapping) and not isinstance(receiver, OrderedMap):
        if has_args:
            raise ExecError(f"{name} is not a method but has arguments")
        value = receiver.get(name, NO_VALUE)
        if value is NO_VALUE and st.missing_zero:
            return None
        return value
    elif isinstance(receiver, NilPointer):
        raise ExecError(f"nil pointer evaluating {receiver.type_name}.{name}")
    raise ExecError(f"can't evaluate field {name} in type {type_name(receiver)}")


def _field_chain(st: _State, receiver: Any, names: list[str], args: list[Any], final: Any) -> Any:
    last = len(names) - 1
    for i, name in enumerate(names):
        if i < last:
            receiver = get_field(st, receiver, name, None, False)
        else:
            call_args = list(args)
            if final is not _NO_FINAL:
                call_args.append(_arg_value(final))
            receiver = get_field(st, receiver, name, call_args, final is not _NO_FINAL)
    return receiver


# ---- printing ----------------------------------------------------------------------------------------


def print_value(v: Any) -> str:
    """What ``{{ pipeline }}`` writes: ``<no value>`` for nil/invalid, else fmt's ``%v``."""
    if type(v) is str:
        return v
    if v is None or v is NO_VALUE:
        return "<no value>"
    if isinstance(v, GoStruct) and v.pointer and v.go_string() is None:
        # text/template dereferences a pointer before printing it
        return "{" + " ".join(sprint_value(x, 1) for _, x in v.field_items()) + "}"
    return sprint_value(v)


# ---- the compiler ------------------------------------------------------------------------------------


class Program:
    """A compiled template set: the main template and its ``{{define}}``s."""

    def __init__(
        self,
        tree: ParseTree,
        funcs: Mapping[str, Func] | None = None,
        *,
        missing_zero: bool = True,
    ) -> None:
        self.name = tree.name
        self.funcs = dict(ALL_FUNCS if funcs is None else funcs)
        self.missing_zero = missing_zero
        self.templates: dict[str, tuple[Run, int]] = {}
        for define_name, body in tree.defines.items():
            self.templates[define_name] = _Compiler(self, define_name).compile(body)
        self.main, self.main_slots = _Compiler(self, self.name).compile(tree.root)

    def execute(self, data: Any, limits: Limits = DEFAULT_LIMITS) -> str:
        st = _State(self, limits)
        frame: Frame = [None] * self.main_slots
        frame[0] = data
        try:
            self.main(st, data, frame)
        except RecursionError:
            raise TemplateError("template recursion too deep", name=self.name) from None
        except (ExecError, FuncError) as exc:
            raise TemplateError(str(exc), name=self.name) from None
        return "".join(st.out)


@dataclass
class _Where:
    template: str
    node: str
    pos: n.Pos

    def error(self, message: str) -> TemplateError:
        return TemplateError(
            f'executing "{self.template}" at <{self.node}>: {message}',
            line=self.pos.line,
            column=self.pos.column,
            name=self.template,
        )


class _Compiler:
    def __init__(self, program: Program, name: str) -> None:
        self.program = program
        self.name = name
        self.scopes: list[dict[str, int]] = [{"$": 0}]
        self.nslots = 1
        self.range_depth = 0
        self.pos = n.Pos()

    def compile(self, body: n.ListNode) -> tuple[Run, int]:
        run = self.block(body)
        return run, self.nslots

    def fail(self, message: str, pos: n.Pos | None = None) -> TemplateError:
        p = pos or self.pos
        return TemplateError(message, line=p.line, column=p.column, name=self.name)

    # -- variables ----------------------------------------------------------------------------------

    def declare(self, name: str) -> int:
        slot = self.nslots
        self.nslots += 1
        self.scopes[-1][name] = slot
        return slot

    def lookup(self, name: str) -> int:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        raise self.fail(f"undefined variable {name!r}".replace("'", '"'))

    # -- lists and control --------------------------------------------------------------------------

    def block(self, body: n.ListNode) -> Run:
        runs: list[Run] = []
        for x in body.nodes:
            r = self.node(x)
            if r is not None:
                runs.append(r)
        if not runs:
            return _nothing
        if len(runs) == 1:
            return runs[0]
        seq = tuple(runs)

        def run_list(st: _State, dot: Any, frame: Frame) -> None:
            for r in seq:
                r(st, dot, frame)

        return run_list

    def node(self, node: n.Node) -> Run | None:
        if isinstance(node, n.Text):
            return self.text(node.text)
        if isinstance(node, n.ActionNode):
            self.pos = node.pos
            return self.action(node)
        if isinstance(node, n.IfNode):
            self.pos = node.pos
            return self.if_with(node, is_with=False)
        if isinstance(node, n.WithNode):
            self.pos = node.pos
            return self.if_with(node, is_with=True)
        if isinstance(node, n.RangeNode):
            self.pos = node.pos
            return self.range(node)
        if isinstance(node, n.TemplateNode):
            self.pos = node.pos
            return self.template(node)
        if isinstance(node, n.BreakNode):
            if self.range_depth == 0:
                raise self.fail("{{break}} outside {{range}}", node.pos)
            return _do_break
        if isinstance(node, n.ContinueNode):
            if self.range_depth == 0:
                raise self.fail("{{continue}} outside {{range}}", node.pos)
            return _do_continue
        raise self.fail(f"unexpected node {type(node).__name__}")

    def text(self, text: str) -> Run:
        size = len(text)

        def run_text(st: _State, dot: Any, frame: Frame) -> None:
            st.out.append(text)
            st.size += size

        return run_text

    def action(self, node: n.ActionNode) -> Run:
        pipe = self.pipeline(node.pipe)
        if node.pipe.decl:

            def run_decl(st: _State, dot: Any, frame: Frame) -> None:
                pipe(st, dot, frame)

            return run_decl

        def run_action(st: _State, dot: Any, frame: Frame) -> None:
            v = pipe(st, dot, frame)
            st.write(v if type(v) is str else print_value(v))

        return run_action

    def if_with(self, node: n.IfNode | n.WithNode, *, is_with: bool) -> Run:
        self.scopes.append({})
        pipe = self.pipeline(node.pipe)
        body = self.block(node.list)
        other = self.block(node.else_list) if node.else_list is not None else None
        self.scopes.pop()

        if is_with:

            def run_with(st: _State, dot: Any, frame: Frame) -> None:
                v = pipe(st, dot, frame)
                if truth(v):
                    body(st, v, frame)
                elif other is not None:
                    other(st, dot, frame)

            return run_with

        def run_if(st: _State, dot: Any, frame: Frame) -> None:
            if truth(pipe(st, dot, frame)):
                body(st, dot, frame)
            elif other is not None:
                other(st, dot, frame)

        return run_if

    def range(self, node: n.RangeNode) -> Run:
        self.scopes.append({})
        pipe_node = node.pipe
        decl = pipe_node.decl
        if pipe_node.is_assign:
            slots = [self.lookup(v) for v in decl]
            stripped = n.PipeNode([], False, pipe_node.cmds, pipe_node.pos)
        else:
            slots = []
            stripped = n.PipeNode([], False, pipe_node.cmds, pipe_node.pos)
        pipe = self.pipeline(stripped)
        if not pipe_node.is_assign:
            slots = [self.declare(v) for v in decl]
        self.range_depth += 1
        body = self.block(node.list)
        self.range_depth -= 1
        other = self.block(node.else_list) if node.else_list is not None else None
        self.scopes.pop()
        where = _Where(self.name, "range " + str(pipe_node), node.pos)
        # Go's order: with one variable it gets the element; with two, (index, element).
        elem_slot = slots[-1] if slots else -1
        index_slot = slots[0] if len(slots) > 1 else -1

        def run_range(st: _State, dot: Any, frame: Frame) -> None:
            val = pipe(st, dot, frame)
            if slots and pipe_node.is_assign:
                for s in slots:
                    frame[s] = val
            limit = st.limits.max_iterations
            if isinstance(val, dict) and not isinstance(val, OrderedMap):
                items: Any = ((k, val[k]) for k in sorted(val))
                count = len(val)
            elif isinstance(val, (list, tuple)):
                items = enumerate(val)
                count = len(val)
            elif isinstance(val, int) and not isinstance(val, bool):
                if index_slot >= 0:
                    raise where.error("can't use 2 iteration variables over an int")
                items = ((i, i) for i in range(val))
                count = max(val, 0)
            elif val is NO_VALUE or val is None:
                count = 0
                items = ()
            else:
                raise where.error(f"range can't iterate over {sprint_value(val)}")
            if count == 0:
                if other is not None:
                    other(st, dot, frame)
                return
            for key, elem in items:
                st.iterations += 1
                if st.iterations > limit:
                    raise where.error(f"range exceeds {limit} iterations")
                if elem_slot >= 0:
                    frame[elem_slot] = elem
                if index_slot >= 0:
                    frame[index_slot] = key
                try:
                    body(st, elem, frame)
                except _Continue:
                    continue
                except _Break:
                    break
                if st.size > st.limits.max_output:
                    raise where.error(f"output exceeds {st.limits.max_output} bytes")

        return run_range

    def template(self, node: n.TemplateNode) -> Run:
        pipe = self.pipeline(node.pipe) if node.pipe is not None else None
        name = node.name
        program = self.program
        where = _Where(self.name, f"template {name!r}".replace("'", '"'), node.pos)

        def run_template(st: _State, dot: Any, frame: Frame) -> None:
            target = program.templates.get(name)
            if target is None:
                raise where.error(f"template {name!r} not defined".replace("'", '"'))
            if st.depth >= st.limits.max_depth:
                raise where.error(f"exceeded maximum template depth ({st.limits.max_depth})")
            value = pipe(st, dot, frame) if pipe is not None else NO_VALUE
            run, nslots = target
            new_frame: Frame = [None] * nslots
            new_frame[0] = value
            st.depth += 1
            try:
                run(st, value, new_frame)
            finally:
                st.depth -= 1

        return run_template

    # -- pipelines and commands ---------------------------------------------------------------------

    def pipeline(self, pipe: n.PipeNode) -> Expr:
        cmds = [self.command(c) for c in pipe.cmds]
        if pipe.is_assign:
            slots = [self.lookup(v) for v in pipe.decl]
        else:
            slots = [self.declare(v) for v in pipe.decl]

        if len(cmds) == 1 and not slots:
            only = cmds[0]

            def run_pipe1(st: _State, dot: Any, frame: Frame) -> Any:
                return only(st, dot, frame, _NO_FINAL)

            return run_pipe1

        def run_pipe(st: _State, dot: Any, frame: Frame) -> Any:
            value: Any = _NO_FINAL
            for c in cmds:
                value = c(st, dot, frame, value)
            for s in slots:
                frame[s] = value
            return value

        return run_pipe

    def command(self, cmd: n.CommandNode) -> Cmd:
        where = _Where(self.name, str(cmd), self.pos)
        first = cmd.args[0]
        rest = cmd.args[1:]
        inner = self._command(first, rest, where)

        def run_command(st: _State, dot: Any, frame: Frame, final: Any) -> Any:
            try:
                return inner(st, dot, frame, final)
            except ExecError as exc:
                raise where.error(str(exc)) from None
            except FuncError as exc:
                raise where.error(str(exc)) from None

        return run_command

    def _command(self, first: n.Node, rest: list[n.Node], where: _Where) -> Cmd:
        if isinstance(first, n.FieldNode):
            names = first.idents
            args = [self.arg(a) for a in rest]
            if len(names) == 1 and not args:
                name = names[0]

                def field1(st: _State, dot: Any, frame: Frame, final: Any) -> Any:
                    if type(dot) is dict and final is _NO_FINAL:
                        v = dot.get(name, NO_VALUE)
                        if v is NO_VALUE and st.missing_zero:
                            return None
                        return v
                    if isinstance(dot, GoStruct) and final is _NO_FINAL and name in dot.fields:
                        return getattr(dot, name)
                    return _field_chain(st, dot, names, [], final)

                return field1

            def field_cmd(st: _State, dot: Any, frame: Frame, final: Any) -> Any:
                values = [_arg_value(a(st, dot, frame)) for a in args]
                return _field_chain(st, dot, names, values, final)

            return field_cmd
        if isinstance(first, n.VariableNode):
            slot = self.lookup(first.idents[0])
            names = first.idents[1:]
            args = [self.arg(a) for a in rest]
            if not names:
                self._not_a_function(rest, where)

                def var_cmd(st: _State, dot: Any, frame: Frame, final: Any) -> Any:
                    if final is not _NO_FINAL:
                        raise ExecError(f"can't give argument to non-function {first}")
                    return frame[slot]

                return var_cmd

            def var_chain(st: _State, dot: Any, frame: Frame, final: Any) -> Any:
                values = [_arg_value(a(st, dot, frame)) for a in args]
                return _field_chain(st, frame[slot], names, values, final)

            return var_chain
        if isinstance(first, n.ChainNode):
            base = self.operand(first.node)
            names = first.fields
            args = [self.arg(a) for a in rest]

            def chain_cmd(st: _State, dot: Any, frame: Frame, final: Any) -> Any:
                values = [_arg_value(a(st, dot, frame)) for a in args]
                return _field_chain(st, base(st, dot, frame), names, values, final)

            return chain_cmd
        if isinstance(first, n.IdentifierNode):
            return self.function(first.name, rest)
        if isinstance(first, n.PipeNode):
            self._not_a_function(rest, where)
            sub = self.pipeline_scoped(first)

            def paren_cmd(st: _State, dot: Any, frame: Frame, final: Any) -> Any:
                if final is not _NO_FINAL:
                    raise ExecError(f"can't give argument to non-function {first}")
                return sub(st, dot, frame)

            return paren_cmd
        if isinstance(first, n.NilNode):
            raise self.fail("nil is not a command")
        self._not_a_function(rest, where)
        value = self.operand(first)

        def const_cmd(st: _State, dot: Any, frame: Frame, final: Any) -> Any:
            if final is not _NO_FINAL:
                raise ExecError(f"can't give argument to non-function {first}")
            return value(st, dot, frame)

        return const_cmd

    def _not_a_function(self, rest: list[n.Node], where: _Where) -> None:
        if rest:
            raise self.fail(f"can't give argument to non-function {where.node.split(' ')[0]}")

    def pipeline_scoped(self, pipe: n.PipeNode) -> Expr:
        return self.pipeline(pipe)

    def function(self, name: str, rest: list[n.Node]) -> Cmd:
        func = self.program.funcs.get(name)
        args = [self.arg(a) for a in rest]
        if func is None:

            def undefined(st: _State, dot: Any, frame: Frame, final: Any) -> Any:
                raise ExecError(f"{name!r} is not a defined function".replace("'", '"'))

            return undefined
        fn = func.fn
        lo, hi = func.min_args, func.max_args

        def check(count: int) -> None:
            if count < lo or (hi is not None and count > hi):
                want = str(lo) if hi == lo else f"at least {lo}"
                raise ExecError(f"wrong number of args for {name}: want {want} got {count}")

        if name in ("and", "or"):
            is_and = name == "and"

            def lazy(st: _State, dot: Any, frame: Frame, final: Any) -> Any:
                count = len(args) + (final is not _NO_FINAL)
                check(count)
                value: Any = None
                for a in args:
                    value = _arg_value(a(st, dot, frame))
                    if truth(value) != is_and:
                        return value
                if final is not _NO_FINAL:
                    value = _arg_value(final)
                return value

            return lazy
        if name == "eq" and len(args) == 2:
            a0, a1 = args

            def eq2(st: _State, dot: Any, frame: Frame, final: Any) -> Any:
                x = a0(st, dot, frame)
                y = a1(st, dot, frame)
                if final is _NO_FINAL and type(x) is str and type(y) is str:
                    return x == y
                values = [_arg_value(x), _arg_value(y)]
                if final is not _NO_FINAL:
                    values.append(_arg_value(final))
                return eq(*values)

            return eq2

        max_output = 4096  # results shorter than this need no check

        def call(st: _State, dot: Any, frame: Frame, final: Any) -> Any:
            values = [a(st, dot, frame) for a in args]
            if NO_VALUE in values:
                values = [_arg_value(v) for v in values]
            if final is not _NO_FINAL:
                values.append(_arg_value(final))
            check(len(values))
            result = fn(*values)
            if (
                type(result) is str
                and len(result) > max_output
                and len(result) > st.limits.max_output
            ):
                raise ExecError(f"value exceeds {st.limits.max_output} bytes")
            return result

        return call

    # -- operands -----------------------------------------------------------------------------------

    def arg(self, node: n.Node) -> Expr:
        """An argument of a command (Go's evalArg): fields, variables, constants, sub-pipelines."""
        if isinstance(node, n.IdentifierNode):
            # A bare function name as an argument is called with no arguments.
            call = self.function(node.name, [])

            def ident_arg(st: _State, dot: Any, frame: Frame) -> Any:
                return call(st, dot, frame, _NO_FINAL)

            return ident_arg
        return self.operand(node)

    def operand(self, node: n.Node) -> Expr:
        if isinstance(node, n.FieldNode):
            names = node.idents
            if len(names) == 1:
                name = names[0]

                def field1_arg(st: _State, dot: Any, frame: Frame) -> Any:
                    if type(dot) is dict:
                        v = dot.get(name, NO_VALUE)
                        if v is NO_VALUE and st.missing_zero:
                            return None
                        return v
                    if isinstance(dot, GoStruct) and name in dot.fields:
                        return getattr(dot, name)
                    return get_field(st, dot, name, None, False)

                return field1_arg

            def field_arg(st: _State, dot: Any, frame: Frame) -> Any:
                return _field_chain(st, dot, names, [], _NO_FINAL)

            return field_arg
        if isinstance(node, n.VariableNode):
            slot = self.lookup(node.idents[0])
            names = node.idents[1:]
            if not names:
                return lambda st, dot, frame: frame[slot]

            def var_arg(st: _State, dot: Any, frame: Frame) -> Any:
                return _field_chain(st, frame[slot], names, [], _NO_FINAL)

            return var_arg
        if isinstance(node, n.DotNode):
            return lambda st, dot, frame: dot
        if isinstance(node, n.NilNode):
            return lambda st, dot, frame: None
        if isinstance(node, (n.BoolNode, n.NumberNode, n.StringNode)):
            value = node.value
            return lambda st, dot, frame: value
        if isinstance(node, n.PipeNode):
            return self.pipeline(node)
        if isinstance(node, n.ChainNode):
            base = self.operand(node.node)
            names = node.fields

            def chain_arg(st: _State, dot: Any, frame: Frame) -> Any:
                return _field_chain(st, base(st, dot, frame), names, [], _NO_FINAL)

            return chain_arg
        if isinstance(node, n.IdentifierNode):
            return self.arg(node)
        raise self.fail(f"can't handle {node} as an argument")


def _nothing(st: _State, dot: Any, frame: Frame) -> None:
    return None


def _do_break(st: _State, dot: Any, frame: Frame) -> None:
    raise _Break


def _do_continue(st: _State, dot: Any, frame: Frame) -> None:
    raise _Continue
