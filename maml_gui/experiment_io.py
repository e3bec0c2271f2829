"""Files the window reads and writes: experiments (JSON), plots (PNG/SVG), curves (CSV), recent files.

Every failure becomes an :class:`ExperimentIOError` with a message a person can act on; the
window shows it and changes nothing.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from core.checkpoint import atomic_write
from core.config import ExperimentConfig
from core.errors import CheckpointError, ConfigError

RECENT_KEY = "recent_files"
RECENT_LIMIT = 8


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
    """Write a pyqtgraph PlotItem as PNG (pyqtgraph's ImageExporter) or SVG, chosen by the suffix.

    SVG is rendered with Qt's own QSvgGenerator: pyqtgraph 0.14's SVGExporter cannot parse the
    path data that Qt 6.11 writes (it raises ValueError on every curve).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".svg"):
        path, suffix = path.with_name(path.name + ".png"), ".png"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".svg":
            _export_svg(plot_item, path)
        else:
            import pyqtgraph.exporters as exporters

            exporter = exporters.ImageExporter(plot_item)
            exporter.parameters()["width"] = max(800, int(plot_item.sceneBoundingRect().width()) * 2)
            exporter.export(str(path))
    except OSError as exc:
        raise ExperimentIOError(f"cannot write {path}: {exc.strerror or exc}") from None
    if not path.exists() or path.stat().st_size == 0:
        raise ExperimentIOError(f"cannot write {path}")
    return path


def _export_svg(plot_item, path: Path) -> None:
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QPainter
    from PySide6.QtSvg import QSvgGenerator

    source = plot_item.sceneBoundingRect()
    target = QRectF(0, 0, source.width(), source.height())
    generator = QSvgGenerator()
    generator.setFileName(str(path))
    generator.setSize(target.size().toSize())
    generator.setViewBox(target)
    generator.setTitle("MAML Explorer plot")
    painter = QPainter(generator)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        plot_item.scene().render(painter, target, source)
    finally:
        painter.end()


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
