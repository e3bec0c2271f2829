"""Tests for core.tasks.formula: the whitelisted formula language that defines task families.

Errors are user-facing, so besides values these tests pin that every error names the
offending token and points at the right character.
"""

import math
import pickle
from pathlib import Path

import pytest
import torch

from core.tasks.formula import MAX_DEPTH, MAX_LENGTH, Formula, FormulaError, parse_formula

T, N = 3, 7


@pytest.fixture
def x():
    return torch.linspace(-2.0, 2.0, N, dtype=torch.float64).view(1, N, 1).repeat(T, 1, 1)


def p(*values):
    """A per-task parameter of shape [T, 1, 1]."""
    return torch.tensor(values, dtype=torch.float64).view(T, 1, 1)


# ----------------------------------------------------------------------------- values

def test_sine_family_broadcasts_per_task(x):
    f = Formula("a*sin(b*x + c)")
    a, b, c = p(1.0, 2.0, -0.5), p(0.5, 1.0, 3.0), p(0.0, 0.3, -1.0)
    y = f.evaluate(x, {"a": a, "b": b, "c": c})
    assert y.shape == (T, N, 1)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, a * torch.sin(b * x + c))


@pytest.mark.parametrize("text, expected", [
    ("-x^2", lambda x: -(x ** 2)),
    ("-x**2", lambda x: -(x ** 2)),
    ("(-x)^2", lambda x: x ** 2),
    ("x**2", lambda x: x ** 2),
    ("x^-1", lambda x: x ** -1.0),
    ("2^-x", lambda x: 2.0 ** -x),
    ("+x - -x", lambda x: 2 * x),
    ("1 - x - x", lambda x: 1 - 2 * x),
    ("x / 2 / 4", lambda x: x / 8),
    ("2*x + 3*x*x", lambda x: 2 * x + 3 * x * x),
    ("sin(cos(exp(x/4)))", lambda x: torch.sin(torch.cos(torch.exp(x / 4)))),
    ("sqrt(abs(x)) + log(1 + x^2) + log10(2 + x)",
     lambda x: torch.sqrt(torch.abs(x)) + torch.log(1 + x ** 2) + torch.log10(2 + x)),
    ("tanh(x) + sinh(x) - cosh(x) + atan(x) + tan(x/3)",
     lambda x: torch.tanh(x) + torch.sinh(x) - torch.cosh(x) + torch.atan(x) + torch.tan(x / 3)),
    ("asin(x/2) + acos(x/3)", lambda x: torch.asin(x / 2) + torch.acos(x / 3)),
    ("sign(x) * floor(x) + ceil(x) - round(x*1.3)",
     lambda x: torch.sign(x) * torch.floor(x) + torch.ceil(x) - torch.round(x * 1.3)),
    ("min(x, 0.5) + max(x, -1)", lambda x: torch.clamp(x, max=0.5) + torch.clamp(x, min=-1)),
    ("clip(x, -1, 1.5)", lambda x: torch.clamp(x, -1, 1.5)),
    ("atan2(x, 2)", lambda x: torch.atan2(x, torch.full_like(x, 2.0))),
    ("atan2(1, x)", lambda x: torch.atan2(torch.ones_like(x), x)),
    ("pow(2, x)", lambda x: 2.0 ** x),
    ("pi*x + e", lambda x: math.pi * x + math.e),
    ("1e-3*x + 2.5E+2 + .5 + 3. + 1e2", lambda x: 1e-3 * x + 250 + 0.5 + 3.0 + 100),
    ("x*sin(x)^2", lambda x: x * torch.sin(x) ** 2),
])
def test_values_match_torch(x, text, expected):
    torch.testing.assert_close(Formula(text).evaluate(x, {}), expected(x))


def test_power_is_right_associative():
    x = torch.zeros(2)
    torch.testing.assert_close(Formula("2^3^2").evaluate(x, {}), torch.full((2,), 512.0))
    torch.testing.assert_close(Formula("2**3**2").evaluate(x, {}), torch.full((2,), 512.0))
    torch.testing.assert_close(Formula("(2^3)^2").evaluate(x, {}), torch.full((2,), 64.0))


def test_parameters_in_min_max_clip_atan2_broadcast(x):
    f = Formula("clip(a*x, lo, hi) + min(x, b) + max(x, b) + atan2(b, x)")
    a, lo, hi, b = p(1, 2, 3), p(-1, -0.5, 0), p(1, 0.5, 2), p(0.1, -0.2, 0.3)
    y = f.evaluate(x, {"a": a, "lo": lo, "hi": hi, "b": b})
    want = (torch.clamp(a * x, lo, hi) + torch.minimum(x, b) + torch.maximum(x, b)
            + torch.atan2(b.expand_as(x), x))
    torch.testing.assert_close(y, want)


