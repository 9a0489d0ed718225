"""PostgreSQL runs as its own OS user when the stack runs as root: a checkout it cannot reach is named."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from stack import postgres

pytestmark = pytest.mark.unit


def test_a_private_folder_above_the_data_dir_is_named():
    private = Path(tempfile.mkdtemp(dir="/tmp"))  # mode 0700, as `mktemp -d` makes it
    try:
        data = private / "ci" / ".data" / "postgres"
        data.mkdir(parents=True)
        if os.geteuid() == 0:
            assert postgres.unreachable_folder(data) == private
            private.chmod(0o755)
            assert postgres.unreachable_folder(data) is None
        else:
            assert postgres.unreachable_folder(data) is None  # the server runs as the caller: no other user
    finally:
        shutil.rmtree(private)
