#!/usr/bin/env bash
# kafka-dev.sh: a real Apache Kafka broker (single KRaft node) for development
# and tests, without Docker. Run with --help for usage.
set -euo pipefail

# ---------------------------------------------------------------------------
# Pinned versions. slf4j/reload4j are what Kafka 3.9.x itself ships in libs/;
# the kafka_2.13 POM leaves the logging binding to the distribution.
readonly KAFKA_VERSION=3.9.1
readonly SCALA_BINARY=2.13
readonly SLF4J_VERSION=1.7.36
readonly RELOAD4J_VERSION=1.2.25
readonly DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
readonly SCRIPT_DIR
REPO=$(cd -- "$SCRIPT_DIR/../.." && pwd -P)
readonly REPO
SELF="$SCRIPT_DIR/$(basename -- "${BASH_SOURCE[0]}")"
readonly SELF

START_TIMEOUT=${LIFELONG_KAFKA_START_TIMEOUT:-60}
STOP_TIMEOUT=${LIFELONG_KAFKA_STOP_TIMEOUT:-30}
# A small heap; C1-only JIT and the serial GC start the JVM markedly faster on a
# busy 2-core machine and are plenty for a development broker.
JAVA_OPTS=${LIFELONG_KAFKA_JAVA_OPTS:--Xms128m -Xmx512m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true}
read -r -a JAVA_ARGS <<<"$JAVA_OPTS"

usage() {
  cat <<EOF
Usage: $(basename -- "$0") <command> [options]

Runs a real Apache Kafka $KAFKA_VERSION broker (one combined KRaft
broker+controller node on 127.0.0.1) for development and tests. No Docker:
the broker jars come from Maven Central through Maven, and it runs on the
local Java (17+).

Commands:
  fetch                  Download the broker jars (once) into
                           \${LIFELONG_CACHE:-<repo>/.cache}/kafka-$KAFKA_VERSION/libs
                         and print that directory. Reused when present.
  start [options]        Fetch if needed, format KRaft storage, start the broker
                         in the background and wait until it answers clients.
                         Prints the bootstrap address and the Kafka version.
      --port N             client port (default 9092), PLAINTEXT unless --sasl-ssl
      --sasl-ssl           the client port speaks SASL_SSL instead: a CA and the
                           broker's certificate (127.0.0.1, localhost) made with
                           keytool, and a user 'lifelong' with a random password
                           for PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 (kept in
                           DIR/tls across restarts). broker.info then names the
                           CA file and the password file.
      --controller-port N  KRaft controller port (default: a free port)
      --dir DIR            state directory: config, data, log, pid
                           (default <cache>/kafka-run)
      --owner-pid PID      also stop the broker when process PID exits
                           (used by the pytest fixture so that a killed test
                           session leaves no broker behind)
  stop [--dir DIR]       Stop the broker (SIGTERM, then SIGKILL after
                         ${STOP_TIMEOUT}s) and make sure no process is left.
  status [--dir DIR]     Print whether the broker runs, its address, version,
                         pid and log file. Exit status 0 if running, 3 if not.
  -h, --help             This help.

Files in DIR: server.properties, kafka.log (broker log), kafka.pid,
broker.info (bootstrap/version/pid as key=value), data/ (KRaft log dirs),
tls/ (--sasl-ssl: ca.pem, broker.p12, client.password).

Environment:
  LIFELONG_CACHE                cache root (default <repo>/.cache, gitignored)
  LIFELONG_KAFKA_START_TIMEOUT  seconds to wait for readiness (default 60)
  LIFELONG_KAFKA_STOP_TIMEOUT   seconds before SIGKILL on stop (default 30)
  LIFELONG_KAFKA_JAVA_OPTS      JVM options (default: $JAVA_OPTS)
  LIFELONG_PYTHON               python with kafka-python for the readiness
                                probe (default <repo>/.venv/bin/python)

Examples:
  $(basename -- "$0") start --port 9092
  $(basename -- "$0") start --port 9093 --dir /tmp/kafka-secure --sasl-ssl
  $(basename -- "$0") status
  $(basename -- "$0") stop
EOF
}

