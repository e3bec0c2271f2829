"""Bringing an image folder into the window: File → Import image folder…, a dropped folder, and
the family panel's "Change…".

Composed by the main window (``window.images``). :meth:`ImageImport.drop_target` only decides,
cheaply (a few directory listings, nothing decoded), whether a dropped folder looks like an image
dataset; :meth:`ImageImport.import_images` (a plain method tests call directly) opens the dialog,
and its OK hands the family to the family editor and suggests the Conv-4 network. Until then
nothing changes.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QMimeData
from PySide6.QtWidgets import QFileDialog

from core.tasks.image_folder import IMAGE_SUFFIXES

from maml_gui.importing.image_import_dialog import ImageImportDialog
from maml_gui.importing.import_host import ImportHost

MAX_DEPTH = 3          # class folders sit at depth 1 (class/), 2 (alphabet/character/) or 3 (train/alphabet/character/)
LOOK_AT = 40           # folders listed per level, and entries looked at per folder, at most


def looks_like_image_folder(root: Path) -> bool:
    """Whether ``root`` holds image files inside sub-folders 1–3 levels down (a bounded look)."""
    level = [root]
    for _depth in range(MAX_DEPTH):
        below = []
        for folder in level[:LOOK_AT]:
            try:
                with os.scandir(folder) as entries:
                    for i, entry in enumerate(entries):
                        if i >= LOOK_AT:
                            break
                        if entry.name.startswith("."):
                            continue
                        if entry.is_dir(follow_symlinks=True):
                            below.append(Path(entry.path))
                        elif folder is not root and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
                            return True
            except OSError:
                continue
        level = below
    return any(_has_image(folder) for folder in level[:LOOK_AT])


def _has_image(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(Path(e.name).suffix.lower() in IMAGE_SUFFIXES for _, e in zip(range(LOOK_AT), entries))
    except OSError:
        return False


class ImageImport(ImportHost):
    def __init__(self, window):
        super().__init__(window)
        self.dialog: ImageImportDialog | None = None
        window.setAcceptDrops(True)
        window.family_editor.image_import_requested.connect(self._on_import_requested)

    def drop_target(self, mime: QMimeData) -> Path | None:
        """The dropped folder when the drag carries exactly one local folder of class folders of images."""
        urls = mime.urls() if mime.hasUrls() else []
        if len(urls) != 1 or not urls[0].isLocalFile():
            return None
        path = Path(urls[0].toLocalFile())
        return path if path.is_dir() and looks_like_image_folder(path) else None

    def import_images(self, path: str | Path, params: dict | None = None) -> ImageImportDialog:
        """Open the import dialog on ``path`` (``params``: choices to start from); returns it."""
        return self._open(lambda **start: ImageImportDialog(str(path), params, **start))

    def choose_import_images(self) -> None:
        spec = self.window.family_editor.spec()
        start = str(Path(spec.params["path"]).parent) if spec.name == "images" and spec.params.get("path") else ""
        chosen = QFileDialog.getExistingDirectory(self.window, "Import an image folder (one folder per class)", start)
        if chosen:
            self.import_images(chosen)

    def _on_import_requested(self) -> None:
        """"Change…" reopens the dialog on the folder shown; choosing "Your image folder…" asks for one."""
        spec = self.window.family_editor.spec()
        if spec.name == "images" and spec.params.get("path"):
            self.import_images(spec.params["path"], dict(spec.params))
        else:
            self.choose_import_images()

    def _on_accepted(self) -> None:
        w, dialog = self.window, self.dialog
        spec = self.accepted_spec("images")
        if spec is None:
            return
        w.hyper_panel.suggest_model("conv4")   # before the family: the window checks both together
        w.family_editor.set_spec(spec)
        sizes = dialog.family().split_sizes()
        w.statusBar().showMessage(f"Imported {Path(spec.params['path']).name}/: {sum(sizes.values()):,} classes "
                                  f"({sizes['train']:,} / {sizes['val']:,} / {sizes['test']:,}); the model is now "
                                  "Conv-4 (Model → Network to change it)", 10_000)
