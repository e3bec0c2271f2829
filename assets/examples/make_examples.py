"""Write the two synthetic example task sets next to this script (deterministic, numpy only).

    python assets/examples/make_examples.py

``growth.csv``  one long-format file: 40 children, 20 visits each; the task column is ``subject``.
``sites/``      one file per farm site (12): crop yield against season temperature and rainfall.
Both are generated from simple published-style models with per-task parameters and noise; they
are not measurements of real people or places.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SITES = ("alder_creek", "birch_hollow", "cedar_flats", "dry_gulch", "elm_terrace", "fern_valley",
         "granite_ridge", "hazel_bend", "iron_springs", "juniper_mesa", "kestrel_plain", "lark_meadow")


def growth(rng: np.random.Generator) -> str:
    """Preece–Baines model 1: h(t) = h1 - 2 (h1 - hθ) / (exp(s0 (t - θ)) + exp(s1 (t - θ)))."""
    lines = ["subject,sex,age,height"]
    for k in range(40):
        girl = bool(k % 2)
        h1 = rng.normal(163.0 if girl else 176.0, 6.0)          # adult height, cm
        h_theta = h1 - rng.normal(12.0, 1.5)                      # height at peak velocity
        theta = rng.normal(11.8 if girl else 13.9, 0.8)           # age at peak velocity
        s0, s1 = rng.normal(0.11, 0.015), rng.normal(1.15, 0.12)  # pre- and post-pubertal rates
        ages = np.sort(rng.uniform(2.0, 18.0, 20))
        height = h1 - 2 * (h1 - h_theta) / (np.exp(s0 * (ages - theta)) + np.exp(s1 * (ages - theta)))
        height += rng.normal(0.0, 0.5, ages.shape)                # measurement error
        for age, h in zip(ages, height):
            lines.append(f"{1001 + k},{'F' if girl else 'M'},{age:.2f},{h:.1f}")
    return "\n".join(lines) + "\n"


def site(rng: np.random.Generator, index: int) -> str:
    """yield = ymax · exp(-((T - Topt) / w)²) · (1 - exp(-rain / r)) + noise, t/ha."""
    ymax, t_opt = rng.uniform(4.0, 10.0), rng.uniform(17.0, 24.0)
    width, r = rng.uniform(5.0, 8.0), rng.uniform(150.0, 400.0)
    n = int(rng.integers(18, 37))
    temperature = rng.uniform(12.0, 30.0, n)
    rainfall = rng.uniform(150.0, 900.0, n)
    yields = ymax * np.exp(-((temperature - t_opt) / width) ** 2) * (1 - np.exp(-rainfall / r))
    yields = np.maximum(0.0, yields + rng.normal(0.0, 0.25, n))
    rows = [(f"P{i + 1:02d}", f"{rain:.0f}", f"{temp:.1f}", f"{y:.2f}")
            for i, (rain, temp, y) in enumerate(zip(rainfall, temperature, yields))]
    header = ("plot", "rainfall_mm", "temperature_c", "yield_t_ha")
    order = (3, 2, 1, 0) if index == 4 else (0, 1, 2, 3)  # one file lists its columns in another order
    return "\n".join(",".join(r[i] for i in order) for r in [header, *rows]) + "\n"


def main(dest: Path = HERE) -> None:
    rng = np.random.default_rng(20240611)
    (dest / "growth.csv").write_text(growth(rng), encoding="utf-8", newline="\n")
    (dest / "sites").mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(SITES):
        (dest / "sites" / f"{name}.csv").write_text(site(rng, i), encoding="utf-8", newline="\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
