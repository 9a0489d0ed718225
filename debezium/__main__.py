"""`python -m debezium`: register the Debezium connectors with Kafka Connect and wait until they run
(the local stack does this in the connect service's provision step; compose's cdc-sink runs it)."""
import sys

from debezium import connectors
from platform_common import config
from platform_common.errors import StackError

try:
    settings = config.load()
    url, env = settings.connect_url.rstrip("/"), settings.as_env()
    changed = connectors.register(env, url)
    connectors.wait_running(url, list(connectors.load(env)))
    print(f"connectors registered ({', '.join(changed) or 'unchanged'}): {connectors.summary(url, list(connectors.load(env)))}")
except StackError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(1)
