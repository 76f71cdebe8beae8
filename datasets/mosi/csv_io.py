"""Reading the CMU-MOSI CSV files: records with their 1-based line, errors naming file and line."""

import csv
import dataclasses
import io

from etils import epath


@dataclasses.dataclass(frozen=True)
class File:
  """A file to read: `name` as in FILES, `path` where it is (a manual dir or the download cache)."""
  name: str
  path: epath.Path

  def __str__(self):
    # Downloads have hashed names, so say which file of the layout it is.
    return str(self.path) if str(self.path).endswith(self.name) else f"{self.name} ({self.path})"


def error(file, line, message, column=None):
  where = f"line {line}" if column is None else f"line {line}, column {column}"
  return ValueError(f"{file}, {where}: {message}")


def csv_rows(file):
  """Yields (1-based line, cells) for every record of a CSV file."""
  try:
    text = file.path.read_text(encoding="utf-8")
  except UnicodeDecodeError as err:
    raise ValueError(f"{file}: expected UTF-8 text ({err})") from err
  reader = csv.reader(io.StringIO(text, newline=""))
  try:
    for cells in reader:
      yield reader.line_num, cells
  except csv.Error as err:
    raise error(file, reader.line_num, f"expected CSV with quoted cells ({err})") from err