die() {
  printf 'kafka-dev: error: %s\n' "$*" >&2
  exit 1
}

info() {
  printf 'kafka-dev: %s\n' "$*" >&2
}

need() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is required but not on PATH"
}

abs_dir() {  # create DIR if needed and print its absolute physical path
  mkdir -p -- "$1"
  (cd -- "$1" && pwd -P)
}

cache_root() {
  abs_dir "${LIFELONG_CACHE:-$REPO/.cache}"
}

default_run_dir() {
  printf '%s/kafka-run' "$(cache_root)"
}

valid_port() {
  [[ $1 =~ ^[0-9]+$ ]] && ((10#$1 >= 1 && 10#$1 <= 65535))
}

# ---------------------------------------------------------------------------
# Processes

alive() {  # pid exists and is not a zombie (PID 1 here may not reap orphans)
  local pid=$1 state
  [[ -r /proc/$pid/stat ]] || return 1
  state=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z && $state != X ]]
}

cmdline() {
  tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
}

is_broker_of() {  # pid is a kafka.Kafka java process started for DIR
  local pid=$1 dir=$2 cmd
  alive "$pid" || return 1
  cmd=$(cmdline "$pid")
  [[ $cmd == *" kafka.Kafka $dir/server.properties"* ]]
}

is_watchdog_of() {
  local pid=$1 dir=$2 cmd
  alive "$pid" || return 1
  cmd=$(cmdline "$pid")
  [[ $cmd == *"kafka-dev-watchdog $dir "* ]]
}

brokers_of() {  # every live broker process for DIR (also ones a lost pid file forgot)
  local dir=$1 pid
  for pid in $(pgrep -f -- 'kafka[.]Kafka ' || true); do
    if is_broker_of "$pid" "$dir"; then
      printf '%s\n' "$pid"
    fi
  done
}

