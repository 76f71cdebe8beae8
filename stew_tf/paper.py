"""The paper's settings and reference numbers: the single source for the defaults of stew_tf.main,
the reproduce tables, the flagfile headers and the README (tests/test_paper.py checks that those
agree with this module).

Rajan, Brutti and Cavallaro, "Cross-Modal Knowledge Transfer via Inter-Modal Translation and
Alignment for Affect Recognition": Tables II and IV (CMU-MOSI), III and V (RECOLA).
"""

# The tables a reproduction can run: flags/<table>_*.cfg. mosi_score is ours, not the paper's.
TABLES = {"mosi": "CMU-MOSI, paper Tables II and IV",
          "recola": "RECOLA (AVEC 2016), paper Tables III and V",
          "mosi_score": "CMU-MOSI continuous sentiment score (regression; not in the paper)",
          "synthetic": "the embedded synthetic data: positive control and its negative control "
                       "(not in the paper)"}

# Sec. IV-B: the training and architecture settings, stew_tf.main's defaults on the paper's data.
DROPOUT_GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # tuned per model; the chosen values are not given
BATCH_SIZE = 32
CLASSIFIER_DROPOUT = 0.3  # between the classifier's two dense layers
DCCA_R = 1e-3  # r1 = r2, the covariance regularisers of eq. 6-7
LEARNING_RATE = {"mosi": 1e-4, "recola": 1e-5}  # Adam
# The encoders with one Bi-GRU layer (all others have two), by the paper's dataset.
SINGLE_GRU_LAYER = {"mosi": ("text",), "recola": ("audio",)}


def encoder_gru_layers(paper_dataset, modality):
  """Bi-GRU layers of `modality`'s encoder in the paper's setup for `paper_dataset` (or None)."""
  return 1 if modality in SINGLE_GRU_LAYER.get(paper_dataset, ()) else 2


def decoder_size(dataset, label, weak):
  """(units, Bi-GRU layers) of the decoder: 500 x 1 for the RECOLA valence audio models, else
  250 x 2 (the paper is silent on CMU-MOSI's width; 250 is our choice)."""
  return (500, 1) if (dataset, label, weak) == ("recola", "valence", "audio") else (250, 2)


# Row order and names of the paper's tables.
METHOD_NAMES = {"cls_only": "Classifier", "enc_cls": "Encoder + Classifier",
                "cm_stew": "CM-StEW", "no_lfa": "CM-StEW - LFA", "no_decoder": "CM-StEW - Decoder"}


def _mosi(method, strong, weak, accuracy, f1_weighted):
  return (("mosi", "sentiment", method, strong, weak),
          {"table": "IV" if strong else "II", "accuracy": accuracy, "f1_weighted": f1_weighted})


def _recola(label, method, strong, weak, ccc):
  return (("recola", label, method, strong, weak), {"table": "V" if strong else "III", "ccc": ccc})


# The paper's single value for each cell, keyed (dataset, label, method, strong, weak); strong is
# None for the uni-modal baselines. Accuracy and weighted F1 in %.
PAPER = dict([
    # Table II: CMU-MOSI uni-modal baselines.
    _mosi("cls_only", None, "text", 74.9, 75.2),
    _mosi("enc_cls", None, "text", 80.3, 80.1),
    _mosi("cls_only", None, "audio", 54.7, 55.2),
    _mosi("enc_cls", None, "audio", 61.0, 60.0),
    _mosi("cls_only", None, "video", 51.5, 52.2),
    _mosi("enc_cls", None, "video", 60.8, 59.7),
    # Table IV: CM-StEW(+Textual) and its ablations.
    _mosi("cm_stew", "text", "video", 63.4, 63.9),
    _mosi("no_lfa", "text", "video", 62.8, 63.3),
    _mosi("no_decoder", "text", "video", 63.0, 63.4),
    _mosi("cm_stew", "text", "audio", 64.8, 64.3),
    _mosi("no_lfa", "text", "audio", 63.6, 63.2),
    _mosi("no_decoder", "text", "audio", 64.1, 63.5),
    # Table III: RECOLA uni-modal baselines.
    _recola("arousal", "cls_only", None, "audio", 0.769),
    _recola("arousal", "cls_only", None, "video_appearance", 0.517),
    _recola("arousal", "cls_only", None, "video_geometric", 0.470),
    _recola("arousal", "enc_cls", None, "audio", 0.786),
    _recola("arousal", "enc_cls", None, "video_appearance", 0.541),
    _recola("arousal", "enc_cls", None, "video_geometric", 0.536),
    _recola("valence", "cls_only", None, "audio", 0.490),
    _recola("valence", "cls_only", None, "video_appearance", 0.496),
    _recola("valence", "cls_only", None, "video_geometric", 0.560),
    _recola("valence", "enc_cls", None, "audio", 0.525),
    _recola("valence", "enc_cls", None, "video_appearance", 0.570),
    _recola("valence", "enc_cls", None, "video_geometric", 0.601),
    # Table V: CM-StEW(+Acoustic) for arousal, (+Visual-app.) and (+Visual-geo.) for valence.
    _recola("arousal", "cm_stew", "audio", "video_appearance", 0.574),
    _recola("arousal", "no_lfa", "audio", "video_appearance", 0.571),
    _recola("arousal", "no_decoder", "audio", "video_appearance", 0.561),
    _recola("arousal", "cm_stew", "audio", "video_geometric", 0.586),
    _recola("arousal", "no_lfa", "audio", "video_geometric", 0.580),
    _recola("arousal", "no_decoder", "audio", "video_geometric", 0.564),
    _recola("valence", "cm_stew", "video_appearance", "audio", 0.560),
    _recola("valence", "no_lfa", "video_appearance", "audio", 0.538),
    _recola("valence", "no_decoder", "video_appearance", "audio", 0.563),
    _recola("valence", "cm_stew", "video_geometric", "audio", 0.555),
    _recola("valence", "no_lfa", "video_geometric", "audio", 0.531),
    _recola("valence", "no_decoder", "video_geometric", "audio", 0.556),
])
