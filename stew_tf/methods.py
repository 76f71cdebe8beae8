"""What each method is: the one table that the config, the stage builder and the loop read."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Method:
  """One row of the paper's tables.

  Attributes:
    name: the `--method` value.
    description: one line for `--help` and the docs.
    uses_strong: the strong modality takes part in training (`--strong` is read and checked).
    alignment: stage 2 adds alpha * (-DCCA correlation) between teacher and weak latents (eq. 5).
    translation: stage 2 adds a decoder and beta * MAE to the normalised strong features (eq. 8).
    identity_encoder: the weak "encoder" is input normalisation only (classifier on raw features).
  """
  name: str
  description: str
  uses_strong: bool = False
  alignment: bool = False
  translation: bool = False
  identity_encoder: bool = False

  @property
  def trains_teacher(self):
    """Stage 1 trains a strong encoder + classifier first: the teacher whose latents the
    alignment term needs (nothing else needs a trained teacher)."""
    return self.alignment


METHODS = {m.name: m for m in (
    Method("cm_stew", "full method: prediction + alpha * alignment + beta * translation (eq. 10)",
           uses_strong=True, alignment=True, translation=True),
    # Without alignment the teacher's latents are never used: only the strong features'
    # normalisation (the decoder's target) is, and that comes from the data, not from a teacher.
    Method("no_lfa", "without latent feature alignment (alpha = 0): prediction + translation",
           uses_strong=True, translation=True),
    Method("no_decoder", "without the decoder (beta = 0): prediction + alignment",
           uses_strong=True, alignment=True),
    Method("enc_cls", "weak encoder + classifier trained on labels alone (no strong modality)"),
    Method("cls_only", "classifier on normalised raw weak features (no encoder)",
           identity_encoder=True),
)}


def get(name):
  return METHODS[name]
