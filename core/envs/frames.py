"""Pictures of an environment for the task view: what a family that can draw itself offers.

A family with frames has ``render_frames(task, observations, actions, seed, times, size)``: the images
``[height, width, 3]`` (uint8 RGB) of one recorded trajectory at the time steps ``times`` (the state
before each of those actions), drawn from the recorded observations or replayed from the reset ``seed``
with the recorded actions. It raises :class:`FramesUnavailable` with one short line when it cannot draw
(no offscreen renderer, a renderer that needs a package not installed), so the view can say why.
"""

from __future__ import annotations

import numpy as np

FRAME_SIZE = (160, 120)   # width, height: small, so a few frames of two episodes cost little to draw and send


class FramesUnavailable(Exception):
    """This family cannot draw frames here; the message says why in one line."""


def fitted(image, size: tuple[int, int]) -> np.ndarray:
    """``image`` (an RGB or RGBA array) as uint8 RGB of exactly ``size`` (width, height)."""
    from PIL import Image

    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise FramesUnavailable(f"the renderer returned an array of shape {array.shape}, not an RGB image")
    array = np.ascontiguousarray(array[..., :3]).astype(np.uint8, copy=False)
    if (array.shape[1], array.shape[0]) != tuple(size):
        array = np.asarray(Image.fromarray(array).resize(tuple(size), Image.Resampling.BILINEAR))
    return array


def one_line(exc: BaseException) -> str:
    """An exception as one short line (its first line, at most 160 characters), for the view."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= 160 else text[:157] + "…"
