#!/usr/bin/env bash
# Run a real single-node Apache Kafka broker (KRaft, combined broker+controller)
# on this machine for sluice's integration tests: no Docker, no Kafka tarball.
# The broker jars come from Maven Central via scripts/kafka/pom.xml and are
# cached in the git-ignored .cache/kafka folder of the repository.
#
# Usage:
#   scripts/kafka.sh start [--keep-data]   start (idempotent) and wait until it serves
#   scripts/kafka.sh stop [--keep-data]    SIGTERM, wait, SIGKILL; drop data unless --keep-data
#   scripts/kafka.sh kill                  SIGKILL at once (crash), data is kept
#   scripts/kafka.sh status                exit 0 iff running and serving
#   scripts/kafka.sh env                   print export lines for the tests
#   scripts/kafka.sh topic NAME PARTITIONS create a topic (no-op if it exists)
#   scripts/kafka.sh check                 smoke-test every listener with the Java client
#   scripts/kafka.sh fetch                 only download the jars into the cache
#
# Listeners (all on 127.0.0.1):
#   PLAINTEXT       ${KAFKA_PORT:-19092}             inter-broker traffic too
#   SASL_PLAINTEXT  ${KAFKA_SASL_PORT:-19093}        SCRAM-SHA-256 and SCRAM-SHA-512
#   SSL             ${KAFKA_SSL_PORT:-19095}         self-signed CA in .cache/kafka/tls
#   CONTROLLER      ${KAFKA_CONTROLLER_PORT:-19094}  KRaft quorum, not for clients
#
# Tunables (environment): KAFKA_VERSION, KAFKA_PORT, KAFKA_SASL_PORT,
# KAFKA_SSL_PORT, KAFKA_CONTROLLER_PORT, KAFKA_HEAP, KAFKA_TLS (0 disables the
# SSL listener), KAFKA_START_TIMEOUT (seconds), KAFKA_SASL_USER,
# KAFKA_SASL_PASSWORD, KAFKA_PROBE (kcat|java), SLUICE_KAFKA_CACHE (cache
# folder), JAVA_HOME.
#
# Note: Debian 12's kcat (librdkafka 2.0.2) cannot authenticate with SCRAM
# against any Kafka 4.x broker (librdkafka bug fixed in 2.6.1: the broker now
# checks the SCRAM nonce strictly). Plain and TLS work with it; for SASL use
# the Java client from the cached jars or a Go client.
set -euo pipefail

# Resolve the repository root from this file so the script works from any cwd.
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd -P)

KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_SASL_PORT=${KAFKA_SASL_PORT:-19093}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19094}
KAFKA_SSL_PORT=${KAFKA_SSL_PORT:-19095}
KAFKA_TLS=${KAFKA_TLS:-1}
KAFKA_HEAP=${KAFKA_HEAP:--Xms128m -Xmx512m}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
KAFKA_SASL_USER=${KAFKA_SASL_USER:-sluice}
KAFKA_SASL_PASSWORD=${KAFKA_SASL_PASSWORD:-sluice-secret}
HOST=127.0.0.1

CACHE_DIR=${SLUICE_KAFKA_CACHE:-$REPO_ROOT/.cache/kafka}
LIB_DIR=$CACHE_DIR/$KAFKA_VERSION/lib
RUN_DIR=$CACHE_DIR/run
TLS_DIR=$CACHE_DIR/tls
POM=$SCRIPT_DIR/kafka/pom.xml
PID_FILE=$RUN_DIR/kafka.pid
LOG_FILE=$RUN_DIR/kafka.log
# The data dir lives in a fresh mktemp folder; its path is remembered here so
# that stop can delete it and `start --keep-data` can find it again.
DATA_FILE=$RUN_DIR/data-dir
SERVER_PROPS=$RUN_DIR/server.properties
TOOLS_LOG4J=$RUN_DIR/tools-log4j2.properties
# Not a secret worth protecting: a throwaway store for a loopback test broker.
TLS_STORE_PASSWORD=sluice-test-store

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The header comment is the help text; a usage error shows only its
# "Usage:" block.
help() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
usage() {
  help | sed -n '/^Usage:/,/^$/p' >&2
  exit 2
}

java_bin() {
  if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
    printf '%s\n' "$JAVA_HOME/bin/java"
  else
    command -v java || die "java not found (Kafka ${KAFKA_VERSION} needs Java 17+)"
  fi
}

