"""Realistic labelled-row CSV files, written in code: a penguins-like file (3 species, decimal
measurements written like ``3750.0``, some ``NA`` cells) and a 32-class leaf-feature file with a
whole-number feature (``num_convex_points``) that is no task id."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SPECIES = {"Adelie": (38.8, 18.3, 190.0, 3700.0, 152), "Chinstrap": (48.8, 18.4, 195.8, 3733.0, 68),
           "Gentoo": (47.5, 15.0, 217.2, 5076.0, 124)}


def penguins_csv(folder: Path) -> Path:
    """344 rows: species first, then bill length/depth (one decimal), flipper length and body mass
    (whole numbers written with ``.0``, as pandas writes a float column); two rows hold ``NA``."""
    rng = np.random.default_rng(7)
    lines = ["species,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g"]
    for name, (bill, depth, flipper, mass, n) in SPECIES.items():
        for _ in range(n):
            lines.append(f"{name},{bill + rng.normal(0, 2.5):.1f},{depth + rng.normal(0, 1.0):.1f},"
                         f"{round(flipper + rng.normal(0, 6.5)):.1f},{round(mass + rng.normal(0, 450), -1):.1f}")
    lines[4] = "Adelie,NA,NA,NA,NA"
    lines[272] = "Gentoo,NA,NA,NA,NA"
    path = folder / "penguins.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def leaf_csv(folder: Path, classes: int = 32, per_class: int = 10) -> Path:
    """Leaf shape features of ``classes`` species, ``per_class`` leaves each: a text label, a whole
    number of convex points (few distinct values, repeated) and decimal shape measurements."""
    rng = np.random.default_rng(3)
    lines = ["species,num_convex_points,eccentricity,aspect_ratio,elongation,solidity,lobedness"]
    for k in range(classes):
        centre = rng.uniform(0.2, 0.9, 5)
        points = int(rng.integers(8, 30))
        for _ in range(per_class):
            values = np.clip(centre + rng.normal(0, 0.04, 5), 0.01, None)
            lines.append(f"Species_{k:02d},{points + int(rng.integers(-2, 3))},"
                         + ",".join(f"{v:.5f}" for v in values))
    path = folder / "leaf.csv"
    path.write_text("\n".join(lines) + "\n")
    return path
