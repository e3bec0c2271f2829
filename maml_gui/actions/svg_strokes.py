"""Make an SVG written by Qt's QSvgGenerator draw the same in every viewer.

Qt writes each curve in its data coordinates inside a group whose ``transform`` scales them
to the figure (e.g. ``matrix(54.2,0,0,-34.8,340,239)``), and keeps the on-screen line width
with ``vector-effect="non-scaling-stroke"``. A viewer that ignores that attribute (ImageMagick's
own renderer, for one) scales the 2-px line by the transform: a curve becomes a band dozens of
pixels wide. Here such groups get their coordinates mapped into the figure's and an identity
transform, which every viewer draws as intended (and Qt's renderer exactly as before).

Qt-free: plain text and ``xml.etree``. Only groups whose children are all paths or polylines
drawn with a non-scaling (or no) stroke, in the absolute commands Qt writes (M, L, C, Z), are
rewritten; anything else is left exactly as it was.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
IDENTITY = "matrix(1,0,0,1,0,0)"
_MATRIX = re.compile(r"^\s*matrix\(([^)]*)\)\s*$")
_TOKEN = re.compile(r"[A-Za-z]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_PATH_COMMANDS = set("MLCZ")


def flatten_strokes(svg: str) -> str:
    """``svg`` with every scaled group of non-scaling strokes mapped into figure coordinates."""
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", XLINK_NS)
    root = ET.fromstring(svg)
    changed = False
    for group in root.iter(f"{{{SVG_NS}}}g"):
        matrix = _scaling_matrix(group.get("transform"))
        if matrix is not None and _flatten_group(group, matrix):
            group.set("transform", IDENTITY)
            changed = True
    if not changed:
        return svg
    return '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n' + ET.tostring(root, encoding="unicode")


def _scaling_matrix(transform: str | None) -> tuple[float, ...] | None:
    """The six numbers of a ``matrix(...)`` transform that does more than translate; else None."""
    match = _MATRIX.match(transform or "")
    if not match:
        return None
    try:
        values = tuple(float(v) for v in match.group(1).split(","))
    except ValueError:
        return None
    if len(values) != 6 or values[:4] == (1.0, 0.0, 0.0, 1.0):
        return None
    return values


def _flatten_group(group: ET.Element, matrix: tuple[float, ...]) -> bool:
    """Map the children's coordinates through ``matrix``; False (nothing changed) if any child is
    not a path or polyline with a non-scaling (or no) stroke in the commands Qt writes."""
    children = list(group)
    if not children:
        return False
    stroked = group.get("stroke") != "none"
    mapped = []
    for child in children:
        tag = child.tag.rsplit("}", 1)[-1]
        if stroked and child.get("vector-effect") != "non-scaling-stroke":
            return False
        if tag == "path":
            value = _map_path(child.get("d", ""), matrix)
            key = "d"
        elif tag in ("polyline", "polygon"):
            value = _map_points(child.get("points", ""), matrix)
            key = "points"
        else:
            return False
        if value is None:
            return False
        mapped.append((child, key, value))
    for child, key, value in mapped:
        child.set(key, value)
    return True


def _map(x: float, y: float, m: tuple[float, ...]) -> str:
    a, b, c, d, e, f = m
    return f"{_number(a * x + c * y + e)},{_number(b * x + d * y + f)}"


def _number(v: float) -> str:
    text = f"{v:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _map_path(d: str, m: tuple[float, ...]) -> str | None:
    tokens = _TOKEN.findall(d.replace(",", " "))
    if "".join(_TOKEN.sub("", d.replace(",", " ")).split()):
        return None   # something the tokenizer does not know (nan, inf, ...)
    out, numbers = [], []
    for token in tokens + ["Z"]:
        if token.isalpha():
            if len(numbers) % 2:
                return None
            out.extend(_map(numbers[i], numbers[i + 1], m) for i in range(0, len(numbers), 2))
            numbers = []
            if token not in _PATH_COMMANDS:
                return None
            out.append(token)
        else:
            numbers.append(float(token))
    out.pop()   # the "Z" added to flush the last command
    return " ".join(out)


def _map_points(points: str, m: tuple[float, ...]) -> str | None:
    try:
        numbers = [float(v) for v in points.replace(",", " ").split()]
    except ValueError:
        return None
    if len(numbers) % 2:
        return None
    return " ".join(_map(numbers[i], numbers[i + 1], m) for i in range(0, len(numbers), 2))