def test_constant_formula_is_allowed_and_broadcast(x):
    y = Formula("a + pi").evaluate(x, {"a": p(1, 2, 3)})
    assert y.shape == x.shape
    torch.testing.assert_close(y, (p(1, 2, 3) + math.pi).expand_as(x))
    z = Formula("3").evaluate(x, {})
    assert z.shape == x.shape and torch.all(z == 3)
    assert not Formula("3").uses_variable and Formula("sin(x)").uses_variable


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_keeps_dtype(dtype):
    x = torch.linspace(0, 1, 5, dtype=dtype).view(1, 5, 1)
    a = torch.ones(1, 1, 1, dtype=dtype)
    for text in ("a*sin(2*x) + pi", "min(x, 0.5)", "atan2(1, x)", "2^3", "clip(x, 0, a)"):
        assert Formula(text).evaluate(x, {"a": a}).dtype == dtype, text


def test_float_params_and_custom_variable():
    t = torch.tensor([0.0, 1.0, 2.0])
    f = Formula("k*t + x", variable="t")
    assert f.parameters == ("k", "x")
    torch.testing.assert_close(f.evaluate(t, {"k": 2.0, "x": 1.0}), 2 * t + 1)


def test_division_by_zero_follows_torch():
    y = Formula("1/x + 0/0 + 1/0").evaluate(torch.tensor([0.0, 1.0]), {})
    assert torch.isinf(y[0]) or torch.isnan(y[0])
    assert torch.isnan(y[1])
    assert torch.isinf(Formula("10^400").evaluate(torch.zeros(1, dtype=torch.float64), {})).all()


def test_differentiable():
    x = torch.linspace(0, 1, 4, dtype=torch.float64, requires_grad=True)
    a = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    Formula("a*x^2").evaluate(x, {"a": a}).sum().backward()
    torch.testing.assert_close(x.grad, 2 * a.detach() * x.detach())
    torch.testing.assert_close(a.grad, (x.detach() ** 2).sum())


def test_parse_formula_and_pickle():
    f = parse_formula("a*x")
    assert isinstance(f, Formula) and f.text == "a*x" and f == Formula("a*x")
    g = pickle.loads(pickle.dumps(f))
    assert g == f and g.parameters == ("a",)
    err = pickle.loads(pickle.dumps(FormulaError("boom", 3, "y", "x + y")))
    assert (err.message, err.position, err.token) == ("boom", 3, "y")


# ----------------------------------------------------------------------------- parameters

@pytest.mark.parametrize("text, params", [
    ("a*sin(b*x + c)", ("a", "b", "c")),
    ("c + b*x + a*c + b", ("c", "b", "a")),
    ("amp_1 * exp(-decay*x) + pi + e", ("amp_1", "decay")),
    ("x^2", ()),
    ("sin(x) * A + _b", ("A", "_b")),
    ("exponent * x", ("exponent",)),  # contains a function name as a prefix: still a name
])
def test_parameters_in_order_of_first_appearance(text, params):
    assert Formula(text).parameters == params


def test_missing_parameter_names_it(x):
    f = Formula("a*x + bias")
    with pytest.raises(FormulaError) as info:
        f.evaluate(x, {"a": p(1, 2, 3)})
    assert info.value.token == "bias" and info.value.position == 6
    assert "bias" in str(info.value)


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("text, position, token, words", [
    ("a*sine(x)", 2, "sine", "unknown function"),
    ("2x", 1, "x", "implicit multiplication"),
    ("2 pi", 2, "pi", "missing operator"),
    ("2(x+1)", 1, "(", "implicit multiplication"),
    ("(a)(b)", 3, "(", "implicit multiplication"),
    ("a b", 2, "b", "missing operator"),
    ("x(2)", 0, "x", "not a function"),
    ("pi(2)", 0, "pi", "not a function"),
    ("a*/b", 2, "/", "unexpected"),
    ("*x", 0, "*", "unexpected"),
    ("x + $", 4, "$", "unexpected character"),
    ("x;", 1, ";", "unexpected character"),
    ("x ** 2 # comment", 7, "#", "unexpected character"),
    ("x²", 1, "²", "unexpected character"),
    ("x.real", 1, ".", "unexpected character"),
    ("sin", 0, "sin", "parentheses"),
    ("a*exp + x", 2, "exp", "parentheses"),
    ("sin x", 0, "sin", "parentheses"),
    ("sin(x", 3, "(", "missing closing parenthesis"),
    ("a*(x + (b", 7, "(", "missing closing parenthesis"),
    ("min(a, b", 3, "(", "missing closing parenthesis"),
    ("(a, b)", 2, ",", "expected ')'"),
    ("a + b)", 5, ")", "without a matching"),
    ("a, b", 1, ",", "unexpected ','"),
    ("min(a,)", 6, ")", "unexpected"),
    ("sin()", 0, "sin", "expects 1 argument, got 0"),
    ("min(x)", 0, "min", "expects 2 arguments, got 1"),
    ("sin(x, 1)", 0, "sin", "expects 1 argument, got 2"),
    ("clip(x, 1)", 0, "clip", "expects 3 arguments, got 2"),
    ("x + 1.2.3", 4, "1.2.3", "malformed number"),
    ("1e+ * x", 0, "1e+", "malformed number"),
    ("x*1e5.2", 2, "1e5.2", "malformed number"),
    ("1e999*x", 0, "1e999", "too large"),
])
def test_errors_point_at_token(text, position, token, words):
    with pytest.raises(FormulaError) as info:
        Formula(text)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.position == position
    assert err.token == token
    message = str(err)
    first = message.splitlines()[0]
    assert words in first
    assert f"'{token}'" in first
    assert f"position {position}" in first
    # The caret line sits right under the offending character of the echoed formula.
    formula_line, caret_line = message.splitlines()[1:3]
    assert formula_line == "  " + text
    assert caret_line == " " * (2 + position) + "^"


