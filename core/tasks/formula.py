"""User-typed formulas such as ``a*sin(b*x + c)`` that define a regression task family.

``x`` (the *variable*) is the model input; every other name is a task parameter that
is sampled per task. The text comes from a person, so it is never handed to Python's
``eval``/``exec``/``compile`` or the ``ast`` module: a small tokenizer and a
recursive-descent parser accept only numbers, names, ``+ - * / ^ **``, parentheses and
a whitelist of functions, and the tree they build is compiled into nested closures
that call torch. Anything else is a :class:`FormulaError` that points at the token.

Grammar (lowest to highest precedence)::

    expr    := term (('+' | '-') term)*
    term    := unary (('*' | '/') unary)*
    unary   := ('+' | '-') unary | power
    power   := primary (('^' | '**') unary)?      # right-assoc; -x^2 == -(x^2)
    primary := NUMBER | NAME | NAME '(' expr (',' expr)* ')' | '(' expr ')'
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from ..errors import MamlError

__all__ = ["FormulaError", "Formula", "parse_formula", "FUNCTIONS", "CONSTANTS",
           "MAX_LENGTH", "MAX_DEPTH"]

#: Longest accepted formula, in characters: a formula is a one-liner typed into a form.
MAX_LENGTH = 500
#: Deepest accepted nesting of parentheses, calls, unary signs and exponents; keeps the
#: recursive parser and evaluator far from Python's recursion limit.
MAX_DEPTH = 50


class FormulaError(MamlError, ValueError):
    """A formula cannot be parsed or evaluated.

    ``position`` is the 0-based character offset of the offending token in the formula
    (or ``None`` when the problem has no single place), ``token`` its text (or ``None``,
    e.g. at the end of the formula), ``message`` the bare description, ``text`` the
    formula, ``hint`` an optional suggestion. ``str()`` gives a one-line description
    followed by the formula with a caret under the position, so the error can be shown
    to the person who typed it as is.
    """

    def __init__(self, message: str, position: int | None = None,
                 token: str | None = None, text: str | None = None, hint: str | None = None):
        # Everything goes to ``args`` so the error survives pickling (worker processes).
        super().__init__(message, position, token, text, hint)
        self.message = message
        self.position = position
        self.token = token
        self.text = text
        self.hint = hint

    def __str__(self) -> str:
        line = self.message
        if self.position is not None:
            line += f" at position {self.position}"
        if self.hint:
            line += f" ({self.hint})"
        if self.position is None or self.text is None or not self.text.strip():
            return line
        shown = self.text.replace("\t", " ").replace("\r", " ").replace("\n", " ")
        return f"{line}\n  {shown}\n  {' ' * self.position}^"


def _clip(v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    # min(max(.)) rather than torch.clamp: broadcasts tensor bounds of any dtype.
    return torch.minimum(torch.maximum(v, lo), hi)


#: Whitelisted functions: name -> (number of arguments, torch implementation).
FUNCTIONS: dict[str, tuple[int, Callable[..., torch.Tensor]]] = {
    "sin": (1, torch.sin), "cos": (1, torch.cos), "tan": (1, torch.tan),
    "asin": (1, torch.asin), "acos": (1, torch.acos), "atan": (1, torch.atan),
    "sinh": (1, torch.sinh), "cosh": (1, torch.cosh), "tanh": (1, torch.tanh),
    "exp": (1, torch.exp), "log": (1, torch.log), "log10": (1, torch.log10),
    "sqrt": (1, torch.sqrt), "abs": (1, torch.abs), "sign": (1, torch.sign),
    "floor": (1, torch.floor), "ceil": (1, torch.ceil),
    "round": (1, torch.round),  # halves go to the even neighbour, as in torch
    "min": (2, torch.minimum), "max": (2, torch.maximum),
    "pow": (2, torch.pow), "atan2": (2, torch.atan2),
    "clip": (3, _clip),
}

#: Named constants; they are not parameters.
CONSTANTS: dict[str, float] = {"pi": 3.141592653589793, "e": 2.718281828459045}

_EXPECT_OPERAND = "expected a number, a name or '('"


# --------------------------------------------------------------------------- tokens

class _Token(NamedTuple):
    kind: str  # NUM NAME OP LPAREN RPAREN COMMA END ERROR
    text: str
    pos: int
    error: str | None = None  # for kind ERROR: the message, raised when parsing reaches it


_SINGLE = {"+": "OP", "-": "OP", "*": "OP", "/": "OP", "^": "OP",
           "(": "LPAREN", ")": "RPAREN", ",": "COMMA"}
_DIGITS = frozenset("0123456789")
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_REST = _NAME_START | _DIGITS
_SPACE = frozenset(" \t\r\n")


def _is_name(s: str) -> bool:
    return bool(s) and s[0] in _NAME_START and all(c in _NAME_REST for c in s)


def _tokenize(text: str) -> list[_Token]:
    """Split ``text`` into tokens; a lexical error becomes an ERROR token so that errors
    are reported in left-to-right order when the parser reaches them."""
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _SPACE:
            i += 1
            continue
        start = i
        if c in _DIGITS or (c == "." and i + 1 < n and text[i + 1] in _DIGITS):
            while i < n and (text[i] in _DIGITS or text[i] == "."):
                i += 1
            bad = text.count(".", start, i) > 1
            if i < n and text[i] in "eE":
                j = i + 1
                if j < n and text[j] in "+-":
                    j += 1
                if j < n and text[j] in _DIGITS:
                    while j < n and text[j] in _DIGITS:
                        j += 1
                    i = j
                elif j > i + 1:  # "1e+" with no exponent digits
                    i, bad = j, True
            while i < n and (text[i] in _DIGITS or text[i] == "."):  # "1e5.2"
                i, bad = i + 1, True
            lit = text[start:i]
            if bad:
                tokens.append(_Token("ERROR", lit, start, f"malformed number '{lit}'"))
            elif float(lit) == float("inf"):
                tokens.append(_Token("ERROR", lit, start, f"number '{lit}' is too large"))
            else:
                tokens.append(_Token("NUM", lit, start))
        elif c in _NAME_START:
            while i < n and text[i] in _NAME_REST:
                i += 1
            tokens.append(_Token("NAME", text[start:i], start))
        elif text.startswith("**", i):
            i += 2
            tokens.append(_Token("OP", "**", start))
        elif c in _SINGLE:
            i += 1
            tokens.append(_Token(_SINGLE[c], c, start))
        else:
            i += 1
            tokens.append(_Token("ERROR", c, start, f"unexpected character {c!r}"))
    tokens.append(_Token("END", "", n))
    return tokens


# --------------------------------------------------------------------------- parser
# Tree nodes are plain tuples: ("num", value) ("var",) ("param", name) ("neg", child)
# ("bin", op, left, right) ("call", name, args); constants become ("num", value).

class _Parser:
    def __init__(self, text: str, variable: str):
        self.text = text
        self.variable = variable
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0
        self.parameters: list[str] = []
        self.param_pos: dict[str, int] = {}

    # -- helpers
    def error(self, message: str, tok: _Token, hint: str | None = None) -> FormulaError:
        token = tok.text if tok.kind != "END" else None
        return FormulaError(message, tok.pos, token, self.text, hint)

    def peek(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind == "ERROR":
            raise self.error(tok.error or "invalid token", tok)
        return tok

    def advance(self) -> _Token:
        tok = self.peek()
        self.i += 1
        return tok

    def enter(self, tok: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"formula is nested too deeply (more than {MAX_DEPTH} levels)", tok)

    def describe(self, tok: _Token) -> str:
        return "end of formula" if tok.kind == "END" else f"'{tok.text}'"

    # -- grammar
    def parse(self) -> tuple:
        if not self.text.strip():
            raise FormulaError("empty formula", 0, None, self.text)
        node = self.expr()
        tok = self.peek()
        if tok.kind == "RPAREN":
            raise self.error("unexpected ')' without a matching '('", tok)
        if tok.kind != "END":
            raise self.error(f"unexpected {self.describe(tok)} after a complete expression", tok)
        return node

    def expr(self) -> tuple:
        node = self.term()
        while self.peek().kind == "OP" and self.peek().text in ("+", "-"):
            op = self.advance().text
            node = ("bin", op, node, self.term())
        return node

    def term(self) -> tuple:
        node = self.unary()
        while self.peek().kind == "OP" and self.peek().text in ("*", "/"):
            op = self.advance().text
            node = ("bin", op, node, self.unary())
        return node

    def unary(self) -> tuple:
        tok = self.peek()
        if tok.kind == "OP" and tok.text in ("+", "-"):
            self.advance()
            self.enter(tok)
            operand = self.unary()
            self.depth -= 1
            return ("neg", operand) if tok.text == "-" else operand
        return self.power()

    def power(self) -> tuple:
        base = self.primary()
        tok = self.peek()
        if tok.kind in ("NUM", "NAME", "LPAREN"):
            raise self.error(f"missing operator before '{tok.text}'", tok,
                             "implicit multiplication is not allowed; write '*'")
        if tok.kind == "OP" and tok.text in ("^", "**"):
            self.advance()
            self.enter(tok)
            exponent = self.unary()  # right-assoc, and allows 2^-1
            self.depth -= 1
            return ("bin", "^", base, exponent)
        return base

    def primary(self) -> tuple:
        tok = self.peek()
        if tok.kind == "NUM":
            self.advance()
            return ("num", float(tok.text))
        if tok.kind == "LPAREN":
            self.advance()
            self.enter(tok)
            node = self.expr()
            self.close(tok)
            self.depth -= 1
            return node
        if tok.kind == "NAME":
            self.advance()
            if self.peek().kind == "LPAREN":
                return self.call(tok)
            return self.name(tok)
        if tok.kind == "END":
            raise self.error(f"unexpected end of formula, {_EXPECT_OPERAND}", tok)
        raise self.error(f"unexpected '{tok.text}', {_EXPECT_OPERAND}", tok)

    def close(self, opener: _Token) -> None:
        tok = self.peek()
        if tok.kind == "RPAREN":
            self.advance()
            return
        if tok.kind == "END":
            raise self.error("missing closing parenthesis for '('", opener,
                             "the formula ends before it is closed")
        raise self.error(f"unexpected {self.describe(tok)}, expected ')'", tok)

    def name(self, tok: _Token) -> tuple:
        name = tok.text
        if name in FUNCTIONS:
            raise self.error(f"function '{name}' used without parentheses", tok,
                             f"write {name}(...); a function name cannot be a parameter")
        if name == self.variable:
            return ("var",)
        if name in CONSTANTS:
            return ("num", CONSTANTS[name])
        if name not in self.param_pos:
            self.param_pos[name] = tok.pos
            self.parameters.append(name)
        return ("param", name)

    def call(self, tok: _Token) -> tuple:
        name = tok.text
        if name not in FUNCTIONS:
            known = f"known functions: {', '.join(sorted(FUNCTIONS))}"
            if name == self.variable:
                raise self.error(f"'{name}' is the input variable, not a function", tok,
                                 "implicit multiplication is not allowed; write '*'")
            if name in CONSTANTS:
                raise self.error(f"'{name}' is a constant, not a function", tok,
                                 "implicit multiplication is not allowed; write '*'")
            raise self.error(f"unknown function '{name}'", tok, known)
        opener = self.advance()
        self.enter(opener)
        args = []
        if self.peek().kind != "RPAREN":
            args.append(self.expr())
            while self.peek().kind == "COMMA":
                self.advance()
                args.append(self.expr())
        self.close(opener)
        self.depth -= 1
        arity = FUNCTIONS[name][0]
        if len(args) != arity:
            plural = "argument" if arity == 1 else "arguments"
            raise self.error(
                f"function '{name}' expects {arity} {plural}, got {len(args)}", tok)
        return ("call", name, tuple(args))


# --------------------------------------------------------------------------- compiler

_Env = dict  # name -> tensor
_Fn = Callable[[torch.Tensor, _Env], "torch.Tensor | float"]


def _as_tensor(v: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    return v if isinstance(v, torch.Tensor) else torch.tensor(v, dtype=x.dtype, device=x.device)


_BINARY: dict[str, Callable] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b,
    "*": lambda a, b: a * b, "/": lambda a, b: a / b, "^": lambda a, b: a ** b,
}


def _build(node: tuple) -> _Fn:
    """Turn a tree into one closure; numbers stay Python floats (torch treats them as
    scalars, so they never force a dtype or a host-to-device copy) until an operation
    has no tensor operand, where they become 0-d tensors so torch semantics (inf/nan
    instead of ZeroDivisionError/OverflowError) hold everywhere."""
    kind = node[0]
    if kind == "num":
        value = node[1]
        return lambda x, env: value
    if kind == "var":
        return lambda x, env: x
    if kind == "param":
        name = node[1]
        return lambda x, env: env[name]
    if kind == "neg":
        inner = _build(node[1])
        return lambda x, env: -inner(x, env)
    if kind == "bin":
        op, left, right = _BINARY[node[1]], _build(node[2]), _build(node[3])

        def binary(x, env):
            a, b = left(x, env), right(x, env)
            if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
                a = _as_tensor(a, x)
            return op(a, b)
        return binary
    if kind == "call":
        fn = FUNCTIONS[node[1]][1]
        args = [_build(a) for a in node[2]]
        return lambda x, env: fn(*(_as_tensor(a(x, env), x) for a in args))
    raise AssertionError(f"unknown node {kind!r}")  # pragma: no cover


# --------------------------------------------------------------------------- public API

class Formula:
    """A parsed, whitelisted formula; construct it to validate user input.

    ``parameters`` lists the task-parameter names in order of first appearance, so a UI
    can show one range editor per name in the order the person typed them.
    """

    def __init__(self, text: str, variable: str = "x"):
        if not isinstance(text, str):
            raise TypeError(f"formula must be a str, not {type(text).__name__}")
        if not _is_name(variable) or variable in FUNCTIONS or variable in CONSTANTS:
            raise FormulaError(f"invalid variable name {variable!r}", None, variable)
        if len(text) > MAX_LENGTH:
            raise FormulaError(
                f"formula is too long ({len(text)} characters, at most {MAX_LENGTH})",
                None, None, None)
        parser = _Parser(text, variable)
        self._tree = parser.parse()
        self.text: str = text
        self.variable: str = variable
        self.parameters: tuple[str, ...] = tuple(parser.parameters)
        self._param_pos = parser.param_pos
        self._fn = _build(self._tree)

    @property
    def uses_variable(self) -> bool:
        """False for a constant function of ``x`` (allowed, but a UI may want to warn)."""
        return _mentions_var(self._tree)

    def evaluate(self, x: torch.Tensor,
                 params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Evaluate with torch broadcasting; the result has the broadcast shape of ``x``
        and the parameters (e.g. x ``[T, N, 1]`` with parameters ``[T, 1, 1]`` gives
        ``[T, N, 1]``). Autograd flows through ``x`` and the parameter tensors.
        Non-finite values follow torch semantics; the caller checks finiteness."""
        params = {} if params is None else params
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x, dtype=torch.get_default_dtype())
        elif not (x.is_floating_point() or x.is_complex()):
            x = x.to(torch.get_default_dtype())
        env: dict[str, torch.Tensor] = {}
        for name in self.parameters:
            if name not in params:
                pos = self._param_pos[name]
                raise FormulaError(f"no value given for parameter '{name}'", pos, name,
                                   self.text)
            env[name] = _as_tensor(params[name], x)
        out = _as_tensor(self._fn(x, env), x)
        shape = torch.broadcast_shapes(x.shape, out.shape)
        if out.shape != shape:  # constant in x: give every point its own value
            out = out.expand(shape).contiguous()
        return out

    def __repr__(self) -> str:
        return f"Formula({self.text!r}, variable={self.variable!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Formula) and other.text == self.text
                and other.variable == self.variable)

    def __hash__(self) -> int:
        return hash((self.text, self.variable))

    def __reduce__(self):
        # Closures do not pickle; re-parsing the text rebuilds them.
        return (Formula, (self.text, self.variable))


def _mentions_var(node: tuple) -> bool:
    kind = node[0]
    if kind == "var":
        return True
    if kind == "neg":
        return _mentions_var(node[1])
    if kind == "bin":
        return _mentions_var(node[2]) or _mentions_var(node[3])
    if kind == "call":
        return any(_mentions_var(a) for a in node[2])
    return False


def parse_formula(text: str, variable: str = "x") -> Formula:
    """Parse ``text``; same as ``Formula(text, variable)``."""
    return Formula(text, variable)
