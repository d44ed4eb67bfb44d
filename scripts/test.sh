#!/usr/bin/env bash
# Run the whole test suite against real services. PostgreSQL with pgvector, the Kafka
# broker and the Infinity server are started by the tests themselves; this script only
# makes sure the machine's own Redis, RabbitMQ and PostgreSQL 15 are up.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {  # name port seconds
  for _ in $(seq 1 "$3"); do port_open "$2" && return 0; sleep 1; done
  echo "error: $1 did not come up on 127.0.0.1:$2" >&2; return 1
}

ensure() {  # name port start-command...
  local name=$1 port=$2; shift 2
  if ! port_open "$port"; then
    echo "starting $name on 127.0.0.1:$port"
    "$@" >/dev/null 2>&1 || true
    wait_port "$name" "$port" 60
  fi
}

ensure redis 6379 redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
  --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
ensure rabbitmq 5672 rabbitmq-server -detached
ensure postgresql-15 5432 bash -c 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start'

# `docker compose config` checks compose/ (no Docker engine is needed for that); the
# client is on the machine, the compose plugin may not be.
if command -v docker >/dev/null && ! docker compose version >/dev/null 2>&1 \
    && ! command -v docker-compose >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing docker-compose (to validate compose/)"
  (apt-get update -qq && apt-get install -y -qq docker-compose) >/dev/null 2>&1 \
    || echo "warning: could not install docker-compose; the compose tests will say why" >&2
fi

# Most tests wait on services, processes and timeouts rather than on the CPU: several
# pytest workers share the cores (each starts its own PostgreSQL and Kafka broker; a test
# file stays on one worker). V10R_TEST_WORKERS=0 runs everything in this process.
workers=${V10R_TEST_WORKERS:-4}
parallel=()
if [ "$workers" != 0 ]; then parallel=(-n "$workers" --dist loadfile); fi

set +e
"$VENV/bin/pytest" -p no:cacheprovider "${parallel[@]}" "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "error: no tests were collected" >&2
  exit 1
fi
exit "$status"
