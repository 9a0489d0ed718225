"""Running the JVM services (Kafka, Kafka Connect) from the jars `make setup` copied from Maven Central."""
from __future__ import annotations

import shutil
from pathlib import Path
from string import Template

from platform_common.config import REPO, TOOLS

JVM_DIR = TOOLS / "jvm"
CONF_DIR = REPO / "stack" / "conf"


def java() -> str:
    return shutil.which("java") or "java"


def command(main_class: str, classpath: str, heap: str, *args: str) -> list[str]:
    # small initial heap: the JVMs only grow to their maximum under load
    return [java(), "-Xms128m", f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={CONF_DIR / 'log4j2.properties'}",
            "-cp", f"{JVM_DIR / classpath}/*", main_class, *args]


def render(template: str, target: Path, **values: object) -> Path:
    """Fill a properties template from stack/conf into the data folder."""
    text = Template((CONF_DIR / template).read_text()).substitute({k: str(v) for k, v in values.items()})
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target
