#!/bin/bash
# Writes /var/lib/kafka/server.properties (the image's defaults, then every KAFKA_* variable
# as a property, as apache/kafka does), formats an empty data dir once, and runs the broker.
set -euo pipefail
conf=/var/lib/kafka/server.properties
mkdir -p /var/lib/kafka
cp /opt/kafka/config/server.properties "$conf"

not_properties=" KAFKA_HEAP_OPTS KAFKA_OPTS KAFKA_JVM_PERFORMANCE_OPTS KAFKA_LOG4J_OPTS "
while IFS='=' read -r name value; do
  case "$name" in KAFKA_*) ;; *) continue ;; esac
  [[ "$not_properties" == *" $name "* ]] && continue
  key="${name#KAFKA_}"
  key="${key,,}"
  key="${key//___/-}"
  key="${key//__/@}"
  key="${key//_/.}"
  key="${key//@/_}"
  # Drop the default line for this key, then append the variable's value.
  grep -v -E "^${key//./\\.}=" "$conf" > "$conf.tmp" || true
  mv "$conf.tmp" "$conf"
  printf '%s=%s\n' "$key" "$value" >> "$conf"
done < <(env)

classpath='/opt/kafka/libs/*'
logs="-Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties"
data=$(sed -n 's/^log\.dirs=//p' "$conf" | cut -d, -f1)
if [ ! -f "$data/meta.properties" ]; then
  # Any 22-character base64 id; a fixed default keeps a single test broker simple.
  java $logs -cp "$classpath" kafka.tools.StorageTool format -c "$conf" \
    -t "${CLUSTER_ID:-MkU3OEVBNTcwNTJENDM2Qk}" -g
fi
# shellcheck disable=SC2086  # the option strings are lists of words
exec java $KAFKA_HEAP_OPTS ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC -Djava.awt.headless=true} \
  ${KAFKA_OPTS:-} $logs -Dkafka.logs.dir=/var/lib/kafka/logs -cp "$classpath" kafka.Kafka "$conf"
