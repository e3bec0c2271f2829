"""Files the window reads and writes: experiments (JSON), plots (PNG/SVG), curves (CSV), recent files.

Every failure becomes an :class:`ExperimentIOError` with a message a person can act on; the
window shows it and changes nothing.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from PySide6.QtCore import QSettings

from core.storage.atomic import atomic_write
from core.config import ExperimentConfig
from core.errors import CheckpointError, ConfigError

from maml_gui.actions.svg_strokes import flatten_strokes

RECENT_KEY = "recent_files"
RECENT_LIMIT = 8
FIGURE_SIZE = (640, 400)   # an exported plot's layout, in logical px (the SVG's units)
FIGURE_DPI = 96            # logical px per inch: a 6.7 x 4.2 inch figure, its text at its on-screen point size
PNG_SCALE = 2.5            # PNG pixels per logical px: 1600 x 1000 px at 240 dpi


class ExperimentIOError(Exception):
    """A file could not be read or written; the message says which and why."""


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read and fully validate an experiment file (family included)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ExperimentIOError(f"{path.name} is not a text file; experiments are saved as JSON") from None
    except OSError as exc:
        raise ExperimentIOError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        config = ExperimentConfig.from_json(text)
        config.validate()
    except ConfigError as exc:
        raise ExperimentIOError(f"{path.name} is not a valid experiment: {exc}") from None
    return config


def save_experiment(path: str | Path, config: ExperimentConfig) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".json":
        path = path.with_name(path.name + ".json")
    write_text(path, config.to_json() + "\n")
    return path


def write_text(path: str | Path, text: str) -> None:
    try:
        atomic_write(Path(path), text.encode("utf-8"))
    except CheckpointError as exc:
        raise ExperimentIOError(str(exc)) from None


def export_plot(plot_item, path: str | Path) -> Path:
    """Write a pyqtgraph PlotItem as a figure: PNG or SVG, chosen by the suffix (PNG if neither).

    Both are laid out at ``FIGURE_SIZE`` (a 6.7 × 4.2 inch figure at 96 logical px per inch,
    whatever the plot's size on screen), so the text, at its on-screen point size, is legible
    at the figure's size: the PNG is ``FIGURE_SIZE`` × ``PNG_SCALE`` pixels (1600 × 1000, 240 dpi,
    lines and text scaled with it), the SVG ``FIGURE_SIZE`` units, every mark in it a vector
    shape (:func:`figure_layout`) in the figure's coordinates (:func:`flatten_strokes`). SVG is
    written by Qt's own QSvgGenerator: pyqtgraph 0.14's SVGExporter cannot parse the path data
    that Qt 6.11 writes (it raises ValueError on every curve).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".svg"):
        path, suffix = path.with_name(path.name + ".png"), ".png"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with figure_layout(plot_item):
            if suffix == ".svg":
                _export_svg(plot_item, path)
            else:
                _export_png(plot_item, path)
    except OSError as exc:
        raise ExperimentIOError(f"cannot write {path}: {exc.strerror or exc}") from None
    if not path.exists() or path.stat().st_size == 0:
        raise ExperimentIOError(f"cannot write {path}")
    return path


@contextmanager
def figure_layout(plot_item):
    """For the time of an export: ``plot_item`` laid out at ``FIGURE_SIZE``, and every item in it
    painted directly, in pyqtgraph's export mode. A pixmap cache (the plots cache axes, legends
    and curves to paint cheaply) would be an embedded bitmap in an SVG and is blitted unscaled
    into a high-resolution PNG (hence a tiny legend); outside export mode a scatter plot paints
    its markers from a pixmap atlas (an image per marker in an SVG). All is restored afterwards."""
    from PySide6.QtCore import QRectF, QSizeF
    from PySide6.QtWidgets import QGraphicsItem

    items = [plot_item, *_descendants(plot_item)]
    caches = [(item, item.cacheMode()) for item in items]
    geometry = plot_item.geometry()
    try:
        for item, _ in caches:
            item.setCacheMode(QGraphicsItem.CacheMode.NoCache)
        plot_item.setGeometry(QRectF(geometry.topLeft(), QSizeF(*FIGURE_SIZE)))
        plot_item.layout.activate()
        for item in items:
            if hasattr(item, "setExportMode"):
                item.setExportMode(True, {"antialias": True, "background": None, "resolutionScale": 1.0})
        yield
    finally:
        for item in items:
            if hasattr(item, "setExportMode"):
                item.setExportMode(False)
        plot_item.setGeometry(geometry)
        plot_item.layout.activate()
        for item, mode in caches:
            item.setCacheMode(mode)


def _descendants(item) -> list:
    found = []
    for child in item.childItems():
        found.append(child)
        found.extend(_descendants(child))
    return found


def _figure_rect(plot_item):
    from PySide6.QtCore import QRectF

    return QRectF(0, 0, *FIGURE_SIZE), plot_item.sceneBoundingRect()


def _export_png(plot_item, path: Path) -> None:
    from PySide6.QtGui import QColor, QImage, QPainter

    target, source = _figure_rect(plot_item)
    image = QImage(round(target.width() * PNG_SCALE), round(target.height() * PNG_SCALE),
                   QImage.Format.Format_ARGB32_Premultiplied)
    image.setDevicePixelRatio(PNG_SCALE)   # the painter works in figure units: pens and text scale with the image
    image.fill(QColor("white"))
    painter = QPainter(image)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        plot_item.scene().render(painter, target, source)
    finally:
        painter.end()
    # the resolution only after painting: pictures (the axes are recorded as QPictures) are replayed
    # scaled by the ratio of the device's resolution to the screen's
    dots_per_meter = round(FIGURE_DPI * PNG_SCALE / 0.0254)
    image.setDotsPerMeterX(dots_per_meter)
    image.setDotsPerMeterY(dots_per_meter)
    if not image.save(str(path), "PNG"):
        raise OSError(f"Qt could not write the PNG file {path.name}")


def _export_svg(plot_item, path: Path) -> None:
    from PySide6.QtGui import QPainter
    from PySide6.QtSvg import QSvgGenerator

    target, source = _figure_rect(plot_item)
    generator = QSvgGenerator()
    generator.setFileName(str(path))
    generator.setResolution(FIGURE_DPI)
    generator.setSize(target.size().toSize())
    generator.setViewBox(target)
    generator.setTitle("MAML Explorer plot")
    painter = QPainter(generator)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        plot_item.scene().render(painter, target, source)
    finally:
        painter.end()
    path.write_text(flatten_strokes(path.read_text(encoding="utf-8")), encoding="utf-8")


class RecentFiles:
    """Most recently used experiment files, newest first, kept in QSettings."""

    def __init__(self, settings: QSettings):
        self._settings = settings

    def paths(self) -> list[str]:
        value = self._settings.value(RECENT_KEY, [])
        if isinstance(value, str):   # an INI file gives back a one-element list as a plain string
            value = [value] if value else []
        return [str(v) for v in (value or [])]

    def add(self, path: str | Path) -> None:
        path = str(Path(path).resolve())
        paths = [path, *(p for p in self.paths() if p != path)][:RECENT_LIMIT]
        self._settings.setValue(RECENT_KEY, paths)

    def remove(self, path: str | Path) -> None:
        gone = {str(path), str(Path(path).resolve())}
        self._settings.setValue(RECENT_KEY, [p for p in self.paths() if p not in gone])
