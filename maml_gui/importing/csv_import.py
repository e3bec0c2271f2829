"""Bringing CSV data into the window: drag and drop, File → Import CSV…, and the family panel's "Change…".

Composed by the main window (``window.csv``), which hands it its drag-and-drop events. The
drag events only sort out which paths were dropped; :meth:`CsvImport.import_csv` (a plain
method tests call directly) opens the import dialog, and the dialog's OK hands the family to
the family editor (and so to the session). Until then nothing changes: a refused file leaves
the family that was loaded before as it was.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData
from PySide6.QtWidgets import QFileDialog

from core.tasks.csv_data import CSV_SUFFIXES

from maml_gui.importing.csv_import_dialog import CsvImportDialog
from maml_gui.importing.import_host import ImportHost

DROP_SUFFIXES = (".csv", ".tsv")   # what a drop accepts; the file dialog also offers *.txt


def dropped_paths(mime: QMimeData) -> tuple[list[str], str | None]:
    """The local CSV files and folders a drag carries, or why the drag is refused."""
    if not mime.hasUrls() or not mime.urls():
        return [], "only files can be dropped here"
    paths = []
    for url in mime.urls():
        if not url.isLocalFile():
            return [], f"{url.toString()} is not a file on this computer"
        path = Path(url.toLocalFile())
        if path.is_dir():
            if not any(p.suffix.lower() in CSV_SUFFIXES for p in path.iterdir() if p.is_file()):
                return [], f"the folder {path.name}/ holds no CSV files"
        elif path.suffix.lower() not in DROP_SUFFIXES:
            return [], f"{path.name} is not a .csv file"
        paths.append(str(path))
    return paths, None


class CsvImport(ImportHost):
    def __init__(self, window):
        super().__init__(window)
        self.dialog: CsvImportDialog | None = None
        window.setAcceptDrops(True)
        window.family_editor.import_requested.connect(self._on_import_requested)

    # -- drag and drop (the window forwards its events) ---------------------------------------------
    def drag_enter(self, event) -> None:
        paths, problem = dropped_paths(event.mimeData())
        status = self.window.statusBar()
        if problem is not None:
            event.ignore()
            status.showMessage(f"Cannot import this: {problem}. Drop .csv files or a folder of them.", 8000)
            return
        event.acceptProposedAction()
        names = ", ".join(Path(p).name for p in paths[:3]) + (" …" if len(paths) > 3 else "")
        status.showMessage(f"Drop to import {names}", 5000)

    def drop(self, event) -> None:
        paths, problem = dropped_paths(event.mimeData())
        if problem is not None:
            event.ignore()
            return
        event.acceptProposedAction()
        self.import_csv(paths)

    # -- the import ------------------------------------------------------------------------------
    def import_csv(self, paths: list[str], params: dict | None = None) -> CsvImportDialog:
        """Open the import dialog for ``paths`` (``params``: the choices to start from); returns it."""
        return self._open(lambda **start: CsvImportDialog(paths, params, **start))

    def choose_import_csv(self, folder: bool = False) -> None:
        spec = self.window.family_editor.spec()
        start = str(Path((spec.params.get("paths") or [""])[0]).parent) if spec.name == "csv" else ""
        if folder:
            chosen = QFileDialog.getExistingDirectory(self.window, "Import a folder of CSV files (one task per file)",
                                                      start)
            paths = [chosen] if chosen else []
        else:
            paths, _ = QFileDialog.getOpenFileNames(self.window, "Import CSV", start,
                                                    "CSV files (*.csv *.tsv *.txt);;All files (*)")
        if paths:
            self.import_csv(paths)

    def _on_import_requested(self) -> None:
        """"Change…" reopens the dialog on the data shown; choosing "Your CSV data…" asks for files."""
        spec = self.window.family_editor.spec()
        if spec.name == "csv" and spec.params.get("paths"):
            self.import_csv(list(spec.params["paths"]), dict(spec.params))
        elif spec.name == "labelled_csv" and spec.params.get("path"):
            self.import_csv([spec.params["path"]], dict(spec.params))
        else:
            self.choose_import_csv()

    def _on_accepted(self) -> None:
        w, dialog = self.window, self.dialog
        spec = self.accepted_spec("data")
        if spec is None:
            return
        w.family_editor.set_spec(spec)
        family = dialog.family()
        paths = spec.params.get("paths") or [spec.params.get("path")]
        if spec.params.get("split_rows"):   # every split holds every label: count rows, not labels
            sizes, unit = family.split_rows(), (f"rows of {len(family.classes)} labels for "
                                                f"{spec.params['n_way']}-way episodes")
        else:
            sizes = family.split_sizes()
            unit = "labels as classes of N-way episodes" if spec.name == "labelled_csv" else "tasks"
        note = w.take_network_note()   # coming from images, the network switched to the MLP
        w.statusBar().showMessage(f"Imported {sum(sizes.values())} {unit} ({sizes['train']} / {sizes['val']} / "
                                  f"{sizes['test']}) from {', '.join(Path(p).name for p in paths)}"
                                  + (f". {note}" if note else ""), 10_000 if note else 8000)