def test_error_reports_the_leftmost_problem():
    err = pytest.raises(FormulaError, Formula, "a*/b $").value
    assert (err.position, err.token) == (2, "/")


@pytest.mark.parametrize("text, position", [("a +", 3), ("sin(x) *", 8), ("-", 1), ("(", 1)])
def test_unexpected_end(text, position):
    err = pytest.raises(FormulaError, Formula, text).value
    assert err.position == position and err.token is None
    assert "end of formula" in str(err)


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty_formula(text):
    err = pytest.raises(FormulaError, Formula, text).value
    assert "empty" in str(err) and err.position == 0


def test_length_limit():
    Formula("+".join(["x"] * (MAX_LENGTH // 2)))  # 499 characters: fine
    err = pytest.raises(FormulaError, Formula, "x" + " " * MAX_LENGTH).value
    assert "too long" in str(err) and str(MAX_LENGTH) in str(err)


def test_depth_limit():
    Formula("(" * MAX_DEPTH + "x" + ")" * MAX_DEPTH)
    deep = "(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1)
    err = pytest.raises(FormulaError, Formula, deep).value
    assert "nested too deeply" in str(err) and err.position == MAX_DEPTH and err.token == "("
    for text in ["-" * 200 + "x", "sin(" * 60 + "x" + ")" * 60, "^".join(["x"] * 120)]:
        err = pytest.raises(FormulaError, Formula, text).value
        assert "nested too deeply" in str(err), text


def test_invalid_variable_name():
    for bad in ["sin", "pi", "2x", "", "a-b"]:
        with pytest.raises(FormulaError):
            Formula("x", variable=bad)


def test_error_message_has_caret_rendering():
    message = str(pytest.raises(FormulaError, Formula, "a*sine(x)").value)
    assert message.splitlines()[0].startswith("unknown function 'sine' at position 2")
    assert message.splitlines()[1:] == ["  a*sine(x)", "    ^"]


# ----------------------------------------------------------------------------- safety

@pytest.mark.parametrize("text, token", [
    ("__import__('os').system('echo hi')", "__import__"),
    ("().__class__", ")"),
    ("x.__class__", "."),
    ("eval('1')", "eval"),
    ("exec('x=1')", "exec"),
    ("open('/etc/passwd')", "open"),
    ("lambda: 1", ":"),
    ("[x for x in ()]", "["),
    ("x if 1 else 2", "if"),
    ("'x'", "'"),
    ("torch.sin(x)", "."),
])
def test_no_python_evaluation(text, token, capfd):
    with pytest.raises(FormulaError) as info:
        Formula(text)
    assert info.value.token == token
    assert "hi" not in capfd.readouterr().out


def test_python_names_are_just_parameters():
    # Python builtins and dunders are ordinary parameter names, never looked up anywhere.
    f = Formula("__class__ * x + os + sys")
    assert f.parameters == ("__class__", "os", "sys")
    y = f.evaluate(torch.ones(2), {"__class__": torch.tensor(2.0), "os": 1.0, "sys": 0.0})
    torch.testing.assert_close(y, torch.full((2,), 3.0))


def test_module_does_not_use_python_eval():
    import core.tasks.formula as mod

    source = Path(mod.__file__).read_text(encoding="utf-8")
    for banned in ("eval(", "exec(", "compile(", "import ast", "from ast", "__import__"):
        assert banned not in source, banned
