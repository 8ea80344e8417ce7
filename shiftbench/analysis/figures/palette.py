"""One look per model, per protocol and per shift, in every figure of every run.

A model's colour, marker and line style are fixed by its *name*, never by its position in a
run: ``patchcore`` is the same blue circle in a one-model run, in a ten-model run and in a
report that combines runs. Registered names (:data:`MODEL_STYLES`) get hand-picked styles;
any other name gets colour, marker and line style from the same palette, chosen by a
stable hash of the name (the same on every machine); register a plugin's model with
:func:`register_model_style` to pick its look.

Colours are Okabe & Ito (2008), safe for the common colour-vision deficiencies; markers and
line styles also differ, so a greyscale print still tells the models apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from shiftbench._hashing import stable_int

__all__ = [
    "MODEL_STYLES",
    "PROTOCOL_LABELS",
    "ModelStyle",
    "model_style",
    "protocol_label",
    "register_model_style",
]

#: Okabe-Ito colours, without its yellow (too pale for a line on white) and black (reserved
#: for references), plus two of Paul Tol's muted colours for more models
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#882255", "#999933")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
LINES = ("-", "--", "-.", ":")


@dataclass(frozen=True)
class ModelStyle:
    color: str
    marker: str
    linestyle: str

    def line(self) -> dict:
        """Keyword arguments for ``Axes.plot``."""
        return {"color": self.color, "marker": self.marker, "linestyle": self.linestyle}


#: hand-picked styles of the models shiftbench ships (``shiftbench list models``)
MODEL_STYLES: dict[str, ModelStyle] = {
    "patchcore": ModelStyle("#0072B2", "o", "-"),
    "anomalib-patchcore": ModelStyle("#56B4E9", "o", "--"),
    "ae": ModelStyle("#D55E00", "s", "--"),
    "anomalib-padim": ModelStyle("#009E73", "^", "-."),
    "padim": ModelStyle("#009E73", "^", "-."),
    "anomalib-fastflow": ModelStyle("#CC79A7", "D", ":"),
    "anomalib-stfpm": ModelStyle("#E69F00", "v", "-"),
    "anomalib-efficientad": ModelStyle("#56B4E9", "P", "-."),
    "anomalib-draem": ModelStyle("#882255", "X", "--"),
}


def register_model_style(name: str, color: str, marker: str, linestyle: str = "-") -> None:
    """Fix the style of a model (e.g. a plugin's) for every later figure."""
    MODEL_STYLES[name] = ModelStyle(color, marker, linestyle)


def model_style(name: str) -> ModelStyle:
    """The style of model ``name``: registered, else derived from a stable hash of the name."""
    if name in MODEL_STYLES:
        return MODEL_STYLES[name]
    h = stable_int(f"shiftbench-model-style|{name}", 8)
    colour = OKABE_ITO[h % len(OKABE_ITO)]
    return ModelStyle(colour, MARKERS[(h // 8) % len(MARKERS)], LINES[(h // 80) % len(LINES)])


#: how every figure and table names the protocols
PROTOCOL_LABELS = {
    "clean": "clean",
    "shift-noadapt": "shift, no adapt.",
    "shift-adapt": "shift, adapt.",
}


def protocol_label(protocol: str) -> str:
    return PROTOCOL_LABELS.get(protocol, protocol)