read_pid() {  # prints the pid in file $1 if it is a valid number
  local pid
  [[ -f $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  printf '%s' "$pid"
}

running_pid() {  # pid of the broker recorded in DIR, if it runs
  local dir=$1 pid
  pid=$(read_pid "$dir/kafka.pid") || return 1
  is_broker_of "$pid" "$dir" || return 1
  printf '%s' "$pid"
}

wait_gone() {  # wait at least $2 seconds for pid $1 to exit
  local pid=$1 polls=$(($2 * 10))
  while alive "$pid"; do
    ((polls-- > 0)) || return 1
    sleep 0.1
  done
}

terminate() {  # SIGTERM, wait, then SIGKILL the process and its process group
  local pid=$1 timeout=$2
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" "$timeout"; then
    info "pid $pid still running after ${timeout}s, sending SIGKILL"
    # The broker was started with setsid: its pid is its process group id.
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || die "pid $pid survived SIGKILL"
  fi
}

tcp_open() {  # something accepts TCP connections on 127.0.0.1:$1
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {  # a currently free TCP port on 127.0.0.1, other than $1
  local port tries=0
  while ((tries++ < 200)); do
    port=$((20000 + RANDOM % 40000))
    [[ $port != "${1:-}" ]] || continue
    tcp_open "$port" || {
      printf '%s' "$port"
      return 0
    }
  done
  die "found no free port"
}

# ---------------------------------------------------------------------------
# fetch

libs_dir() {
  printf '%s/kafka-%s/libs' "$(cache_root)" "$KAFKA_VERSION"
}

libs_complete() {
  local libs=$1
  [[ -f $libs/.complete && -f $libs/kafka_${SCALA_BINARY}-${KAFKA_VERSION}.jar ]]
}

write_pom() {
  cat >"$1" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by deploy/kafka/kafka-dev.sh: the jars of a Kafka broker. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.lifelong</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <!-- The broker (kafka.Kafka, kafka.tools.StorageTool); brings kafka-clients,
         -server, -storage, -raft, -metadata, -group-coordinator, scala ... -->
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_$SCALA_BINARY</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <!-- Logging binding, as in the Kafka distribution's libs/. -->
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>$SLF4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>ch.qos.reload4j</groupId>
      <artifactId>reload4j</artifactId>
      <version>$RELOAD4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
}

fetch() {  # make sure the jars are in the cache; prints the libs directory
  local libs base tmp
  libs=$(libs_dir)
  if libs_complete "$libs"; then
    printf '%s\n' "$libs"
    return 0
  fi
  need mvn
  base=$(dirname -- "$libs")
  mkdir -p -- "$base"
  write_pom "$base/pom.xml"
  tmp=$(mktemp -d "$base/libs.tmp.XXXXXX")
  info "fetching Kafka $KAFKA_VERSION broker jars with Maven into $libs"
  if ! mvn -B -q --strict-checksums -f "$base/pom.xml" \
    "$DEPENDENCY_PLUGIN:copy-dependencies" \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$base/fetch.log" 2>&1; then
    rm -rf -- "$tmp"
    tail -n 40 "$base/fetch.log" >&2 || true
    die "Maven could not fetch the Kafka jars (full log: $base/fetch.log)"
  fi
  printf '%s\n' "$KAFKA_VERSION" >"$tmp/.complete"
  libs_complete "$tmp" || {
    rm -rf -- "$tmp"
    die "Maven ran but kafka_${SCALA_BINARY}-${KAFKA_VERSION}.jar is missing"
  }
  # Publish atomically; a concurrent fetch may have won the race.
  if [[ -e $libs ]] && ! libs_complete "$libs"; then
    rm -rf -- "$libs"
  fi
  if ! mv -T -- "$tmp" "$libs" 2>/dev/null; then
    rm -rf -- "$tmp"
    libs_complete "$libs" || die "could not publish $libs"
  fi
  printf '%s\n' "$libs"
}

cmd_fetch() {
  [[ $# -eq 0 ]] || die "fetch takes no arguments (see --help)"
  fetch
}

# ---------------------------------------------------------------------------
# start

pick_python() {
  local py=${LIFELONG_PYTHON:-}
  if [[ -z $py ]]; then
    if [[ -x $REPO/.venv/bin/python ]]; then
      py=$REPO/.venv/bin/python
    else
      py=$(command -v python3 || true)
    fi
  fi
  if [[ -n $py ]] && "$py" -c 'import kafka' >/dev/null 2>&1; then
    printf '%s' "$py"
  fi
}

# Ready means: the broker answers a metadata request, lists itself, and belongs
# to the cluster we formatted (not some other process that owns the port).
probe_kafka() {  # [TLS_DIR]: over SASL_SSL with SCRAM-SHA-256 as the client user
  local py=$1 bootstrap=$2 cluster_id=$3 tls=${4:-}
  "$py" - "$bootstrap" "$cluster_id" "$tls" >/dev/null 2>&1 <<'EOF'
import sys

from kafka import KafkaAdminClient

bootstrap, cluster_id, tls = sys.argv[1], sys.argv[2], sys.argv[3]
security = {}
if tls:
    with open(f"{tls}/client.password") as file:
        password = file.read().strip()
    security = {
        "security_protocol": "SASL_SSL",
        "ssl_cafile": f"{tls}/ca.pem",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "lifelong",
        "sasl_plain_password": password,
    }
try:
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="kafka-dev-probe",
        request_timeout_ms=3000,
        bootstrap_timeout_ms=3000,
        **security,
    )
    try:
        cluster = admin.describe_cluster()
    finally:
        admin.close()
except Exception:
    sys.exit(1)
sys.exit(0 if cluster["brokers"] and cluster["cluster_id"] == cluster_id else 1)
EOF
}

random_cluster_id() {  # a Kafka Uuid: 16 random bytes, base64url without padding
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    # Kafka's own generator avoids a leading '-' (it looks like a CLI flag).
    [[ $id == -* ]] || break
  done
  printf '%s' "$id"
}

write_configs() {  # [TLS_DIR]: the client listener speaks SASL_SSL
  local dir=$1 port=$2 cport=$3 tls=${4:-} listener=PLAINTEXT
  [[ -z $tls ]] || listener=SASL_SSL
  cat >"$dir/server.properties" <<EOF
# Generated by kafka-dev.sh: one combined KRaft broker+controller for dev/tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=$listener://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=$listener://127.0.0.1:$port
listener.security.protocol.map=$listener:$listener,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=$listener
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
# A single node: internal topics cannot be replicated; few partitions keep the
# first consumer-group join and transaction fast.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
EOF
  [[ -z $tls ]] || write_sasl_ssl_config "$dir/server.properties" "$tls"
  cat >"$dir/log4j.properties" <<'EOF'
# Broker log: stdout, which kafka-dev.sh redirects to kafka.log.
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
EOF
  cat >"$dir/tools-log4j.properties" <<'EOF'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

# ---------------------------------------------------------------------------
# --sasl-ssl: certificates and users

keytool_() {  # keytool with the broker's quick-start JVM options; its output in $TLS_LOG
  keytool "${JAVA_ARGS[@]/#/-J}" "$@" 2>>"$TLS_LOG" || die "keytool failed (log: $TLS_LOG)"
}

make_tls() {  # a CA, the broker's key and certificate, the client user's password, in TLS_DIR
  local tls=$1 store
  [[ ! -f $tls/broker.p12 ]] || return 0  # made by an earlier start in this DIR: keep them
  need keytool
  info "making a CA and the broker's certificate in $tls"
  rm -rf -- "$tls" && mkdir -m 0700 -p -- "$tls"
  TLS_LOG=$tls/keytool.log
  random_secret >"$tls/client.password"
  random_secret >"$tls/broker.password"  # the inter-broker PLAIN user's, and the key stores'
  store=$(<"$tls/broker.password")
  keytool_ -genkeypair -alias ca -keyalg EC -groupname secp256r1 -dname CN=kafka-dev-ca \
    -ext bc:c -validity 365 -keystore "$tls/ca.p12" -storetype PKCS12 -storepass "$store"
  keytool_ -genkeypair -alias broker -keyalg EC -groupname secp256r1 -dname CN=localhost \
    -validity 365 -keystore "$tls/broker.p12.tmp" -storetype PKCS12 -storepass "$store"
  keytool_ -exportcert -alias ca -keystore "$tls/ca.p12" -storepass "$store" -rfc \
    -file "$tls/ca.pem"
  keytool_ -certreq -alias broker -keystore "$tls/broker.p12.tmp" -storepass "$store" |
    keytool_ -gencert -alias ca -keystore "$tls/ca.p12" -storepass "$store" -rfc \
      -ext SAN=dns:localhost,ip:127.0.0.1 -validity 365 >"$tls/broker.pem"
  cat "$tls/ca.pem" >>"$tls/broker.pem"  # the chain: keytool installs a reply it can verify
  keytool_ -importcert -alias broker -file "$tls/broker.pem" -keystore "$tls/broker.p12.tmp" \
    -storepass "$store" -noprompt >/dev/null
  mv -- "$tls/broker.p12.tmp" "$tls/broker.p12"  # last: its presence means all is there
}

random_secret() {
  head -c 18 /dev/urandom | base64 | tr '+/' '-_'
}

write_sasl_ssl_config() {  # append the SASL_SSL listener's TLS and users to FILE
  local file=$1 tls=$2 client broker
  client=$(<"$tls/client.password")
  broker=$(<"$tls/broker.password")
  cat >>"$file" <<EOF
# --sasl-ssl: TLS with the CA of $tls; PLAIN users from JAAS, SCRAM users from
# the KRaft metadata (added at format time).
ssl.keystore.type=PKCS12
ssl.keystore.location=$tls/broker.p12
ssl.keystore.password=$broker
ssl.key.password=$broker
ssl.truststore.type=PEM
ssl.truststore.location=$tls/ca.pem
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=PLAIN
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="$broker" user_broker="$broker" user_lifelong="$client";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
EOF
}

start_failed() {  # print the log, leave no process behind, exit non-zero
  local dir=$1 pid=$2 reason=$3
  printf 'kafka-dev: error: %s\n' "$reason" >&2
  printf 'kafka-dev: broker log: %s (last 40 lines follow)\n' "$dir/kafka.log" >&2
  tail -n 40 "$dir/kafka.log" >&2 || true
  if [[ -n $pid ]]; then
    terminate "$pid" 5 || true
  fi
  rm -f -- "$dir/kafka.pid" "$dir/broker.info"
  exit 1
}

start_watchdog() {  # stop the broker in DIR once OWNER exits
  local dir=$1 owner=$2 broker=$3
  # "kafka-dev-watchdog DIR" in its argv lets stop/status recognise it.
  # shellcheck disable=SC2016  # the variables expand in the inner bash
  setsid bash -c '
    dir=$1 owner=$2 broker=$3 self=$4
    echo $$ >"$dir/watchdog.pid"
    while kill -0 "$owner" 2>/dev/null && kill -0 "$broker" 2>/dev/null; do
      sleep 1
    done
    rm -f "$dir/watchdog.pid"
    if kill -0 "$broker" 2>/dev/null; then
      echo "kafka-dev watchdog: owner pid $owner exited, stopping the broker"
      exec "$self" stop --dir "$dir"
    fi
  ' kafka-dev-watchdog "$dir" "$owner" "$broker" "$SELF" \
    </dev/null >>"$dir/watchdog.log" 2>&1 &
}

cmd_start() {
  local port=9092 cport="" dir="" owner="" sasl_ssl=0
  while [[ $# -gt 0 ]]; do
    case $1 in
      --port) port=${2:?--port needs a value}; shift 2 ;;
      --sasl-ssl) sasl_ssl=1; shift ;;
      --controller-port) cport=${2:?--controller-port needs a value}; shift 2 ;;
      --dir) dir=${2:?--dir needs a value}; shift 2 ;;
      --owner-pid) owner=${2:?--owner-pid needs a value}; shift 2 ;;
      -h | --help) usage; exit 0 ;;
      *) die "start: unknown argument '$1' (see --help)" ;;
    esac
  done
  valid_port "$port" || die "invalid --port '$port'"
  [[ -z $cport ]] || valid_port "$cport" || die "invalid --controller-port '$cport'"
  [[ -z $owner || $owner =~ ^[0-9]+$ ]] || die "invalid --owner-pid '$owner'"
  [[ -z $owner ]] || alive "$owner" || die "--owner-pid $owner is not running"
  need java
  dir=$(abs_dir "${dir:-$(default_run_dir)}")

  local pid
  if pid=$(running_pid "$dir"); then
    local running_port
    running_port=$(sed -n 's/^port=//p' "$dir/broker.info" 2>/dev/null || true)
    if [[ $running_port == "$port" ]]; then
      info "already running in $dir (pid $pid)"
      cat "$dir/broker.info"
      return 0
    fi
    die "a broker already runs in $dir on port ${running_port:-?} (pid $pid); stop it first"
  fi
  [[ -z $(brokers_of "$dir") ]] || die "an untracked broker runs in $dir; run: $SELF stop --dir $dir"

  local started=$SECONDS libs py
  libs=$(fetch)
  py=$(pick_python)
  [[ -n $py ]] || info "kafka-python not found; readiness is checked by TCP only"

  tcp_open "$port" && die "port $port on 127.0.0.1 is already in use"
  [[ -n $cport ]] || cport=$(free_port "$port")
  [[ $cport != "$port" ]] || die "--controller-port must differ from --port"
  tcp_open "$cport" && die "controller port $cport on 127.0.0.1 is already in use"

  mkdir -p -- "$dir/data"
  rm -f -- "$dir/broker.info" "$dir/kafka.pid"
  pid=""
  # From here on an interrupted start leaves no broker behind either.
  trap 'start_failed "$dir" "${pid:-$(read_pid "$dir/kafka.pid" || true)}" "interrupted"' INT TERM
  local tls="" scram=()
  if ((sasl_ssl)); then
    tls=$dir/tls
    make_tls "$tls"
    local password
    password=$(<"$tls/client.password")
    scram=(--add-scram "SCRAM-SHA-256=[name=lifelong,password=$password]"
      --add-scram "SCRAM-SHA-512=[name=lifelong,password=$password]")
  fi
  write_configs "$dir" "$port" "$cport" "$tls"
  # A restart in the same DIR keeps its data: Kafka 3.9 refuses to "ignore" an
  # existing format when given a different cluster id, so reuse the old one.
  local cluster_id
  cluster_id=$(sed -n 's/^cluster\.id=//p' "$dir/data/meta.properties" 2>/dev/null || true)
  [[ -n $cluster_id ]] || cluster_id=$(random_cluster_id)
  java "${JAVA_ARGS[@]}" -cp "$libs/*" -Dlog4j.configuration="file:$dir/tools-log4j.properties" \
    kafka.tools.StorageTool format --ignore-formatted "${scram[@]}" \
    -t "$cluster_id" -c "$dir/server.properties" >"$dir/format.log" 2>&1 ||
    {
      cat "$dir/format.log" >&2
      die "formatting KRaft storage in $dir/data failed (log: $dir/format.log)"
    }
  [[ $(sed -n 's/^cluster\.id=//p' "$dir/data/meta.properties") == "$cluster_id" ]] ||
    die "unexpected cluster.id in $dir/data/meta.properties"

  [[ ! -f $dir/kafka.log ]] || mv -f -- "$dir/kafka.log" "$dir/kafka.log.prev"
  # setsid: the broker gets its own session and process group (pid == pgid),
  # so a Ctrl-C meant for the caller does not kill it half-way and stop can
  # signal the whole group. The inner bash records its pid, then execs java.
  # shellcheck disable=SC2016  # $$ and "$@" expand in the inner bash
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' kafka-dev-launch "$dir/kafka.pid" \
    java "${JAVA_ARGS[@]}" -cp "$libs/*" \
    -Dlog4j.configuration="file:$dir/log4j.properties" \
    kafka.Kafka "$dir/server.properties" \
    </dev/null >"$dir/kafka.log" 2>&1 &
  local launcher=$!

  local deadline=$((SECONDS + START_TIMEOUT))
  while :; do
    [[ -n $pid ]] || pid=$(read_pid "$dir/kafka.pid" || true)
    if [[ -n $pid ]] && ! alive "$pid"; then
      start_failed "$dir" "" "the broker exited during startup"
    fi
    if [[ -z $pid ]] && ! alive "$launcher"; then
      start_failed "$dir" "" "the broker launcher exited during startup"
    fi
    if [[ -n $pid ]] && is_broker_of "$pid" "$dir" && tcp_open "$port"; then
      if [[ -z $py ]] || probe_kafka "$py" "127.0.0.1:$port" "$cluster_id" "$tls"; then
        break
      fi
    fi
    ((SECONDS < deadline)) ||
      start_failed "$dir" "$pid" "the broker did not accept clients within ${START_TIMEOUT}s"
    sleep 0.3
  done
  trap - INT TERM

  local version
  version=$(sed -n 's/.*INFO Kafka version: \([^ ]*\) .*/\1/p' "$dir/kafka.log" | head -n 1)
  [[ -n $version ]] || version="$KAFKA_VERSION (pinned; not found in log)"
  if [[ -n $owner ]]; then
    start_watchdog "$dir" "$owner" "$pid"
  fi
  cat >"$dir/broker.info" <<EOF
bootstrap=127.0.0.1:$port
port=$port
controller_port=$cport
kafka_version=$version
cluster_id=$cluster_id
pid=$pid
dir=$dir
log=$dir/kafka.log
startup_seconds=$((SECONDS - started))
EOF
  if [[ -n $tls ]]; then
    cat >>"$dir/broker.info" <<EOF
security_protocol=SASL_SSL
sasl_mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
sasl_username=lifelong
sasl_password_file=$tls/client.password
ssl_ca_file=$tls/ca.pem
EOF
  fi
  printf 'Kafka %s broker ready at 127.0.0.1:%s (pid %s, %ss)\n' \
    "$version" "$port" "$pid" "$((SECONDS - started))"
  cat "$dir/broker.info"
}

