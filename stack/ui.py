"""The one console every stack command prints through."""
import shutil

from rich.console import Console

# wide enough for the status table when output is not a terminal (CI logs, pipes)
console = Console(highlight=False, width=max(shutil.get_terminal_size((140, 24)).columns, 120))
