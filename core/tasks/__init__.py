"""Task families: built-in generators behind one registry, so every caller builds them the same way."""

from __future__ import annotations

from .spec import FamilySpec
from ..errors import ConfigError
from .base import ParamField, TaskBatch, TaskFamily
from .blobs import BlobsFamily
from .csv_family import CsvFamily, cached_family
from .episodes import EpisodeFamily
from .glyphs import GlyphsFamily
from .image_folder import ImageFolderFamily, LoadCancelled, load_image_folder
from .labelled_rows import LabelledRowsFamily
from .regression import FormulaFamily, FunctionFamily, LinearFamily, PolynomialFamily, SinusoidFamily, StepFamily

FAMILIES: dict[str, type[TaskFamily]] = {
    cls.name: cls for cls in (SinusoidFamily, LinearFamily, PolynomialFamily, StepFamily, FormulaFamily, BlobsFamily,
                             GlyphsFamily, ImageFolderFamily, CsvFamily, LabelledRowsFamily)
}


def build_family(spec: FamilySpec) -> TaskFamily:
    """Build and validate a family; raises :class:`ConfigError` naming the bad field."""
    try:
        cls = FAMILIES[spec.name]
    except KeyError:
        raise ConfigError("family.name", f"unknown family {spec.name!r}; choose one of {', '.join(FAMILIES)}") from None
    if cls is CsvFamily:   # re-used while its files are unchanged (a large table takes seconds to group)
        return cached_family(spec.params)
    return cls(spec.params)


__all__ = ["FAMILIES", "EpisodeFamily", "FunctionFamily", "LoadCancelled", "ParamField", "TaskBatch", "TaskFamily",
           "build_family", "load_image_folder"]
