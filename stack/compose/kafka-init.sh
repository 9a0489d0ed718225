#!/usr/bin/env bash
# Compose's one-shot topic creation from the same declarative list the local stack reads
# (stack/topics.conf): create what is missing, grow partitions, apply retention/cleanup.
set -euo pipefail
bootstrap=${BOOTSTRAP:-kafka:29092}
bin=/opt/kafka/bin
grep -vE '^\s*(#|$)' /topics.conf | while read -r name partitions retention cleanup _; do
  "$bin/kafka-topics.sh" --bootstrap-server "$bootstrap" --create --if-not-exists --topic "$name" \
    --partitions "$partitions" --replication-factor 1 \
    --config "retention.ms=$retention" --config "cleanup.policy=$cleanup"
  current=$("$bin/kafka-topics.sh" --bootstrap-server "$bootstrap" --describe --topic "$name" \
    | grep -oE 'PartitionCount: ?[0-9]+' | grep -oE '[0-9]+')
  if [ "$current" -lt "$partitions" ]; then
    "$bin/kafka-topics.sh" --bootstrap-server "$bootstrap" --alter --topic "$name" --partitions "$partitions"
  fi
  "$bin/kafka-configs.sh" --bootstrap-server "$bootstrap" --alter --entity-type topics --entity-name "$name" \
    --add-config "retention.ms=$retention,cleanup.policy=$cleanup"
done
echo "topics ready"
