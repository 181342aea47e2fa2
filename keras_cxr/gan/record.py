"""What an exported generator is, as one frozen record.

Made once, where a GAN run's manifest is read (`keras_cxr.pipeline.gan_run`), written into the
SavedModel's `assets.extra/keras_cxr.json` by `to_json` and read back by `GeneratorRecord.read`:
the one place that knows what older files lack. Everything that serves, streams or describes a
generator receives this record, never the JSON dict.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from keras_cxr.errors import KerasCXRError

DEFAULT_MAX_IMAGES = 4096  # one `generate` call's ceiling (keras_cxr.gan.export)
META_FILE = Path("assets.extra") / "keras_cxr.json"
REQUIRED = ("kind", "latent_dim", "pixel_range", "image_size")  # without these it is not ours


@dataclass(frozen=True)
class GeneratorRecord:
    """An exported generator.

    Args:
        kind: str. "dcgan" (makes its training label only) or "cdcgan".
        latent_dim, image_size: int.
        pixel_range: str. The generator's output range, "0_1" or "-1_1" (images are [0, 1]).
        minority_label: int or None. The train split's minority class: `generate`'s default
            label and a DCGAN's only label (None: exported before it was recorded).
        alpha: float or None. A cDCGAN's share of fake labels from the majority class.
        class_names: tuple of str or None. Label 0's and label 1's names.
        name, preset: str. The run's name (`dcgan`, `cdcgan_a050`, `dcgan_g1`) and preset.
        epochs: int. Epochs trained.
        export, export_epoch: which epoch was exported ("last" or the tracked "best") and its number.
        max_images: int. The most images one `generate` call may ask for.
        diffaugment: str. DiffAugment policies it trained with.
        ema: float. Decay of the moving average exported instead of the raw G (0: the raw G).
        gan_seed: int or None. The GAN seed of a per-seed generator (`classifier.generator_per_seed`).
        recipe: bool. A cDCGAN trained with issue 23's recipe (`cdcgan_plus_aNNN`).
        generated_label: int or None. A DCGAN's label, as older files record it without a minority.
    """

    kind: str
    latent_dim: int
    pixel_range: str
    image_size: int
    minority_label: int | None = None
    alpha: float | None = None
    class_names: tuple[str, ...] | None = None
    name: str | None = None
    preset: str | None = None
    epochs: int | None = None
    export: str = "last"
    export_epoch: int | None = None
    max_images: int = DEFAULT_MAX_IMAGES
    diffaugment: str = "none"
    ema: float = 0.0
    gan_seed: int | None = None
    recipe: bool = False
    generated_label: int | None = None

    def __post_init__(self):
        if self.kind not in ("dcgan", "cdcgan"):
            raise KerasCXRError(f"`kind` must be 'dcgan' or 'cdcgan'. Received: kind={self.kind!r}")
        if self.max_images < 1:
            raise KerasCXRError(f"`max_images` must be >= 1. Received: max_images={self.max_images}")
        if self.kind == "dcgan" and self.generated_label is None and self.minority_label is not None:
            object.__setattr__(self, "generated_label", self.minority_label)  # a DCGAN makes the minority

    @property
    def conditional(self) -> bool:
        return self.kind == "cdcgan"

    @property
    def majority_label(self) -> int | None:
        return None if self.minority_label is None else 1 - self.minority_label

    def exported(self, rule: str, epoch: int) -> "GeneratorRecord":
        """This record for the export of `epoch`, chosen by `rule` ("last" or "best")."""
        return dataclasses.replace(self, export=rule, export_epoch=int(epoch))

    def to_json(self) -> dict:
        """The `assets.extra/keras_cxr.json` dict, keys in the order files have always had."""
        out = {"name": self.name, "kind": self.kind, "alpha": self.alpha, "generated_label": self.generated_label,
               "class_names": list(self.class_names) if self.class_names else self.class_names,
               "minority_label": self.minority_label, "majority_label": self.majority_label,
               "image_size": self.image_size, "latent_dim": self.latent_dim, "pixel_range": self.pixel_range,
               "preset": self.preset, "epochs": self.epochs, "max_images": self.max_images,
               "diffaugment": self.diffaugment, "ema": self.ema}
        if self.gan_seed is not None:
            out["gan_seed"] = self.gan_seed
        if self.recipe:
            out["recipe"] = True
        if self.conditional and self.minority_label is not None and self.class_names:
            m = self.majority_label
            out["alpha_meaning"] = (f"share of generated labels from the train split's majority class "
                                    f"(label {m}, {self.class_names[m]})")
        out.update({"export": self.export, "export_epoch": self.export_epoch})
        return out

    def write(self, export_dir: str | os.PathLike) -> None:
        path = Path(export_dir) / META_FILE
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def from_json(cls, meta: dict, where="generator") -> "GeneratorRecord":
        """A record from a metadata dict, filling in what files written by older versions lack:
        no export fields (the last epoch was exported), no minority label (a DCGAN's is the label
        it makes), no `max_images`, DiffAugment or EMA (none of them)."""
        missing = [k for k in REQUIRED if k not in meta]
        if missing:
            raise KerasCXRError(f"{where} is not a keras_cxr generator: its {META_FILE} "
                                f"{'is missing' if not meta else 'lacks ' + ', '.join(missing)}")
        minority = meta.get("minority_label", meta.get("generated_label") if meta["kind"] == "dcgan" else None)
        names = meta.get("class_names")
        return cls(kind=meta["kind"], latent_dim=int(meta["latent_dim"]), pixel_range=meta["pixel_range"],
                   image_size=int(meta["image_size"]), minority_label=None if minority is None else int(minority),
                   alpha=meta.get("alpha"), class_names=tuple(names) if names else None, name=meta.get("name"),
                   preset=meta.get("preset"), epochs=meta.get("epochs"), export=meta.get("export", "last"),
                   export_epoch=meta.get("export_epoch", meta.get("epochs")),
                   max_images=int(meta.get("max_images", DEFAULT_MAX_IMAGES)),
                   diffaugment=meta.get("diffaugment", "none"), ema=float(meta.get("ema", 0.0)),
                   gan_seed=meta.get("gan_seed"), recipe=bool(meta.get("recipe", False)),
                   generated_label=meta.get("generated_label"))

    @classmethod
    def read(cls, export_dir: str | os.PathLike) -> "GeneratorRecord":
        """The record of an exported generator; a clear error when it has none or it is unreadable."""
        path = Path(export_dir) / META_FILE
        try:
            meta = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError) as exc:
            raise KerasCXRError(f"unreadable generator metadata {path}: {exc}") from None
        return cls.from_json(meta, str(export_dir))
