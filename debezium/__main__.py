"""`python -m debezium`: register the Debezium connectors with Kafka Connect and wait until they run
(the local stack does this in the connect service's provision step; compose's cdc-sink runs it)."""
import sys

from debezium import connectors
from platform_common import config
from platform_common.errors import StackError

try:
    settings = config.load()
    url = settings["CONNECT_URL"].rstrip("/")
    changed = connectors.register(settings, url)
    connectors.wait_running(url, list(connectors.load(settings)))
    print(f"connectors registered ({', '.join(changed) or 'unchanged'}): {connectors.summary(url, list(connectors.load(settings)))}")
except StackError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(1)