keytool_bin() {
  if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/keytool ]]; then
    printf '%s\n' "$JAVA_HOME/bin/keytool"
  else
    command -v keytool || die "keytool not found"
  fi
}

# Kafka 4.x brokers are compiled for Java 17; fail early with a clear message
# instead of an UnsupportedClassVersionError buried in the log.
check_java() {
  local java ver major
  java=$(java_bin)
  ver=$("$java" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
  major=${ver%%.*}
  [[ $major == 1 ]] && major=$(cut -d. -f2 <<<"$ver")
  [[ $major =~ ^[0-9]+$ ]] || die "cannot parse java version '$ver'"
  ((major >= 17)) || die "Kafka ${KAFKA_VERSION} needs Java 17+, found $ver ($java)"
}

# --- jars --------------------------------------------------------------------

# A marker written after a complete copy; it records the pom's hash so that an
# edited pom (or another version) triggers a new download, while a plain
# rerun skips Maven entirely.
lib_stamp() { printf '%s %s\n' "$KAFKA_VERSION" "$(sha256sum "$POM" | cut -d' ' -f1)"; }

fetch_jars() {
  local stamp=$LIB_DIR/.complete
  if [[ -f $stamp && "$(cat "$stamp")" == "$(lib_stamp)" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch the Kafka jars)"
  log "fetching Kafka ${KAFKA_VERSION} jars from Maven Central into ${LIB_DIR}"
  mkdir -p "$(dirname "$LIB_DIR")"
  # Copy into a temp folder and rename, so an interrupted download never
  # leaves a half-filled lib folder that looks complete.
  local tmp mvn_log
  tmp=$(mktemp -d "$(dirname "$LIB_DIR")/lib.tmp.XXXXXX")
  mvn_log=$tmp.mvn.log
  if ! mvn -q -B -Dstyle.color=never -f "$POM" \
      -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$tmp" >"$mvn_log" 2>&1; then
    cat "$mvn_log" >&2
    rm -rf "$tmp" "$mvn_log"
    die "mvn could not fetch org.apache.kafka:kafka_2.13:${KAFKA_VERSION}"
  fi
  rm -f "$mvn_log"
  lib_stamp >"$tmp/.complete"
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
}

# Log4j2 config for the short-lived tools (format, topic, probes): warnings
# only, on stderr, so their stdout stays parseable.
write_tools_log4j() {
  mkdir -p "$RUN_DIR"
  cat >"$TOOLS_LOG4J" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = STDERR
EOF
}

# Run a Kafka tool class from the cached jars.
kafka_tool() {
  local class=$1
  shift
  "$(java_bin)" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$TOOLS_LOG4J" \
    -cp "$LIB_DIR/*" "$class" "$@"
}

# --- TLS ---------------------------------------------------------------------

# A self-signed CA and a broker certificate for 127.0.0.1/localhost, made
# with keytool (part of the JDK, so no openssl needed). Kept across runs so the
# CA path exported by `env` stays valid; regenerated only when missing.
ensure_tls() {
  [[ $KAFKA_TLS == 1 ]] || return 0
  if [[ -f $TLS_DIR/broker.p12 && -f $TLS_DIR/ca.pem ]]; then
    return 0
  fi
  log "generating a self-signed CA and broker certificate in ${TLS_DIR}"
  local kt tmp pw=$TLS_STORE_PASSWORD san="SAN=dns:localhost,ip:127.0.0.1"
  kt=$(keytool_bin)
  mkdir -p "$CACHE_DIR"
  tmp=$(mktemp -d "$CACHE_DIR/tls.tmp.XXXXXX")
  {
    "$kt" -genkeypair -alias ca -keyalg RSA -keysize 2048 -validity 3650 \
      -dname "CN=sluice test CA" -ext bc:c -storetype PKCS12 \
      -keystore "$tmp/ca.p12" -storepass "$pw" -keypass "$pw"
    "$kt" -exportcert -rfc -alias ca -keystore "$tmp/ca.p12" -storepass "$pw" \
      -file "$tmp/ca.pem"
    "$kt" -genkeypair -alias broker -keyalg RSA -keysize 2048 -validity 3650 \
      -dname "CN=localhost" -ext "$san" -storetype PKCS12 \
      -keystore "$tmp/broker.p12" -storepass "$pw" -keypass "$pw"
    "$kt" -certreq -alias broker -keystore "$tmp/broker.p12" -storepass "$pw" \
      -file "$tmp/broker.csr"
    "$kt" -gencert -rfc -alias ca -keystore "$tmp/ca.p12" -storepass "$pw" \
      -infile "$tmp/broker.csr" -outfile "$tmp/broker.pem" -validity 3650 \
      -ext "$san" -ext KU=digitalSignature,keyEncipherment -ext EKU=serverAuth
    # The chain (CA first, then the CA-signed cert) replaces the self-signed
    # broker cert in its keystore.
    "$kt" -importcert -noprompt -alias ca -keystore "$tmp/broker.p12" \
      -storepass "$pw" -file "$tmp/ca.pem"
    "$kt" -importcert -alias broker -keystore "$tmp/broker.p12" \
      -storepass "$pw" -file "$tmp/broker.pem"
  } >"$tmp/keytool.log" 2>&1 || {
    cat "$tmp/keytool.log" >&2
    rm -rf "$tmp"
    die "keytool failed"
  }
  rm -f "$tmp/keytool.log" "$tmp/broker.csr"
  rm -rf "$TLS_DIR"
  mv "$tmp" "$TLS_DIR"
}

# --- process helpers ------------------------------------------------------------

# Print the broker pid if the pid file names a live Kafka of this run dir.
# Checking the command line guards against a recycled pid.
broker_pid() {
  local pid
  [[ -f $PID_FILE ]] || return 1
  pid=$(<"$PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$SERVER_PROPS" || return 1
  printf '%s\n' "$pid"
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# Close every fd above 2 in the current (sub)shell before exec'ing a daemon.
close_inherited_fds() {
  local fd fds=()
  for fd in /proc/self/fd/*; do
    fd=${fd##*/}
    ((fd > 2)) && fds+=("$fd")
  done
  for fd in "${fds[@]}"; do
    # The glob's own directory fd is already gone; ignore such stale numbers.
    eval "exec ${fd}>&-" 2>/dev/null || true
  done
}

# Ask the PLAINTEXT listener for cluster metadata and print the broker list.
# It only lists a broker once that broker has registered with the controller,
# so "answers" means "can serve", not just "port open". kcat is quick; the
# Java tool is the fallback so the script also works without kcat (just
# slower, ~2 s per probe). KAFKA_PROBE=kcat|java forces one of them.
probe() {
  port_open "$KAFKA_PORT" || return 1
  local out how=${KAFKA_PROBE:-auto}
  if [[ $how == auto ]]; then
    if command -v kcat >/dev/null; then how=kcat; else how=java; fi
  fi
  if [[ $how == kcat ]]; then
    # -F /dev/null: ignore a developer's ~/.config/kcat.conf (it might point
    # at SASL or another cluster).
    out=$(kcat -F /dev/null -b "$HOST:$KAFKA_PORT" -L -m 5 2>/dev/null) || return 1
    grep -E '^ +broker [0-9]+ at ' <<<"$out" || return 1
  else
    out=$(kafka_tool org.apache.kafka.tools.BrokerApiVersionsCommand \
      --bootstrap-server "$HOST:$KAFKA_PORT" 2>/dev/null) || return 1
    grep -E '^[^ ].*\(id: [0-9]+' <<<"$out" | sed -E 's/ -> .*//' || return 1
  fi
}

# A zombie counts as gone: it has already released its ports and files, and
# reaping it is up to its parent (init, since the starting shell has exited),
# which can take a second or two.
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

wait_gone() {
  local pid=$1 seconds=$2 deadline
  deadline=$((SECONDS + seconds))
  while alive "$pid"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# start/stop/kill take an exclusive lock so that test packages run in
# parallel (go test ./...) cannot start two brokers or race a stop.
take_lock() {
  mkdir -p "$RUN_DIR"
  exec 9>"$RUN_DIR/lock"
  flock 9
}

# --- config --------------------------------------------------------------------

write_server_props() {
  local data_dir=$1 listeners advertised protocol_map tls_props=""
  listeners="PLAINTEXT://$HOST:$KAFKA_PORT,SASL_PLAINTEXT://$HOST:$KAFKA_SASL_PORT"
  advertised=$listeners
  protocol_map="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
  if [[ $KAFKA_TLS == 1 ]]; then
    listeners+=",SSL://$HOST:$KAFKA_SSL_PORT"
    advertised+=",SSL://$HOST:$KAFKA_SSL_PORT"
    protocol_map+=",SSL:SSL"
    tls_props="ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS_DIR/broker.p12
ssl.keystore.password=$TLS_STORE_PASSWORD
ssl.key.password=$TLS_STORE_PASSWORD
ssl.client.auth=none"
  fi
  listeners+=",CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT"

  cat >"$SERVER_PROPS" <<EOF
# Generated by scripts/kafka.sh; edits are overwritten on the next start.
# Combined KRaft node: broker and controller in one JVM, static one-voter quorum.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER

listeners=$listeners
advertised.listeners=$advertised
listener.security.protocol.map=$protocol_map
inter.broker.listener.name=PLAINTEXT

# SASL/SCRAM on the SASL_PLAINTEXT listener only. The credentials themselves
# are written into the metadata log by 'kafka-storage format --add-scram'.
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;

$tls_props

log.dirs=$data_dir

# Single node: every internal topic must live with one replica.
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fewer internal partitions than the default 50: the first consumer group or
# transaction creates them all, which is the slow part of a test's first poll.
offsets.topic.num.partitions=10
transaction.state.log.num.partitions=10
# Tests should not wait 3 s for every consumer group to form.
group.initial.rebalance.delay.ms=0
# The log cleaner's default 128 MiB buffer is a quarter of the small heap.
log.cleaner.dedupe.buffer.size=33554432
EOF
}

write_server_log4j() {
  cat >"$RUN_DIR/log4j2.properties" <<'EOF'
# Broker log: everything goes to stdout, which start redirects to kafka.log.
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = STDOUT
# Per-request logging is far too chatty for test runs.
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = warn
EOF
}

new_cluster_id() {
  # A Kafka Uuid is 16 random bytes in URL-safe base64 without padding; made
  # in bash to save a JVM start (StorageTool random-uuid).
  head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'
}

format_storage() {
  local data_dir=$1 out
  local scram="name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD"
  if ! out=$(kafka_tool kafka.tools.StorageTool format \
      --config "$SERVER_PROPS" --cluster-id "$(new_cluster_id)" \
      --add-scram "SCRAM-SHA-256=[$scram]" \
      --add-scram "SCRAM-SHA-512=[$scram]" 2>&1); then
    printf '%s\n' "$out" >&2
    die "kafka-storage format failed"
  fi
}

# --- commands ------------------------------------------------------------------

cmd_start() {
  local keep=0
  while (($#)); do
    case $1 in
      --keep-data) keep=1 ;;
      *) usage ;;
    esac
    shift
  done
  check_java
  take_lock

  local pid brokers
  if pid=$(broker_pid); then
    # Already ours and alive: report if serving, or keep waiting if another
    # start is still bringing it up (the lock makes that rare).
    if brokers=$(probe); then
      log "already running (pid $pid) and serving"
      printf '%s\n' "$brokers"
      return 0
    fi
    log "already running (pid $pid), waiting until it serves"
    wait_ready "$pid"
    return 0
  fi
  rm -f "$PID_FILE"

  # A foreign process on one of our ports would make Kafka die with a bind
  # error deep in its log; say it plainly instead.
  local port ports=("$KAFKA_PORT" "$KAFKA_SASL_PORT" "$KAFKA_CONTROLLER_PORT")
  [[ $KAFKA_TLS == 1 ]] && ports+=("$KAFKA_SSL_PORT")
  for port in "${ports[@]}"; do
    if port_open "$port"; then
      die "port $port is in use by another process (not this script's broker)"
    fi
  done

  fetch_jars
  ensure_tls
  write_tools_log4j
  write_server_log4j

  local data_dir=""
  [[ -f $DATA_FILE ]] && data_dir=$(<"$DATA_FILE")
  if ((keep)) && [[ -n $data_dir && -f $data_dir/meta.properties ]]; then
    log "reusing data dir $data_dir"
    write_server_props "$data_dir"
  else
    # Fresh start: drop whatever an earlier `stop --keep-data`/`kill` left.
    [[ -n $data_dir && -d $data_dir ]] && rm -rf -- "$data_dir"
    data_dir=$(mktemp -d "${TMPDIR:-/tmp}/sluice-kafka.XXXXXX")
    printf '%s\n' "$data_dir" >"$DATA_FILE"
    write_server_props "$data_dir"
    format_storage "$data_dir"
  fi

  # Keep the previous run's log for post-mortems of crash/restart tests.
  [[ -f $LOG_FILE ]] && mv -f "$LOG_FILE" "$LOG_FILE.prev"
  # The broker must not keep any of the caller's file descriptors: not its
  # stdout/stderr pipes (a test doing `out=$(kafka.sh start)` or Go's
  # exec.Cmd.Output would wait for EOF forever), not the start/stop lock (fd
  # 9), not whatever else the caller left open. So: stdio redirected, every
  # other inherited fd closed, nohup for SIGHUP. It runs in the run dir so JVM
  # crash files (hs_err_pid*.log) land there, not in the caller's cwd; `exec`
  # keeps $! equal to the java pid.
  local java
  java=$(java_bin)
  (
    cd "$RUN_DIR"
    close_inherited_fds
    # shellcheck disable=SC2086 # KAFKA_HEAP is a list of JVM flags.
    exec nohup "$java" $KAFKA_HEAP \
      -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
      -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$RUN_DIR/log4j2.properties" \
      -Dkafka.logs.dir="$RUN_DIR" \
      -cp "$LIB_DIR/*" kafka.Kafka "$SERVER_PROPS"
  ) </dev/null >"$LOG_FILE" 2>&1 &
  pid=$!
  printf '%s\n' "$pid" >"$PID_FILE"
  log "started Kafka ${KAFKA_VERSION} (pid $pid), log: $LOG_FILE"
  wait_ready "$pid"
}

# Poll until the broker answers a metadata request; fail fast if it dies.
wait_ready() {
  local pid=$1 deadline brokers
  deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! alive "$pid"; then
      tail -n 40 "$LOG_FILE" >&2 || true
      die "broker exited during start-up (log: $LOG_FILE)"
    fi
    if brokers=$(probe); then
      log "serving on PLAINTEXT $HOST:$KAFKA_PORT, SASL_PLAINTEXT $HOST:$KAFKA_SASL_PORT$([[ $KAFKA_TLS == 1 ]] && echo ", SSL $HOST:$KAFKA_SSL_PORT")"
      printf '%s\n' "$brokers"
      return 0
    fi
    sleep 0.3
  done
  tail -n 40 "$LOG_FILE" >&2 || true
  die "broker did not serve within ${KAFKA_START_TIMEOUT}s (log: $LOG_FILE)"
}

remove_data() {
  local data_dir
  [[ -f $DATA_FILE ]] || return 0
  data_dir=$(<"$DATA_FILE")
  [[ -n $data_dir && -d $data_dir ]] && rm -rf -- "$data_dir"
  rm -f "$DATA_FILE"
}

cmd_stop() {
  local keep=0
  while (($#)); do
    case $1 in
      --keep-data) keep=1 ;;
      *) usage ;;
    esac
    shift
  done
  take_lock
  local pid
  if pid=$(broker_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    # A clean KRaft shutdown of one node takes a few seconds; after 30 s
    # something is wedged and SIGKILL is the only way out.
    if ! wait_gone "$pid" 30; then
      log "pid $pid ignored SIGTERM for 30s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" 10 || die "pid $pid survived SIGKILL"
    fi
    log "stopped (pid $pid)"
  else
    log "not running"
  fi
  rm -f "$PID_FILE"
  ((keep)) || remove_data
}

# Crash the broker (for restart/recovery tests); the data dir stays, so a
# following `start --keep-data` picks up the same topics and messages.
cmd_kill() {
  (($# == 0)) || usage
  take_lock
  local pid
  if pid=$(broker_pid); then
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || die "pid $pid survived SIGKILL"
    log "killed (pid $pid), data kept"
  else
    log "not running"
  fi
  rm -f "$PID_FILE"
}

cmd_status() {
  local pid brokers
  if ! pid=$(broker_pid); then
    log "not running"
    return 1
  fi
  if ! brokers=$(probe); then
    log "running (pid $pid) but not serving"
    return 1
  fi
  log "running (pid $pid) and serving"
  printf '%s\n' "$brokers"
}

cmd_env() {
  printf 'export SLUICE_KAFKA_BROKERS=%s\n' "$HOST:$KAFKA_PORT"
  printf 'export SLUICE_KAFKA_SASL_BROKERS=%s\n' "$HOST:$KAFKA_SASL_PORT"
  printf 'export SLUICE_KAFKA_SASL_USER=%q\n' "$KAFKA_SASL_USER"
  printf 'export SLUICE_KAFKA_SASL_PASSWORD=%q\n' "$KAFKA_SASL_PASSWORD"
  printf 'export SLUICE_KAFKA_SASL_MECHANISMS=%s\n' "SCRAM-SHA-256,SCRAM-SHA-512"
  if [[ $KAFKA_TLS == 1 ]]; then
    printf 'export SLUICE_KAFKA_TLS_BROKERS=%s\n' "$HOST:$KAFKA_SSL_PORT"
    printf 'export SLUICE_KAFKA_TLS_CA=%q\n' "$TLS_DIR/ca.pem"
  fi
}

cmd_topic() {
  (($# == 2)) || usage
  local name=$1 partitions=$2
  [[ $partitions =~ ^[1-9][0-9]*$ ]] || die "PARTITIONS must be a positive integer"
  check_java
  fetch_jars
  write_tools_log4j
  kafka_tool org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$HOST:$KAFKA_PORT" --create --if-not-exists \
    --topic "$name" --partitions "$partitions" --replication-factor 1
}

# Connect to every listener with the Java admin client from the cached jars
# (list topics): PLAINTEXT, SASL with both SCRAM mechanisms, SASL with a wrong
# password (must be rejected) and SSL verified against the exported CA. The
# Java client rather than kcat, because Debian 12's kcat cannot do SCRAM
# against Kafka 4.x (see the header).
cmd_check() {
  check_java
  fetch_jars
  write_tools_log4j
  local dir=$RUN_DIR/check failed=0 mech
  mkdir -p "$dir"
  # Short timeouts: a rejected login must fail within seconds, not retry for
  # the admin client's default minute.
  local timeouts="request.timeout.ms=10000
default.api.timeout.ms=15000"
  printf '%s\n' "$timeouts" >"$dir/plain.properties"
  for mech in SCRAM-SHA-256 SCRAM-SHA-512; do
    cat >"$dir/$mech.properties" <<EOF
$timeouts
security.protocol=SASL_PLAINTEXT
sasl.mechanism=$mech
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$KAFKA_SASL_USER" password="$KAFKA_SASL_PASSWORD";
EOF
  done
  cat >"$dir/wrong-password.properties" <<EOF
$timeouts
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-256
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$KAFKA_SASL_USER" password="not-$KAFKA_SASL_PASSWORD";
EOF
  if [[ $KAFKA_TLS == 1 ]]; then
    cat >"$dir/ssl.properties" <<EOF
$timeouts
security.protocol=SSL
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
EOF
  fi

  # one NAME PORT EXPECT(ok|fail): list topics with NAME.properties.
  one() {
    local name=$1 port=$2 expect=$3 out rc=0
    out=$(timeout 60 "$(java_bin)" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
      -Dlog4j2.configurationFile="$TOOLS_LOG4J" -cp "$LIB_DIR/*" \
      org.apache.kafka.tools.TopicCommand --bootstrap-server "$HOST:$port" \
      --command-config "$dir/$name.properties" --list 2>&1) || rc=$?
    if [[ $expect == ok && $rc == 0 ]] ||
      [[ $expect == fail && $rc != 0 && $out == *Authentication* ]]; then
      printf 'ok    %-16s %s:%s (expected %s)\n' "$name" "$HOST" "$port" "$expect"
    else
      printf 'FAIL  %-16s %s:%s (expected %s, exit %s)\n%s\n' \
        "$name" "$HOST" "$port" "$expect" "$rc" "$(tail -n 5 <<<"$out")"
      failed=1
    fi
  }
  one plain "$KAFKA_PORT" ok
  one SCRAM-SHA-256 "$KAFKA_SASL_PORT" ok
  one SCRAM-SHA-512 "$KAFKA_SASL_PORT" ok
  one wrong-password "$KAFKA_SASL_PORT" fail
  if [[ $KAFKA_TLS == 1 ]]; then one ssl "$KAFKA_SSL_PORT" ok; fi
  return "$failed"
}

main() {
  (($#)) || usage
  local cmd=$1
  shift
  case $cmd in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    kill) cmd_kill "$@" ;;
    status) (($# == 0)) || usage; cmd_status ;;
    env) (($# == 0)) || usage; cmd_env ;;
    topic) cmd_topic "$@" ;;
    fetch) (($# == 0)) || usage; check_java; fetch_jars ;;
    check) (($# == 0)) || usage; cmd_check ;;
    -h | --help | help) help ;;
    *) usage ;;
  esac
}

main "$@"