# ---------------------------------------------------------------------------
# stop / status

parse_dir_only() {  # parse [--dir DIR] and print the absolute DIR
  local dir=""
  while [[ $# -gt 0 ]]; do
    case $1 in
      --dir) dir=${2:?--dir needs a value}; shift 2 ;;
      -h | --help) usage; exit 0 ;;
      *) die "unknown argument '$1' (see --help)" ;;
    esac
  done
  dir=${dir:-$(default_run_dir)}
  [[ -d $dir ]] || {
    printf '%s' "$dir"
    return 0
  }
  (cd -- "$dir" && pwd -P)
}

cmd_stop() {
  local dir pid wpid stopped=0
  dir=$(parse_dir_only "$@")
  if wpid=$(read_pid "$dir/watchdog.pid") && is_watchdog_of "$wpid" "$dir"; then
    kill -TERM "$wpid" 2>/dev/null || true
    wait_gone "$wpid" 5 || kill -KILL "$wpid" 2>/dev/null || true
  fi
  rm -f -- "$dir/watchdog.pid"
  if pid=$(running_pid "$dir"); then
    info "stopping the broker in $dir (pid $pid)"
    terminate "$pid" "$STOP_TIMEOUT"
    stopped=1
  fi
  # Brokers for DIR that the pid file does not know about (e.g. a lost file).
  for pid in $(brokers_of "$dir"); do
    info "stopping untracked broker pid $pid for $dir"
    terminate "$pid" "$STOP_TIMEOUT"
    stopped=1
  done
  [[ -z $(brokers_of "$dir") ]] || die "a broker for $dir is still running"
  rm -f -- "$dir/kafka.pid" "$dir/broker.info"
  if ((stopped)); then
    info "stopped"
  else
    info "not running (dir $dir)"
  fi
}

cmd_status() {
  local dir pid
  dir=$(parse_dir_only "$@")
  if pid=$(running_pid "$dir"); then
    printf 'running (pid %s)\n' "$pid"
    cat "$dir/broker.info" 2>/dev/null || true
    return 0
  fi
  if [[ -n $(brokers_of "$dir") ]]; then
    printf 'untracked broker process(es) for %s: %s\n' "$dir" "$(brokers_of "$dir" | tr '\n' ' ')"
    return 0
  fi
  printf 'not running (dir %s)\n' "$dir"
  return 3
}

main() {
  local cmd=${1:-}
  [[ $# -eq 0 ]] || shift
  case $cmd in
    fetch) cmd_fetch "$@" ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    -h | --help | help) usage ;;
    "") usage >&2; exit 2 ;;
    *) printf 'kafka-dev: unknown command %s\n\n' "$cmd" >&2; usage >&2; exit 2 ;;
  esac
}

main "$@"
