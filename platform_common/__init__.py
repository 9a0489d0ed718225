"""What every part of the platform shares, whatever virtualenv it runs in.

Installed in editable mode into each virtualenv (pyproject.toml): the settings (`config`), the
one-line errors (`errors`), small network probes (`net`) and the names the parts agree on
(`contracts`). It depends only on python-dotenv and requests, which every lock file holds.
"""
