"""The image folder import dialog: what the folder holds, how it is read, and why OK is off.

Reading (decoding every image once, seconds for Omniglot) and every re-check after a change run
on a background thread (``job_runner``) with a progress bar and Cancel, which stops the decoding
between chunks. The engine (``load_image_folder``, ``ImageFolderFamily``) does all the checking,
so what the dialog shows when it refuses is the engine's message. A new image size or channel
count reads the folder again; N-way, rotations, split, shots and query only re-split the decoded
images (cached). Shots and query are set here too, since which classes can be used depends on
them: OK stays off while meta-train or meta-test cannot fill an episode. The dialog changes
nothing in the window: the caller takes :meth:`family_spec` and :meth:`shots_query` after ``accepted``.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QListWidget, QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from core.errors import ConfigError
from core.tasks.image_folder import ImageFolderData, ImageFolderFamily, load_image_folder

from maml_gui.importing.import_host import ImportDialogBase, side_by_side
from maml_gui.widgets.image_grid import ImageGrid, folder_rows

CHECK_DEBOUNCE_MS = 150
CHANNEL_TITLES = {1: "grey (1 channel)", 3: "RGB (3 channels)"}


@dataclass
class Inspected:
    """What one background check found: the decoded folder and the family (or why there is none)."""

    params: dict[str, Any]
    data: ImageFolderData
    family: ImageFolderFamily | None
    error: ConfigError | None


def inspect_folder(params: dict[str, Any], shots: int, query: int, report: Callable[[float], bool]) -> Inspected:
    """Decode the folder (cached; ``report`` gives progress and says when to stop), then build the
    family and check it against ``shots`` + ``query`` images per class.

    A folder that cannot be read raises (the dialog shows the message); a family the settings
    refuse (too few classes for N, or for shots + query) comes back as ``error`` with the decoded
    images, to show them.
    """
    state = {"fraction": 0.0}

    def progress(done: int, total: int) -> None:
        state["fraction"] = done / max(1, total)
        report(state["fraction"])

    data = load_image_folder(params["path"], params["image_size"], params["channels"], progress,
                             lambda: report(state["fraction"]))
    family = None
    try:
        family = ImageFolderFamily(params)
        family.check_sizes(shots, query)
        return Inspected(params, data, family, None)
    except ConfigError as exc:
        return Inspected(params, data, family, exc)


class ImageImportDialog(ImportDialogBase):
    """Choose how a folder of images becomes N-way episodes. ``updated`` fires each time a verdict is shown."""

    updated = Signal()

    def __init__(self, path: str, params: dict[str, Any] | None = None, *, shots: int = 5, query: int = 10,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Import an image folder")
        self.path = str(Path(path).expanduser().resolve())
        self._params = {f.name: f.default for f in ImageFolderFamily.fields + ImageFolderFamily.data_fields}
        self._params.update(params or {})
        self._params["path"] = self.path
        self._start_shots_query = shots, query
        self._inspected: Inspected | None = None
        self._problem: str | None = "reading the images…"
        self._loaded_key: tuple | None = None   # (size, channels) of the decoded images shown
        self._make_jobs("maml-images", CHECK_DEBOUNCE_MS)
        self._build()
        self.resize(900, 680)
        self._check()

    # -- public ------------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """The choices as ``ImageFolderFamily`` settings."""
        val, test = self.split_val.value() / 100, self.split_test.value() / 100
        return {**self._params, "path": self.path, "image_size": self.image_size.value(),
                "channels": self.channels.currentData(), "rotations": self.rotations.isChecked(),
                "n_way": self.n_way.value(), "split": [round(1 - val - test, 6), val, test],
                "split_seed": self.split_seed.value()}

    def family(self) -> ImageFolderFamily | None:
        """The family the current choices give, once checked and valid."""
        found = self._inspected
        return found.family if self._problem is None and found is not None else None

    def is_loading(self) -> bool:
        return self._runner.is_busy()

    def cancel_reading(self) -> None:
        """Stop decoding now (between chunks of images); the dialog says so and OK stays off."""
        if not self._runner.is_busy():
            return
        self._timer.stop()
        self._runner.cancel()
        self._hide_progress()
        self._inspected = None
        self._loaded_key = None
        self.grid.clear()
        self._set_problem("reading was cancelled; change the image size or channels to read again, "
                          "or choose another folder")

    def done(self, result: int) -> None:
        """Closing (OK, Cancel, Esc, window close) stops any background reading first."""
        self._timer.stop()
        self._runner.shutdown()
        super().done(result)

    # -- building ------------------------------------------------------------------------------
    def _build(self) -> None:
        shots_query = self._start_shots_query
        self.folder_label = QLabel(f"<b>{escape(Path(self.path).name)}/</b>")
        self.folder_label.setToolTip(self.path)
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.other_folder = QPushButton("Other folder…")
        self.other_folder.setToolTip("Read another folder with the same settings")
        self.other_folder.clicked.connect(self._choose_folder)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setFormat("reading images… %p%")
        self.cancel_read_button = QPushButton("Cancel reading")
        self.cancel_read_button.setToolTip("Stop decoding the images (OK stays off until they are read)")
        self.cancel_read_button.clicked.connect(self.cancel_reading)

        self.image_size = QSpinBox()
        self.image_size.setRange(4, 256)
        self.image_size.setSuffix(" px")
        self.image_size.setToolTip("Images are centre-cropped to a square and resized to this side "
                                   "(Omniglot: 28, miniImageNet: 84); changing it reads the folder again")
        self.channels = QComboBox()
        for value, title in CHANNEL_TITLES.items():
            self.channels.addItem(title, value)
        self.channels.setToolTip("Grey images are 1 channel, colour 3; changing it reads the folder again")
        self.rotations = QCheckBox("add each class turned by 90°, 180° and 270° as three more classes")
        self.rotations.setToolTip("Four times the classes (each rotated copy stays in its class's split), as is "
                                  "usual for Omniglot")
        self.n_way = QSpinBox()
        self.n_way.setRange(2, 100)
        self.n_way.setToolTip("Classes per episode (N of N-way); meta-train and meta-test need at least N classes")
        self.split_val, self.split_test = QSpinBox(), QSpinBox()
        for box, name in ((self.split_val, "validation"), (self.split_test, "meta-test")):
            box.setRange(0, 90)
            box.setSuffix(" %")
            box.setPrefix(f"{name} ")
            box.setToolTip(f"Share of the classes (of the alphabets for Omniglot) kept for {name}; meta-train gets "
                           "the rest. Unused when the folder is already split into train/ val/ test/.")
        self.split_seed = QSpinBox()
        self.split_seed.setRange(0, 2**31 - 1)
        self.split_seed.setPrefix("seed ")
        self.split_seed.setToolTip("Which classes go to which split")
        self.shots, self.query = QSpinBox(), QSpinBox()
        for box, prefix, value in ((self.shots, "shots K ", shots_query[0]), (self.query, "query ", shots_query[1])):
            box.setRange(1, 10000)
            box.setPrefix(prefix)
            box.setValue(value)
        self.shots.setToolTip("Support images per class in an episode (K of K-shot); OK sets the training settings")
        self.query.setToolTip("Query images per class, on which the adapted network is scored; OK sets the training "
                              "settings. Classes with fewer than shots + query images are skipped.")
        p = self._params
        self.split_val.setValue(round(100 * p["split"][1]))
        self.split_test.setValue(round(100 * p["split"][2]))
        self.split_seed.setValue(int(p["split_seed"]))
        self.image_size.setValue(int(p["image_size"]))
        self.channels.setCurrentIndex(max(0, self.channels.findData(int(p["channels"]))))
        self.rotations.setChecked(bool(p["rotations"]))
        self.n_way.setValue(int(p["n_way"]))
        for box in (self.image_size, self.n_way, self.split_val, self.split_test, self.split_seed, self.shots,
                    self.query):
            box.valueChanged.connect(self._on_choice)
        self.channels.currentIndexChanged.connect(self._on_choice)
        self.rotations.toggled.connect(self._on_choice)

        self.layout_label = QLabel("…")
        self.layout_label.setWordWrap(True)
        self.splits_label = QLabel("…")
        self.splits_label.setWordWrap(True)
        self.memory_label = QLabel("…")
        self.memory_label.setWordWrap(True)
        settings = QGroupBox("How the images become episodes")
        form = QFormLayout(settings)
        form.addRow("Layout", self.layout_label)
        form.addRow("Image size", side_by_side(self.image_size))
        form.addRow("Channels", side_by_side(self.channels))
        form.addRow("Rotations", self.rotations)
        form.addRow("Classes per episode", side_by_side(self.n_way))
        form.addRow("Per class", side_by_side(self.shots, self.query))
        self.split_row = side_by_side(self.split_val, self.split_test, self.split_seed)
        form.addRow("Split classes", self.split_row)
        form.addRow("Classes", self.splits_label)
        form.addRow("In memory", self.memory_label)

        self._make_verdict_widgets("Use these images")
        self.error_label.hide()
        self.warnings_list = QListWidget()
        self.warnings_list.setWordWrap(True)
        self.warnings_list.setSpacing(3)
        self.warnings_list.setToolTip("Things that did not stop the import: skipped files, left-out classes")
        result = QGroupBox("Warnings")
        side = QVBoxLayout(result)
        side.addWidget(self.warnings_list)

        self.grid = ImageGrid(empty_text="reading…")
        self.grid.setMinimumHeight(6 * 34)
        examples = QGroupBox("Examples (a few classes, first images of each)")
        QVBoxLayout(examples).addWidget(self.grid)


        top = QHBoxLayout()
        top.addWidget(self.folder_label, 1)
        top.addWidget(self.other_folder)
        reading = QHBoxLayout()
        reading.addWidget(self.progress_bar, 1)
        reading.addWidget(self.cancel_read_button)
        middle = QHBoxLayout()
        middle.addWidget(settings, 3)
        middle.addWidget(result, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(reading)
        layout.addLayout(middle)
        layout.addWidget(self.error_label)
        layout.addWidget(examples, 1)
        layout.addWidget(self.buttons)

    # -- checking ------------------------------------------------------------------------------
    def _on_choice(self, *_args) -> None:
        self._set_problem("checking…", final=False)
        self._timer.start()

    def _check(self) -> None:
        params, (shots, query) = self.params(), self.shots_query()
        key = (params["image_size"], params["channels"])
        if key != self._loaded_key:   # decoding: show the progress (a cached folder ends at once)
            self.progress_bar.setValue(0)
            self.progress_bar.show()
            self.cancel_read_button.show()
        self._runner.submit("check", lambda report: inspect_folder(params, shots, query, report))

    def _on_progress(self, fraction: float) -> None:
        self.progress_bar.setValue(int(fraction * 1000))

    def _on_done(self, _tag: str, found: Inspected) -> None:
        self._hide_progress()
        self._inspected = found
        self._loaded_key = (found.params["image_size"], found.params["channels"])
        data = found.data
        self.layout_label.setText(escape(data.layout))
        pre_split = data.layout.startswith("pre-split")
        self.split_row.setEnabled(not pre_split)
        self.split_row.setToolTip("The folder is split already (train/ val/ test/)" if pre_split else "")
        self.memory_label.setText(f"{data.nbytes / 1e6:.1f} MB ({len(data.images):,} images at "
                                  f"{found.params['image_size']}×{found.params['image_size']}, "
                                  f"{'grey' if found.params['channels'] == 1 else 'RGB'})")
        counts = [c.count for c in data.classes]
        per_class = f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)}–{max(counts)}"
        if found.family is not None:
            sizes = found.family.split_sizes()
            rotated = " (rotations included)" if found.params["rotations"] else ""
            self.splits_label.setText(f"{len(data.classes):,} in the folder, {per_class} images each; episode classes"
                                      f"{rotated}: <b>{sizes['train']:,}</b> meta-train, <b>{sizes['val']:,}</b> "
                                      f"validation, <b>{sizes['test']:,}</b> meta-test")
        else:
            self.splits_label.setText(f"{len(data.classes):,} in the folder, {per_class} images each")
        notes = list(found.family.warnings if found.family is not None else data.warnings)
        self.warnings_list.clear()
        self.warnings_list.addItems(notes or ["none"])
        self.grid.set_rows(*folder_rows(data, examples=8))
        self._set_problem(None if found.error is None else found.error.message)

    def _on_failed(self, _tag: str, message: str) -> None:
        self._hide_progress()
        self._inspected = None
        self._loaded_key = None
        self.grid.clear()
        self.grid.empty_text = "no images to show"
        for label in (self.layout_label, self.splits_label, self.memory_label):
            label.setText("—")
        self.warnings_list.clear()
        self._set_problem(_readable(message))

    def _hide_progress(self) -> None:
        self.progress_bar.hide()
        self.cancel_read_button.hide()

    def _choose_folder(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Import an image folder", str(Path(self.path).parent))
        if chosen:
            self.set_folder(chosen)

    def set_folder(self, path: str) -> None:
        """Read another folder with the same choices."""
        self.path = str(Path(path).expanduser().resolve())
        self.folder_label.setText(f"<b>{escape(Path(self.path).name)}/</b>")
        self.folder_label.setToolTip(self.path)
        self._loaded_key = None
        self._on_choice()

def _readable(message: str) -> str:
    """The engine's ``family.path: …`` without the field name, which means nothing here."""
    for prefix in ("family.path: ", "family.channels: ", "family.image_size: ", "train.shots: "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message
