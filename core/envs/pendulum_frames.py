"""The pendulum families' frames, drawn with Pillow from the recorded observations (no renderer needed).

Drawn as gymnasium's Pendulum draws it: the pivot in the middle, angle 0 upright and positive angles
counter-clockwise. The rod's length and the bob's size follow the task's length and mass (scaled to the
family's ranges, so a long heavy pendulum looks long and heavy beside a light short one), an arc at
the pivot shows the torque applied at that step (the task's numbers are in the view's caption).
"""

from __future__ import annotations

import math

import numpy as np


BACKGROUND = (250, 250, 250)
ROD = (70, 70, 70)
BOB = (31, 119, 180)            # the plots' first colour
TORQUE = (214, 39, 40)


def pendulum_frame(theta: float, torque: float, mass: float, length: float, size: tuple[int, int],
                   max_mass: float, max_length: float, max_torque: float) -> np.ndarray:
    """One frame ``[height, width, 3]`` uint8 of a pendulum at angle ``theta`` (0 = upright); the torque
    arc is full at ``max_torque``."""
    from PIL import Image, ImageDraw

    width, height = size
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    cx, cy = width / 2, height / 2
    reach = 0.38 * min(width, height)                             # the longest pendulum's rod, in pixels
    rod = reach * min(length / max(max_length, 1e-9), 1.0)
    bob = 0.03 * min(width, height) + 0.06 * min(width, height) * math.sqrt(min(mass / max(max_mass, 1e-9), 1.0))
    x, y = cx - rod * math.sin(theta), cy - rod * math.cos(theta)
    draw.line([(cx, cy), (x, y)], fill=ROD, width=max(2, round(min(width, height) / 30)))
    draw.ellipse([x - bob, y - bob, x + bob, y + bob], fill=BOB)
    pin = 3
    draw.ellipse([cx - pin, cy - pin, cx + pin, cy + pin], fill=(0, 0, 0))
    span = 160.0 * min(abs(torque) / max_torque, 1.0)             # degrees of arc for the torque
    if span >= 2:
        r = 0.12 * min(width, height)
        box = [cx - r, cy - r, cx + r, cy + r]
        # Pillow's angles run clockwise on screen from 3 o'clock; a positive torque turns counter-clockwise
        start, end = (-90.0 - span, -90.0) if torque > 0 else (-90.0, -90.0 + span)
        draw.arc(box, start, end, fill=TORQUE, width=2)
        tip = math.radians(start if torque > 0 else end)
        tx, ty = cx + r * math.cos(tip), cy + r * math.sin(tip)
        draw.ellipse([tx - 2.5, ty - 2.5, tx + 2.5, ty + 2.5], fill=TORQUE)
    return np.asarray(image, dtype=np.uint8)


def pendulum_frames(task, observations, actions, times, size, mass_range, length_range,
                    max_torque: float) -> list[np.ndarray]:
    """Frames of a recorded pendulum trajectory at ``times``: observations are (cos θ, sin θ, θ̇, …)."""
    mass, length = (float(v) for v in np.asarray(task, dtype=float).reshape(-1)[:2])
    obs = np.asarray(observations, dtype=float)
    torque = np.asarray(actions, dtype=float).reshape(len(obs), -1)[:, 0] if len(obs) else np.zeros(0)
    max_mass, max_length = max(mass_range[1], mass), max(length_range[1], length)
    return [pendulum_frame(math.atan2(obs[t, 1], obs[t, 0]), float(np.clip(torque[t], -max_torque, max_torque)),
                           mass, length, size, max_mass, max_length, max_torque) for t in times]
