"""An exported SVG draws its curves in the figure's coordinates, so viewers that ignore
``vector-effect="non-scaling-stroke"`` do not turn 2-px lines into bands; nothing else changes."""

import xml.etree.ElementTree as ET

from maml_gui.actions.svg_strokes import flatten_strokes

NS = "{http://www.w3.org/2000/svg}"
HEAD = ('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<svg width="100" height="50" viewBox="0 0 100 50" '
        'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">')


def groups(svg: str) -> list[ET.Element]:
    return list(ET.fromstring(svg).iter(f"{NS}g"))


def test_scaled_curves_are_mapped_into_the_figure_and_keep_their_width():
    svg = HEAD + (
        '<g stroke="#1f77b4" stroke-width="2" transform="matrix(10,0,0,-5,20,40)">'
        '<path vector-effect="non-scaling-stroke" d="M0,0 L1,2 C1.5,2 2,3 3,4 Z"/>'
        '<polyline fill="none" vector-effect="non-scaling-stroke" points="0,0 2,1 "/></g></svg>')
    out = flatten_strokes(svg)
    (group,) = groups(out)
    path, line = list(group)
    assert group.get("transform") == "matrix(1,0,0,1,0,0)" and group.get("stroke-width") == "2"
    assert path.get("d") == "M 20,40 L 30,30 C 35,30 40,25 50,20 Z"
    assert line.get("points") == "20,40 40,35"


def test_text_images_scaling_strokes_and_unknown_path_data_are_left_alone():
    kept = [
        '<g transform="matrix(1,0,0,1,5,5)"><path vector-effect="non-scaling-stroke" d="M0,0 L1,1"/></g>',   # translation
        '<g transform="matrix(2,0,0,2,0,0)"><text x="1" y="1">a</text></g>',
        '<g stroke="#000" transform="matrix(2,0,0,2,0,0)"><path d="M0,0 L1,1"/></g>',   # a stroke that scales
        '<g transform="matrix(2,0,0,2,0,0)"><path vector-effect="non-scaling-stroke" d="M0,0 l1,1"/></g>',
        '<g transform="matrix(2,0,0,2,0,0)"><path vector-effect="non-scaling-stroke" d="M0,0 L1,nan"/></g>',
    ]
    svg = HEAD + "".join(kept) + "</svg>"
    assert flatten_strokes(svg) == svg


def test_filled_shapes_without_a_stroke_are_mapped_exactly():
    svg = HEAD + ('<g fill="#fff" stroke="none" transform="matrix(7,0,0,7,50,25)">'
                  '<path fill-rule="evenodd" d="M0.5,0 C0.5,0.276 0.276,0.5 0,0.5"/></g></svg>')
    (group,) = groups(flatten_strokes(svg))
    assert group[0].get("d") == "M 53.5,25 C 53.5,26.932 51.932,28.5 50,28.5"
