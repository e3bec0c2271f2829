"""Model, algorithm and optimisation settings as one form.

The panel owns only presentation: its specs are validated by the engine's own ``validate()``
so the rules are written once. Meta learning rate is the one setting that applies live, so it
has its own signal and stays editable while training (``set_training``). The model section shows
only the fields of the chosen network (MLP or Conv-4).
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QAbstractSpinBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QLabel,
                               QLineEdit, QSpinBox, QVBoxLayout, QWidget)

from core.algorithms import TITLES
from core.config import (ACTIVATIONS, COMPILE_MODES, OUTER_STEPS, PER_STEP_ALGORITHMS, AlgorithmSpec, ExperimentConfig,
                         ModelSpec, RLSpec, TrainSpec)
from core.device import available_devices
from core.errors import ConfigError

from maml_gui.widgets.field_names import LABELS, readable
from .invalid_mark import INVALID_STYLE, mark_invalid

INT_MAX = 2**31 - 1
OUTER_TITLES = {"trpo": "TRPO", "ppo": "clipped (PPO-style)"}   # the tooltip says more
RL_FIELDS = ("rollouts", "outer", "gamma", "gae_lambda", "max_kl", "later_inner_lr")
MODEL_TITLES = {"mlp": "MLP (fully connected)", "conv4": "Conv-4 (for images)", "module": "Your own module (Python file)"}
DOWNSAMPLE_TITLES = {"max": "2×2 max-pool", "stride": "stride-2 convolution"}
BATCH_NORM_TITLES = {"batch": "per batch", "per_step": "per inner step (MAML++)", "off": "off"}
HELP = {
    "model": "The network: an MLP of fully connected layers (any family; images are flattened), or Conv-4, the "
             "convolutional net of the MAML paper for image families (glyphs, an image folder).",
    "conv_channels": "Filters of each 3×3 convolution block (64 in the MAML paper; 32 for miniImageNet).",
    "conv_depth": "Convolution blocks (conv, batch norm, ReLU, downsampling); 4 in the MAML paper. Each halves the "
                  "image, so small images allow fewer.",
    "downsample": "How each block halves the image: a 2×2 max-pool (the paper's miniImageNet net) or a stride-2 "
                  "convolution (its Omniglot net, a little faster).",
    "batch_norm": "Batch normalization after each convolution: statistics of each task's batch (the paper's "
                  "transductive setting), MAML++'s separate scale and shift learned for every inner step "
                  "(needs an algorithm that differentiates through the inner loop), or none.",
    "hidden": "Hidden layer widths of the MLP, comma separated (e.g. 40,40 as in the MAML paper).",
    "activation": "Non-linearity applied after each hidden layer.",
    "algorithm": "How the initialisation is meta-learned; Pretrain is the plain multi-task baseline.",
    "inner_steps": "Gradient steps each task takes on its support set before the query loss is measured.",
    "inner_lr": "Step size of those per-task (inner-loop) gradient steps.",
    "meta_lr": "Adam step size for the shared initialisation (outer loop); changes apply live while training.",
    "meta_batch": "Tasks averaged per meta-update.",
    "shots": "Support examples per task (K in K-shot; per class for classification).",
    "query": "Query examples per task, on which the adapted model is scored (per class for classification).",
    "iterations": "Meta-updates to run before training stops.",
    "seed": "Seed for initialisation and task sampling; the same seed gives the same run.",
    "device": "Where to compute; auto picks a GPU when one is available.",
    "compile": "Run the meta-step through torch.compile: two to five times the iterations per second (more with "
               "more inner steps), but the first start compiles for 20-40 s (about 5 s once the kernels are in your "
               "cache folder). auto compiles when the run would take over a minute. Conv nets and machines without a "
               "C++ compiler stay eager.",
    "rollouts": "Meta-RL: trajectories sampled per task for each inner step, and again for the meta-objective "
                "(20 in the MAML paper).",
    "outer": "Meta-RL: the outer step. TRPO (the MAML paper's: conjugate gradient on the KL's Hessian, a line search "
             "within max KL), or a clipped surrogate with Adam at the meta learning rate (PPO/ProMP-style, cheaper).",
    "gamma": "Meta-RL: discount of future rewards in the returns and advantages (0.99 in the paper).",
    "gae_lambda": "Meta-RL: GAE's λ for the advantages (1: plain discounted returns minus the linear baseline).",
    "max_kl": "Meta-RL: TRPO's bound on the mean KL between the adapted policies before and after an outer step.",
    "later_inner_lr": "Meta-RL: the step size of held-out adaptation's steps after the first (the paper: 0.1, then "
                      "0.05); 0 uses the inner learning rate throughout.",
    "msl_iterations": "MAML++: meta-iterations over which the multi-step loss anneals toward the last step.",
    "first_order_iterations": "MAML++: meta-iterations run first-order before switching to second order.",
}


def parse_hidden(text: str) -> tuple[int, ...]:
    """``"40, 40"`` -> ``(40, 40)``; raises ConfigError("model.hidden") with a readable reason."""
    parts = [p.strip() for p in text.replace(";", ",").split(",")]
    if not text.strip():
        raise ConfigError("model.hidden", "give at least one layer width, e.g. 40,40")
    sizes = []
    for part in parts:
        if not part.isdigit():
            raise ConfigError("model.hidden", f"{part or 'an empty entry'!r} is not a whole number; write widths like 40,40")
        sizes.append(int(part))
    return tuple(sizes)


class HyperPanel(QWidget):
    """Edits the model, algorithm and training sections of an :class:`ExperimentConfig`."""

    changed = Signal()
    meta_lr_changed = Signal(float)
    validity_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._error: ConfigError | None = None
        self.model = _combo(MODEL_TITLES)
        self.hidden = QLineEdit("40,40")
        self.hidden.setPlaceholderText("e.g. 40,40")
        self.activation = _combo({a: a for a in ACTIVATIONS})
        self.conv_channels = _int_box(1, 1024)
        self.conv_depth = _int_box(1, 8)
        self.downsample = _combo(DOWNSAMPLE_TITLES)
        self.batch_norm = _combo(BATCH_NORM_TITLES)
        self._module = ModelSpec()   # the user's module as last chosen (Model → Network → Your own module)
        self.module_info = QLabel("choose a file: Model → Network → Your own module (Python file)…")
        self.module_info.setWordWrap(True)
        self.algorithm = _combo(TITLES)
        self.inner_steps = _int_box(1, 100)
        self.inner_lr = _rate_box(100.0)
        self.meta_lr = _rate_box(10.0)
        self.meta_batch = _int_box(1, 4096)
        self.shots = _int_box(1, 10000)
        self.query = _int_box(1, 10000)
        self.iterations = _int_box(1, INT_MAX)
        self.iterations.setSingleStep(1000)
        self.seed = _int_box(0, INT_MAX)
        self.device = _combo({d: d for d in ["auto", *available_devices()]})
        self.compile = _combo({c: c for c in COMPILE_MODES})
        self.msl_iterations = _int_box(0, INT_MAX)
        self.first_order_iterations = _int_box(0, INT_MAX)
        for box in (self.msl_iterations, self.first_order_iterations):
            box.setSingleStep(100)
        self.rollouts = _int_box(1, 100_000)
        self.outer = _combo({step: OUTER_TITLES.get(step, step) for step in OUTER_STEPS})
        self.gamma = _fraction_box()
        self.gae_lambda = _fraction_box()
        self.max_kl = _rate_box(10.0)
        self.later_inner_lr = _rate_box(100.0)
        self.later_inner_lr.setMinimum(0.0)
        self._rl_kept = RLSpec()   # the RL settings the panel has no input for (conjugate gradient, line search)
        self._rl = False

        # every setting's input, by its dotted key (its row label is field_names.LABELS[key])
        self._field_widgets = {
            "model.name": self.model, "model.hidden": self.hidden, "model.activation": self.activation,
            "model.conv_channels": self.conv_channels, "model.conv_depth": self.conv_depth,
            "model.downsample": self.downsample, "model.batch_norm": self.batch_norm,
            "model.module": self.module_info, "model.module_args": self.module_info,
            "model.module_sha256": self.module_info,   # one line shows the module, its arguments and file
            "algorithm.name": self.algorithm, "algorithm.inner_steps": self.inner_steps,
            "algorithm.inner_lr": self.inner_lr, "algorithm.msl_iterations": self.msl_iterations,
            "algorithm.first_order_iterations": self.first_order_iterations,
            **{f"train.{name}": getattr(self, name) for name in ("meta_lr", "meta_batch", "shots", "query",
                                                                  "iterations", "seed", "device", "compile")},
            **{f"rl.{name}": getattr(self, name) for name in RL_FIELDS}}
        fields = self._field_widgets
        model = _group("Model", fields, [k for k in fields if k.startswith("model.") and k not in
                                         ("model.module_args", "model.module_sha256")])
        self._model_form = model.layout()
        algorithm = _group("Algorithm", fields, ["algorithm.name", "algorithm.inner_steps", "algorithm.inner_lr"])
        self._mamlpp = _group("MAML++", fields, ["algorithm.msl_iterations", "algorithm.first_order_iterations"])
        train = _group("Training", fields, [k for k in fields if k.startswith("train.")])
        self._train_form = train.layout()
        self._rl_group = _group("Meta-RL", fields, [k for k in fields if k.startswith("rl.")])
        self._rl_group.hide()
        self._error_label = QLabel()
        self._error_label.setStyleSheet("color: #d62728;")
        self._error_label.setWordWrap(True)
        self._error_label.hide()
        layout = QVBoxLayout(self)
        for widget in (model, algorithm, self._mamlpp, self._rl_group, train, self._error_label):
            layout.addWidget(widget)
        layout.addStretch(1)
        self.setStyleSheet(INVALID_STYLE)

        for name, text in HELP.items():
            getattr(self, name).setToolTip(text)
        for box in (self.inner_steps, self.inner_lr, self.meta_lr, self.meta_batch, self.shots, self.query,
                    self.iterations, self.seed, self.msl_iterations, self.first_order_iterations,
                    self.conv_channels, self.conv_depth, self.rollouts, self.gamma, self.gae_lambda, self.max_kl,
                    self.later_inner_lr):
            box.valueChanged.connect(self._on_edit)
        for combo in (self.model, self.activation, self.algorithm, self.device, self.compile, self.downsample,
                      self.batch_norm, self.outer):
            combo.currentIndexChanged.connect(self._on_edit)
        self.hidden.textChanged.connect(self._on_edit)
        self.meta_lr.valueChanged.connect(self.meta_lr_changed)
        self.set_config(ExperimentConfig())

    # ------------------------------------------------------------------ public API
    def model_spec(self) -> ModelSpec:
        """The model as edited; hidden layers that do not parse give ``()`` (``error()`` says why), or
        the default widths for Conv-4, which does not use them."""
        try:
            hidden = parse_hidden(self.hidden.text())
        except ConfigError:
            hidden = () if self.model.currentData() == "mlp" else ModelSpec().hidden
        m = self._module
        return ModelSpec(hidden, self.activation.currentData(), self.model.currentData(), self.conv_channels.value(),
                         self.conv_depth.value(), self.downsample.currentData(), self.batch_norm.currentData(),
                         m.module, dict(m.module_args), m.module_sha256)

    def set_user_module(self, spec: ModelSpec, summary: str) -> None:
        """Use the module the user chose and checked; ``summary`` (its size and output shape) is shown."""
        self._module = spec
        self.module_info.setText(summary)
        if self.model.currentData() != "module":
            _select(self.model, "module")
        else:
            self._on_edit()

    def algorithm_spec(self) -> AlgorithmSpec:
        return AlgorithmSpec(self.algorithm.currentData(), self.inner_steps.value(), self.inner_lr.value(),
                             self.msl_iterations.value(), self.first_order_iterations.value())

    def train_spec(self) -> TrainSpec:
        return TrainSpec(self.meta_lr.value(), self.meta_batch.value(), self.shots.value(), self.query.value(),
                         self.iterations.value(), self.seed.value(), self.device.currentData(),
                         self.compile.currentData())

    def rl_spec(self) -> RLSpec:
        """The meta-RL settings as edited (those without an input as last set)."""
        return replace(self._rl_kept, rollouts=self.rollouts.value(), outer=self.outer.currentData(),
                       gamma=self.gamma.value(), gae_lambda=self.gae_lambda.value(), max_kl=self.max_kl.value(),
                       later_inner_lr=self.later_inner_lr.value())

    def set_rl(self, rl: bool) -> None:
        """An environment family (meta-RL): show its settings, hide the supervised ones (shots, query)."""
        if rl != self._rl:
            self._rl = rl
            self._on_edit()

    def set_config(self, config: ExperimentConfig) -> None:
        """Show the model, algorithm and training sections of ``config`` (the family is not ours)."""
        widgets = [w for w in vars(self).values() if isinstance(w, QWidget)]
        for w in widgets:
            w.blockSignals(True)
        try:
            m = config.model
            self.hidden.setText(",".join(str(h) for h in m.hidden))
            _select(self.activation, m.activation)
            _select(self.model, m.name)
            if m.name == "module":
                self._module = m
                self.module_info.setText(f"{m.module} {m.module_args or ''}".rstrip())
            self.conv_channels.setValue(m.conv_channels)
            self.conv_depth.setValue(m.conv_depth)
            _select(self.downsample, m.downsample)
            _select(self.batch_norm, m.batch_norm)
            a, t = config.algorithm, config.train
            _select(self.algorithm, a.name)
            self.inner_steps.setValue(a.inner_steps)
            self.inner_lr.setValue(a.inner_lr)
            self.msl_iterations.setValue(a.msl_iterations)
            self.first_order_iterations.setValue(a.first_order_iterations)
            for name in ("meta_lr", "meta_batch", "shots", "query", "iterations", "seed"):
                getattr(self, name).setValue(getattr(t, name))
            _select(self.device, t.device)
            _select(self.compile, t.compile)
            r = self._rl_kept = config.rl
            self.rollouts.setValue(r.rollouts)
            _select(self.outer, r.outer)
            for name in ("gamma", "gae_lambda", "max_kl", "later_inner_lr"):
                getattr(self, name).setValue(getattr(r, name))
            self._rl = config.is_rl
        finally:
            for w in widgets:
                w.blockSignals(False)
        self._on_edit()

    def suggest_model(self, name: str) -> None:
        """Switch the network (an image family suggests Conv-4); every other field stays as it is."""
        if self.model.currentData() != name:
            _select(self.model, name)

    def error(self) -> str | None:
        """A readable reason the settings are invalid (first one found), or None."""
        return None if self._error is None else str(self._error)

    def set_training(self, running: bool) -> None:
        """Lock what a running trainer cannot change; the meta learning rate stays live."""
        for w in vars(self).values():
            if isinstance(w, (QLineEdit, QComboBox, QAbstractSpinBox)) and w is not self.meta_lr:
                w.setEnabled(not running)

    # ------------------------------------------------------------------ validation
    def _on_edit(self) -> None:
        self._mamlpp.setVisible(self.algorithm.currentData() == "mamlpp")
        conv = self.model.currentData() == "conv4"
        own = self.model.currentData() == "module"
        for widget in (self.hidden, self.activation):
            self._model_form.setRowVisible(widget, not conv and not own)
        self._model_form.setRowVisible(self.module_info, own)
        for widget in (self.conv_channels, self.conv_depth, self.downsample, self.batch_norm):
            self._model_form.setRowVisible(widget, conv)
        self._rl_group.setVisible(self._rl)
        for widget in (self.shots, self.query):   # a meta-RL task adapts on its own trajectories
            self._train_form.setRowVisible(widget, not self._rl)
        was_valid = self._error is None
        try:
            if not conv and not own:   # conv nets and own modules ignore the MLP's widths (maybe half typed)
                parse_hidden(self.hidden.text())
            model = self.model_spec()
            model.validate()
            if conv and model.batch_norm == "per_step" and self.algorithm.currentData() in ("reptile", "pretrain"):
                raise ConfigError("model.batch_norm", PER_STEP_ALGORITHMS)
            self.algorithm_spec().validate()
            self.train_spec().validate()
            if self._rl:
                self.rl_spec().validate()
            self._error = None
        except ConfigError as exc:
            self._error = exc
        wrong = self._field_widgets.get(self._error.field) if self._error is not None else None
        for widget in dict.fromkeys(self._field_widgets.values()):   # one widget may show several fields
            bad = widget is wrong
            mark_invalid(widget, bad, self._error.message if bad else "")
        self._error_label.setText(readable(str(self._error)) if self._error else "")
        self._error_label.setVisible(self._error is not None)
        self.changed.emit()
        if was_valid != (self._error is None):
            self.validity_changed.emit(self._error is None)


def _combo(items: dict[str, str]) -> QComboBox:
    combo = QComboBox()
    for data, title in items.items():
        combo.addItem(title, data)
    return combo


def _select(combo: QComboBox, data: str) -> None:
    """Select ``data``; a value this machine lacks (e.g. a saved 'cuda') is shown, not dropped."""
    index = combo.findData(data)
    if index < 0:
        combo.addItem(f"{data} (not available here)", data)
        index = combo.count() - 1
    combo.setCurrentIndex(index)


def _fraction_box() -> QDoubleSpinBox:
    """γ and λ: numbers in [0, 1] with the few decimals they are given with."""
    box = QDoubleSpinBox()
    box.setDecimals(3)
    box.setRange(0.0, 1.0)
    box.setSingleStep(0.01)
    box.setKeyboardTracking(False)
    return box


def _int_box(low: int, high: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setGroupSeparatorShown(high > 10000)
    return box


def _rate_box(high: float) -> QDoubleSpinBox:
    """Learning rates span decades: 5 decimals and steps that scale with the value."""
    box = QDoubleSpinBox()
    box.setDecimals(5)
    box.setRange(0.00001, high)
    box.setSingleStep(0.001)
    box.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
    box.setKeyboardTracking(False)
    return box


def _group(title: str, widgets: dict[str, QWidget], keys: list[str]) -> QGroupBox:
    box = QGroupBox(title)
    form = QFormLayout(box)
    for key in keys:
        text = QLabel(LABELS[key])
        text.setBuddy(widgets[key])
        form.addRow(text, widgets[key])
    return box
