import sys

from debezium.cdc_sink.sink import main

sys.exit(main())
