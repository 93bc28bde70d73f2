# Apache Kafka (KRaft, one node) from the Maven jars `restate-stream stack install` fetched, on a
# Debian JRE base. Configured like the local stack (server.properties is the stack's, for
# /var/lib/kafka) and, like the official apache/kafka image, by KAFKA_* variables:
# KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://127.0.0.1:19092 sets advertised.listeners
# ('_' -> '.', '__' -> '_', '___' -> '-'); CLUSTER_ID formats an empty data dir.
ARG JRE_IMAGE=restate-stream/debian-jre:bookworm-local
FROM ${JRE_IMAGE}
COPY libs/ /opt/kafka/libs/
COPY server.properties log4j2.properties /opt/kafka/config/
COPY kafka-entrypoint.sh kafka-broker-api-versions.sh /opt/kafka/bin/
ENV KAFKA_HEAP_OPTS="-Xmx768m -Xms128m"
EXPOSE 9092 9093
ENTRYPOINT ["/opt/kafka/bin/kafka-entrypoint.sh"]
