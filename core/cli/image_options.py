"""``maml-gui train --images DIR …`` and the model options: few-shot classification from the command line.

Kept apart from ``cli.py`` (which only registers them) so the contract other tools call — the
option names of the few-shot literature: ways, shots, query per class, image size, channels,
rotations, conv-4 — is one module to read.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.config import BATCH_NORMS, DOWNSAMPLES, MODELS, ExperimentConfig, FamilySpec, ModelSpec
from core.errors import ConfigError

EPISODE_HELP = ("Classification families (glyphs, images, labelled CSV rows, blobs) sample N-way K-shot "
                "episodes: --shots K and --query Q are examples PER CLASS, as in the literature "
                "(5-way 1-shot with Q = 15 is 5 support and 75 query images per episode).")


def add_episode_arguments(train: argparse.ArgumentParser) -> None:
    group = train.add_argument_group("few-shot classification", EPISODE_HELP)
    group.add_argument("--images", type=Path, metavar="DIR",
                       help="an image folder: Omniglot layout (alphabet/character/*.png, split by alphabet), "
                            "class/*.jpg|png, or train/ val/ test/ each holding class folders")
    group.add_argument("--image-size", type=int, metavar="S", help="images are resized to S×S (default 28)")
    group.add_argument("--channels", type=int, choices=(1, 3), help="1 grey (default) or 3 RGB")
    group.add_argument("--rotations", action="store_true",
                       help="Omniglot-style augmentation: each class rotated by 90°, 180° and 270° is a new class")
    model = train.add_argument_group("model")
    model.add_argument("--model", choices=MODELS, help="mlp (default) or conv4, the MAML paper's conv net for images")
    model.add_argument("--conv-channels", type=int, metavar="C", help="conv4 filters per layer (default 64)")
    model.add_argument("--conv-depth", type=int, metavar="D", help="conv4 blocks (default 4)")
    model.add_argument("--downsample", choices=DOWNSAMPLES,
                       help="conv4: max (2×2 max-pool, the paper's MiniImagenet net) or stride (stride-2 conv, its "
                            "Omniglot net)")
    model.add_argument("--batch-norm", choices=BATCH_NORMS,
                       help="conv4: batch (statistics of each task's batch, as MAML), per_step (MAML++'s own "
                            "scale/shift per inner step) or off")


def apply_episode_arguments(args: argparse.Namespace, config: ExperimentConfig) -> ExperimentConfig:
    """``config`` with the image family, the episode size and the model the flags ask for."""
    family = config.family
    if getattr(args, "images", None) is not None:
        if getattr(args, "family", None) not in (None, "images") or getattr(args, "csv", None):
            raise ConfigError("family.name", "give one of --family, --csv or --images")
        family = FamilySpec("images", {"path": str(args.images.expanduser().resolve())})
    image_params = {k: v for k, v in (("image_size", args.image_size), ("channels", args.channels)) if v is not None}
    if args.rotations:
        image_params["rotations"] = True
    if image_params:
        if family.name not in ("images", "glyphs"):
            flag = next(iter(image_params)).replace("_", "-")
            raise ConfigError(f"family.{next(iter(image_params))}",
                              f"--{flag} applies to image families (--images DIR or --family glyphs)")
        if "channels" in image_params and family.name == "glyphs":
            raise ConfigError("family.channels", "the glyphs family is grey: --channels applies to --images")
        family = FamilySpec(family.name, {**dict(family.params), **image_params})
    n_way = getattr(args, "n_way", None)
    if n_way is not None and family.name != "csv":   # the CSV family takes it with its own options
        from core.tasks import FAMILIES

        cls = FAMILIES.get(family.name)
        if cls is None or not any(f.name == "n_way" for f in cls.fields):
            raise ConfigError("family.n_way", f"--ways applies to classification families, not {family.name}")
        family = FamilySpec(family.name, {**dict(family.params), "n_way": n_way})
    config = ExperimentConfig(family, config.model, config.algorithm, config.train, config.rl)
    model: dict[str, Any] = {k: v for k, v in (("name", args.model), ("conv_channels", args.conv_channels),
                                               ("conv_depth", args.conv_depth), ("downsample", args.downsample),
                                               ("batch_norm", args.batch_norm)) if v is not None}
    if family.name in ("images", "glyphs") and args.model is None and config.model.name == "mlp" and \
            getattr(args, "config", None) is None:
        model["name"] = "conv4"   # images want the conv net unless asked otherwise
    if model:
        config = config.replace("model", **model)
    return config


def model_summary(spec: ModelSpec) -> str:
    if spec.name == "conv4":
        return (f"conv4 ({spec.conv_depth} blocks × {spec.conv_channels} channels, {spec.downsample} downsampling, "
                f"batch norm {spec.batch_norm})")
    return f"mlp {'-'.join(map(str, spec.hidden))} {spec.activation}"


# -- evaluate on other data ------------------------------------------------------------------------
def add_evaluate_arguments(ev: argparse.ArgumentParser) -> None:
    group = ev.add_argument_group("other data (a cross-domain check)")
    group.add_argument("--images", type=Path, metavar="DIR",
                       help="score on every class of this image folder instead of the run's meta-test classes")
    group.add_argument("--csv", type=Path, metavar="FILE",
                       help="score on every label of this labelled CSV file (a run trained on labelled rows)")
    group.add_argument("--ways", type=int, metavar="N", help="classes per episode (at most the run's: its head has "
                                                              "that many outputs)")


def evaluation_family(args: argparse.Namespace, config: ExperimentConfig, family):
    """The family ``evaluate`` scores on: the run's own (its meta-test split), or every class of
    ``--images`` / ``--csv``, normalised as the run's training data was."""
    from core.tasks import build_family
    from core.tasks.episodes import EpisodeFamily

    other = args.images or args.csv
    ways = args.ways
    if other is None and ways is None:
        return family
    if not isinstance(family, EpisodeFamily):
        flag = "--ways" if other is None else ("--images" if args.images else "--csv")
        raise ConfigError("family", f"{flag} applies to runs trained on N-way episodes (glyphs, images or labelled "
                                    f"CSV rows); this run learned {config.family.name}")
    if ways is not None and not 2 <= ways <= family.output_dim:
        raise ConfigError("family.n_way", f"--ways must be between 2 and {family.output_dim}: the network's head has "
                                          f"{family.output_dim} outputs")
    params = dict(config.family.params)
    if ways is not None:
        params["n_way"] = ways
    if other is None:
        return build_family(FamilySpec(config.family.name, params)) if ways is not None else family
    path = str(other.expanduser().resolve())
    if args.images is not None:
        if config.family.name not in ("images", "glyphs"):
            raise ConfigError("family", "--images scores a run trained on images; this one learned labelled rows")
        spec = FamilySpec("images", {"path": path, "n_way": params.get("n_way", family.output_dim),
                                     "image_size": family.input_shape[1], "channels": family.input_shape[0]})
    else:
        if config.family.name != "labelled_csv":
            raise ConfigError("family", "--csv scores a run trained on labelled CSV rows; this one learned images")
        spec = FamilySpec("labelled_csv", {"path": path, "target": params.get("target"), "features": family.features,
                                           "n_way": params.get("n_way", family.output_dim)})
    from core.tasks import FAMILIES

    return FAMILIES[spec.name](spec.params, every_class=True).normalised_like(family)
