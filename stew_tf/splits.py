"""The split vocabulary: one name per split, used by results.json, TensorBoard, the console and
the reports."""

TRAIN = "train"
VALIDATION = "validation"
TEST = "test"
EVALUATED = (VALIDATION, TEST)  # the splits whose metrics results.json holds
SELECT_ON = (VALIDATION, TEST)  # --select_on: the split whose metric picks the epoch


def selection_name(select_on):
  """What the metrics that pick the epoch are called: "validation", or "test_selection" for the
  --select_on=test diagnostic, so that no curve or line passes it off as a validation result."""
  return VALIDATION if select_on == VALIDATION else f"{TEST}_selection"

# --validation: "split" holds the validation split out to pick the epoch; "none" trains on
# train + validation for exactly --epochs epochs and keeps the last (no selection at all).
VALIDATION_PROTOCOLS = ("split", "none")
